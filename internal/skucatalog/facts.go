package skucatalog

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// factFile is the shape of the project's shared fact file (shared/data/azure-vm-skus-extended.json):
// real resource-SKU records per region, reduced to name, family, capabilities and restrictions, and
// the captures (sources) they were taken from, with which sizes each one gave.
type factFile struct {
	Source  string                `json:"source"`
	Regions map[string]factRegion `json:"regions"`
	Sources []factSource          `json:"sources"`
}

type factRegion struct {
	SKUs []factSKU `json:"skus"`
}

type factSource struct {
	Repo        string              `json:"repo"`
	Path        string              `json:"path"`
	Commit      string              `json:"commit"`
	Licence     string              `json:"licence"`
	GeneratedAt string              `json:"generatedAt"`
	Note        string              `json:"note"`
	Taken       map[string][]string `json:"taken"`
}

type factSKU struct {
	Name         string            `json:"name"`
	Family       string            `json:"family"`
	Capabilities map[string]string `json:"capabilities"`
	Restrictions []struct {
		ReasonCode      string   `json:"reasonCode"`
		Type            string   `json:"type"`
		Values          []string `json:"values"`
		RestrictionInfo *struct {
			Locations []string `json:"locations"`
			Zones     []string `json:"zones"`
		} `json:"restrictionInfo"`
	} `json:"restrictions"`
}

// completeListings are the captures that list every VM size of their region, rather than a
// selection, keyed by repository and full commit. Only for these does "the size is not in the
// capture" mean "the region did not offer it" (at the capture's date). The fact file does not say
// it in a field; its provenance notes (azure-vm-skus-extended.md) do: Azure/skewer's initial
// commit is a full `az vm list-skus -l eastus` dump of 377 VM records, while karpenter's captures
// hold "selected SKUs only" and the Java recording's 29 records were picked by hand.
var completeListings = map[string]bool{
	"Azure/skewer@ab19a3fa578b4e07d8525e4db32c98667b9cd1f2": true,
}

// Provenance is the record of where every record of the embedded catalog came from, kept next to it
// (data/vm-skus.provenance.json) because the az format has no room for it.
type Provenance struct {
	// FactSource is the fact file's own description of its data.
	FactSource string    `json:"factSource"`
	Captures   []Capture `json:"captures"`
}

// Capture is one capture of Azure's data and the sizes the catalog took from it, per region.
type Capture struct {
	Repo    string `json:"repo,omitempty"`
	Path    string `json:"path,omitempty"`
	Commit  string `json:"commit,omitempty"`
	Licence string `json:"licence,omitempty"`
	// Origin names a capture that has no repository (a live listing made with `make sku-catalog`).
	Origin     string    `json:"origin,omitempty"`
	CapturedAt time.Time `json:"capturedAt"`
	Note       string    `json:"note,omitempty"`
	// CompleteListing: the capture lists every size of its regions (see completeListings).
	CompleteListing bool `json:"completeListing"`
	// OtherSubscription: made in a subscription other than the user's, so its restrictions are not
	// the user's (true for every capture taken from public repositories).
	OtherSubscription bool                `json:"otherSubscription"`
	Sizes             map[string][]string `json:"sizes"`
}

// Describe names the capture for messages: repository, path and short commit, and licence.
func (c Capture) Describe() string {
	if c.Repo == "" {
		return c.Origin
	}
	out := c.Repo + " " + c.Path
	if c.Commit != "" {
		out += "@" + c.Commit[:min(12, len(c.Commit))]
	}
	if c.Licence != "" {
		out += " (" + c.Licence + ")"
	}
	return out
}

func readFacts(data []byte) (factFile, error) {
	var in factFile
	if err := json.Unmarshal(data, &in); err != nil {
		return in, fmt.Errorf("reading the SKU fact file: %w", err)
	}
	if len(in.Regions) == 0 {
		return in, errors.New("reading the SKU fact file: no regions")
	}
	if len(in.Sources) == 0 {
		return in, errors.New(`reading the SKU fact file: no "sources": every record needs the capture it came from`)
	}
	return in, nil
}

// ConvertFactFile turns the shared fact file into the embedded catalog: the JSON
// `az vm list-skus --all -o json` prints (so it is read by the same code as a user's catalog file),
// and the provenance of every record (which capture it came from, and when). Both outputs are
// deterministic (see MarshalAzCLI; capabilities sorted by name; captures in the fact file's order)
// so regenerating them changes nothing. Restrictions are written as the source had them (values,
// restrictionInfo.locations and .zones); a restriction that names no location gets the record's
// region, as az prints it. Nothing is invented: a record without zones gets none.
func ConvertFactFile(data []byte) (catalog, provenance []byte, err error) {
	in, err := readFacts(data)
	if err != nil {
		return nil, nil, err
	}
	taken := map[string]int{} // region/lower(name) → index of the capture that gave it
	prov := Provenance{FactSource: in.Source}
	for i, s := range in.Sources {
		at, err := time.Parse(time.RFC3339, s.GeneratedAt)
		if err != nil {
			return nil, nil, fmt.Errorf("source %d (%s %s): generatedAt: %w", i, s.Repo, s.Path, err)
		}
		if len(s.Taken) == 0 {
			return nil, nil, fmt.Errorf("source %d (%s %s): no sizes taken", i, s.Repo, s.Path)
		}
		c := Capture{Repo: s.Repo, Path: s.Path, Commit: s.Commit, Licence: s.Licence, CapturedAt: at.UTC(), Note: s.Note,
			CompleteListing: completeListings[s.Repo+"@"+s.Commit], OtherSubscription: true, Sizes: map[string][]string{}}
		for region, names := range s.Taken {
			for _, n := range names {
				k := region + "/" + strings.ToLower(n)
				if j, dup := taken[k]; dup {
					return nil, nil, fmt.Errorf("%s %s: taken from both source %d and source %d", region, n, j, i)
				}
				taken[k] = i
			}
			c.Sizes[region] = slices.Sorted(slices.Values(names))
		}
		prov.Captures = append(prov.Captures, c)
	}

	var out []*armcompute.ResourceSKU
	for region, rd := range in.Regions {
		if skus.NormalizeRegion(region) != region || region == "" {
			return nil, nil, fmt.Errorf("region %q: not a normalised Azure location name", region)
		}
		for i, s := range rd.SKUs {
			if s.Name == "" {
				return nil, nil, fmt.Errorf("region %s, record %d: missing name", region, i)
			}
			if _, ok := taken[region+"/"+strings.ToLower(s.Name)]; !ok {
				return nil, nil, fmt.Errorf("region %s, %s: no source names it in \"taken\"", region, s.Name)
			}
			delete(taken, region+"/"+strings.ToLower(s.Name))
			r, err := convertRecord(region, s)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, r)
		}
	}
	if len(taken) > 0 {
		left := slices.Sorted(func(yield func(string) bool) {
			for k := range taken {
				if !yield(k) {
					return
				}
			}
		})
		return nil, nil, fmt.Errorf("sources name sizes that no region holds: %s", strings.Join(left, ", "))
	}
	if catalog, err = MarshalAzCLI(out); err != nil {
		return nil, nil, err
	}
	if provenance, err = MarshalProvenance(prov); err != nil {
		return nil, nil, err
	}
	return catalog, provenance, nil
}

func convertRecord(region string, s factSKU) (*armcompute.ResourceSKU, error) {
	r := &armcompute.ResourceSKU{
		ResourceType: to.Ptr(ResourceTypeVM),
		Name:         to.Ptr(s.Name),
		Locations:    []*string{to.Ptr(region)},
		LocationInfo: []*armcompute.ResourceSKULocationInfo{{Location: to.Ptr(region)}},
		// az prints [] for an unrestricted size, and these four as null for VM sizes.
		Restrictions: []*armcompute.ResourceSKURestrictions{},
		APIVersions:  azcore.NullValue[[]*string](),
		Capacity:     azcore.NullValue[*armcompute.ResourceSKUCapacity](),
		Costs:        azcore.NullValue[[]*armcompute.ResourceSKUCosts](),
		Kind:         azcore.NullValue[*string](),
	}
	if s.Family != "" {
		r.Family = to.Ptr(s.Family)
	}
	// Azure's tier and size are the two halves of the name (Standard_D2s_v3 → Standard, D2s_v3); a
	// name without a known tier prefix gets neither rather than a guess.
	if tier, size, ok := strings.Cut(s.Name, "_"); ok && (tier == "Standard" || tier == "Basic") {
		r.Tier, r.Size = to.Ptr(tier), to.Ptr(size)
	}
	names := make([]string, 0, len(s.Capabilities))
	for n := range s.Capabilities {
		names = append(names, n)
	}
	slices.Sort(names)
	r.Capabilities = make([]*armcompute.ResourceSKUCapabilities, 0, len(names))
	for _, n := range names {
		r.Capabilities = append(r.Capabilities, &armcompute.ResourceSKUCapabilities{Name: to.Ptr(n), Value: to.Ptr(s.Capabilities[n])})
	}
	for j, rs := range s.Restrictions {
		if rs.Type == "" || rs.ReasonCode == "" {
			return nil, fmt.Errorf("region %s, %s: restriction %d lacks a type or reason code", region, s.Name, j)
		}
		values, locations := rs.Values, []string(nil)
		var zones []string
		if rs.RestrictionInfo != nil {
			locations, zones = rs.RestrictionInfo.Locations, rs.RestrictionInfo.Zones
		}
		if len(values) == 0 {
			values = []string{region}
		}
		if len(locations) == 0 {
			locations = []string{region}
		}
		x := &armcompute.ResourceSKURestrictions{
			Type:            to.Ptr(armcompute.ResourceSKURestrictionsType(rs.Type)),
			ReasonCode:      to.Ptr(armcompute.ResourceSKURestrictionsReasonCode(rs.ReasonCode)),
			Values:          to.SliceOfPtrs(values...),
			RestrictionInfo: &armcompute.ResourceSKURestrictionInfo{Locations: to.SliceOfPtrs(locations...)},
		}
		if len(zones) > 0 {
			x.RestrictionInfo.Zones = to.SliceOfPtrs(zones...)
		}
		r.Restrictions = append(r.Restrictions, x)
	}
	return r, nil
}

// MarshalProvenance writes the provenance record as the embedded file holds it: two-space indent,
// trailing newline, captures in the given order.
func MarshalProvenance(p Provenance) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseProvenance reads a provenance record and checks that every capture has a date and sizes.
func ParseProvenance(data []byte) (Provenance, error) {
	var p Provenance
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("provenance: %w", err)
	}
	if len(p.Captures) == 0 {
		return p, errors.New("provenance: no captures")
	}
	for i, c := range p.Captures {
		if c.CapturedAt.IsZero() || len(c.Sizes) == 0 || c.Describe() == "" {
			return p, fmt.Errorf("provenance: capture %d (%s) lacks a date, an origin or sizes", i, c.Describe())
		}
	}
	return p, nil
}

// MarshalAzCLI writes records as `az vm list-skus -o json` does (a bare array, two-space indent)
// with a trailing newline. Records are sorted by first location, then name, then resource type, so
// that a regenerated catalog diffs only where Azure's data changed, not where its order did. The
// caller's slice is not reordered; nil entries are dropped (a null element is not a record).
func MarshalAzCLI(records []*armcompute.ResourceSKU) ([]byte, error) {
	sorted := make([]*armcompute.ResourceSKU, 0, len(records))
	for _, r := range records {
		if r != nil {
			sorted = append(sorted, r)
		}
	}
	slices.SortStableFunc(sorted, func(a, b *armcompute.ResourceSKU) int {
		return cmp.Or(
			strings.Compare(firstLocation(a), firstLocation(b)),
			strings.Compare(strings.ToLower(strOr(a.Name)), strings.ToLower(strOr(b.Name))),
			strings.Compare(strOr(a.ResourceType), strOr(b.ResourceType)),
		)
	})
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// az does not escape <, > and & in its output; neither should we.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(sorted); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil // Encode ends with the newline
}

func firstLocation(r *armcompute.ResourceSKU) string {
	for _, l := range r.Locations {
		if l != nil {
			return skus.NormalizeRegion(*l)
		}
	}
	for _, li := range r.LocationInfo {
		if li != nil && li.Location != nil {
			return skus.NormalizeRegion(*li.Location)
		}
	}
	return ""
}

func strOr(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
