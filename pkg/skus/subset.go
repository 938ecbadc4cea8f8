package skus

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
)

// subsetFile is the shape of the project's shared fact file: real resource-SKU records per region,
// reduced to name, family, capabilities and restrictions.
type subsetFile struct {
	Source  string `json:"source"`
	Regions map[string]struct {
		File        string      `json:"file"`
		GeneratedAt string      `json:"generatedAt"`
		SKUs        []subsetSKU `json:"skus"`
	} `json:"regions"`
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

// ConvertSubset turns the shared fact file into the JSON `az vm list-skus --all -o json` prints, so
// the embedded catalog is read by the same code as a user's catalog file. Output is deterministic
// (regions, then names, sorted; capabilities sorted) so regenerating it changes nothing. The subset
// gives no zones for Zone restrictions and none are invented.
func ConvertSubset(data []byte) ([]byte, error) {
	var in subsetFile
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("reading the SKU subset: %w", err)
	}
	regions := make([]string, 0, len(in.Regions))
	for r := range in.Regions {
		regions = append(regions, r)
	}
	slices.Sort(regions)
	var out []*armcompute.ResourceSKU
	for _, region := range regions {
		recs := in.Regions[region].SKUs
		slices.SortFunc(recs, func(a, b subsetSKU) int { return strings.Compare(a.Name, b.Name) })
		for _, s := range recs {
			tier, size, _ := strings.Cut(s.Name, "_")
			r := &armcompute.ResourceSKU{
				ResourceType: to.Ptr("virtualMachines"),
				Name:         to.Ptr(s.Name),
				Tier:         to.Ptr(tier),
				Size:         to.Ptr(size),
				Family:       to.Ptr(s.Family),
				Locations:    []*string{to.Ptr(region)},
				LocationInfo: []*armcompute.ResourceSKULocationInfo{{Location: to.Ptr(region)}},
				Restrictions: []*armcompute.ResourceSKURestrictions{},
			}
			names := make([]string, 0, len(s.Capabilities))
			for n := range s.Capabilities {
				names = append(names, n)
			}
			slices.Sort(names)
			for _, n := range names {
				r.Capabilities = append(r.Capabilities, &armcompute.ResourceSKUCapabilities{Name: to.Ptr(n), Value: to.Ptr(s.Capabilities[n])})
			}
			for _, rs := range s.Restrictions {
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
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// SubsetAsOf returns the newest generatedAt of the subset's regions and a provenance line.
func SubsetAsOf(data []byte) (time.Time, string, error) {
	var in subsetFile
	if err := json.Unmarshal(data, &in); err != nil {
		return time.Time{}, "", err
	}
	var newest time.Time
	for _, r := range in.Regions {
		if t, err := time.Parse(time.RFC3339, r.GeneratedAt); err == nil && t.After(newest) {
			newest = t
		}
	}
	return newest, in.Source, nil
}
