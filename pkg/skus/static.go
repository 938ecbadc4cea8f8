package skus

import (
	"slices"
	"strings"
)

// Static is an immutable in-memory catalog. Lookups are map reads, so it is safe for concurrent use
// and cheap enough for the admission path.
type Static struct {
	byRegion map[string]map[string]SKU // region → lower-case size → record
	regions  []string
	src      SourceInfo
}

// NewStatic indexes skus. A later record for the same region and size replaces an earlier one.
func NewStatic(skus []SKU, src SourceInfo) *Static {
	s := &Static{byRegion: map[string]map[string]SKU{}, src: src}
	for _, k := range skus {
		k.Region = NormalizeRegion(k.Region)
		m, ok := s.byRegion[k.Region]
		if !ok {
			m = map[string]SKU{}
			s.byRegion[k.Region] = m
			s.regions = append(s.regions, k.Region)
		}
		m[strings.ToLower(k.Name)] = k
	}
	slices.Sort(s.regions)
	return s
}

func (s *Static) Lookup(region, size string) (SKU, bool) {
	k, ok := s.byRegion[NormalizeRegion(region)][strings.ToLower(size)]
	return k, ok
}

func (s *Static) LookupAll(size string) []SKU {
	var out []SKU
	for _, r := range s.regions {
		if k, ok := s.byRegion[r][strings.ToLower(size)]; ok {
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

func (s *Static) Source(region string) SourceInfo {
	if region != "" && !s.HasRegion(region) {
		return SourceInfo{Name: "none"}
	}
	return s.src
}

// Len is the number of records.
func (s *Static) Len() int {
	n := 0
	for _, m := range s.byRegion {
		n += len(m)
	}
	return n
}

// Layered answers each region from the first layer that has it: live data over a catalog file over
// the embedded default.
type Layered struct{ layers []Catalog }

func NewLayered(layers ...Catalog) *Layered { return &Layered{layers: layers} }

func (l *Layered) layerFor(region string) Catalog {
	for _, c := range l.layers {
		if c.HasRegion(region) {
			return c
		}
	}
	return nil
}

func (l *Layered) Lookup(region, size string) (SKU, bool) {
	if c := l.layerFor(region); c != nil {
		return c.Lookup(region, size)
	}
	return SKU{}, false
}

func (l *Layered) LookupAll(size string) []SKU {
	var out []SKU
	for _, r := range l.Regions() {
		if k, ok := l.Lookup(r, size); ok {
			out = append(out, k)
		}
	}
	return out
}

func (l *Layered) HasRegion(region string) bool { return l.layerFor(region) != nil }

func (l *Layered) Regions() []string {
	var out []string
	for _, c := range l.layers {
		out = append(out, c.Regions()...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (l *Layered) SKUs(region string) []SKU {
	if c := l.layerFor(region); c != nil {
		return c.SKUs(region)
	}
	return nil
}

// Source describes the layer that answers region; for "" it names the layers in order.
func (l *Layered) Source(region string) SourceInfo {
	if region != "" {
		if c := l.layerFor(region); c != nil {
			return c.Source(region)
		}
		return SourceInfo{Name: "none"}
	}
	var names []string
	for _, c := range l.layers {
		names = append(names, c.Source("").Name)
	}
	return SourceInfo{Name: strings.Join(names, "+")}
}
