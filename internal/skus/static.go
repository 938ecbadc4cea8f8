package skus

import (
	"slices"
	"strings"
)

// Static is an immutable in-memory catalog. Lookups are map reads, so it is safe for concurrent use
// and cheap enough for the admission path.
type Static struct {
	byRegion  map[string]map[string]SKU // region → lower-case size → record
	regions   []string
	src       SourceInfo
	regionSrc map[string]SourceInfo // per-region overrides of src, by normalised region
}

var _ Catalog = (*Static)(nil)

// NewStatic indexes skus by normalised region and lower-cased name. A later record for the same
// region and size replaces an earlier one. Records without a name or region are dropped: nothing
// could look them up, and an empty region would collide with Source(""), "the whole catalog".
func NewStatic(skus []SKU, src SourceInfo) *Static {
	s := &Static{byRegion: map[string]map[string]SKU{}, src: src}
	for _, k := range skus {
		k.Region = NormalizeRegion(k.Region)
		if k.Region == "" || strings.TrimSpace(k.Name) == "" {
			continue
		}
		m, ok := s.byRegion[k.Region]
		if !ok {
			m = map[string]SKU{}
			s.byRegion[k.Region] = m
			s.regions = append(s.regions, k.Region)
		}
		m[sizeKey(k.Name)] = k
	}
	slices.Sort(s.regions)
	return s
}

// NewStaticByRegion is NewStatic for a source whose regions have data of different origins and
// dates (the embedded catalog): Source(region) returns byRegion[region] for the regions it names and
// whole for the others and for "".
func NewStaticByRegion(skus []SKU, whole SourceInfo, byRegion map[string]SourceInfo) *Static {
	s := NewStatic(skus, whole)
	s.regionSrc = make(map[string]SourceInfo, len(byRegion))
	for r, src := range byRegion {
		s.regionSrc[NormalizeRegion(r)] = src
	}
	return s
}

func (s *Static) Lookup(region, size string) (SKU, bool) {
	k, ok := s.byRegion[NormalizeRegion(region)][sizeKey(size)]
	return k, ok
}

func (s *Static) LookupAll(size string) []SKU {
	var out []SKU
	for _, r := range s.regions {
		if k, ok := s.byRegion[r][sizeKey(size)]; ok {
			out = append(out, k)
		}
	}
	return out
}

func (s *Static) HasRegion(region string) bool {
	_, ok := s.byRegion[NormalizeRegion(region)]
	return ok
}

func (s *Static) Regions() []string { return slices.Clone(s.regions) }

// SKUs returns the records of a region sorted by name.
func (s *Static) SKUs(region string) []SKU {
	m := s.byRegion[NormalizeRegion(region)]
	out := make([]SKU, 0, len(m))
	for _, k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b SKU) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Source returns the catalog's SourceInfo for a region it knows and for "" (the whole catalog), and
// {Name: "none"} for any other region, so a decision never claims a source that had no data.
func (s *Static) Source(region string) SourceInfo {
	if region == "" {
		return s.src
	}
	if !s.HasRegion(region) {
		return SourceInfo{Name: "none"}
	}
	if src, ok := s.regionSrc[NormalizeRegion(region)]; ok {
		return src
	}
	return s.src
}

// sizeKey is the map key of a size: Azure treats size names case-insensitively.
func sizeKey(size string) string { return strings.ToLower(strings.TrimSpace(size)) }
