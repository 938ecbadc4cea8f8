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

// subsetFile is the shape of the project's shared fact file: real resource-SKU records per region,
// reduced to name, family, capabilities and restrictions.
type subsetFile struct {
	Source  string                  `json:"source"`
	Regions map[string]subsetRegion `json:"regions"`
}

type subsetRegion struct {
	File        string      `json:"file"`
	GeneratedAt string      `json:"generatedAt"`
	SKUs        []subsetSKU `json:"skus"`
}

type subsetSKU struct {
	Name         string            `json:"name"`
	Family       string            `json:"family"`
	Capabilities map[string]string `json:"capabilities"`
	Restrictions []struct {
		ReasonCode string `json:"reasonCode"`
		Type       string `json:"type"`
	} `json:"restrictions"`
}

func readSubset(data []byte) (subsetFile, error) {
	var in subsetFile
	if err := json.Unmarshal(data, &in); err != nil {
		return in, fmt.Errorf("reading the SKU subset: %w", err)
	}
	if len(in.Regions) == 0 {
		return in, errors.New("reading the SKU subset: no regions")
	}
	return in, nil
}

// ConvertSubset turns the shared fact file into the JSON `az vm list-skus --all -o json` prints, so
// the embedded catalog is read by the same code as a user's catalog file. Output is deterministic
// (see MarshalAzCLI; capabilities sorted by name) so regenerating it changes nothing. The subset
// gives no zones, neither where a size is offered nor which zones a Zone restriction covers, and
// none are invented: a made-up zone list would read as a fact about the subscription.
func ConvertSubset(data []byte) ([]byte, error) {
	in, err := readSubset(data)
	if err != nil {
		return nil, err
	}
	var out []*armcompute.ResourceSKU
	for region, rd := range in.Regions {
		if skus.NormalizeRegion(region) != region || region == "" {
			return nil, fmt.Errorf("region %q: not a normalised Azure location name", region)
		}
		for i, s := range rd.SKUs {
			if s.Name == "" {
				return nil, fmt.Errorf("region %s, record %d: missing name", region, i)
			}
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
			// Azure's tier and size are the two halves of the name (Standard_D2s_v3 → Standard,
			// D2s_v3); a name without a known tier prefix gets neither rather than a guess.
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
				r.Restrictions = append(r.Restrictions, &armcompute.ResourceSKURestrictions{
					Type:            to.Ptr(armcompute.ResourceSKURestrictionsType(rs.Type)),
					ReasonCode:      to.Ptr(armcompute.ResourceSKURestrictionsReasonCode(rs.ReasonCode)),
					Values:          []*string{to.Ptr(region)},
					RestrictionInfo: &armcompute.ResourceSKURestrictionInfo{Locations: []*string{to.Ptr(region)}},
				})
			}
			out = append(out, r)
		}
	}
	return MarshalAzCLI(out)
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

// SubsetGeneratedAt returns the fact file's source line and when each region's data was generated,
// for the embedded catalog's provenance.
func SubsetGeneratedAt(data []byte) (source string, generatedAt map[string]time.Time, err error) {
	in, err := readSubset(data)
	if err != nil {
		return "", nil, err
	}
	generatedAt = map[string]time.Time{}
	for region, rd := range in.Regions {
		t, err := time.Parse(time.RFC3339, rd.GeneratedAt)
		if err != nil {
			return "", nil, fmt.Errorf("region %s: generatedAt: %w", region, err)
		}
		generatedAt[region] = t
	}
	return in.Source, generatedAt, nil
}
