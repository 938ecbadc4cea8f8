package skus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
)

// ParseAzCLI reads the JSON that `az vm list-skus --all -o json` prints (an array of ARM
// resource-SKU records), or the REST envelope {"value": [...]}. It decodes into the SDK's own model
// so the accepted format is exactly Azure's. Records that are not virtualMachines are skipped; a
// record listing several locations yields one SKU per location.
func ParseAzCLI(data []byte) ([]SKU, error) {
	data = bytes.TrimSpace(data)
	var records []*armcompute.ResourceSKU
	switch {
	case len(data) > 0 && data[0] == '[':
		if err := json.Unmarshal(data, &records); err != nil {
			return nil, fmt.Errorf("not the JSON of `az vm list-skus -o json`: %w", err)
		}
	case len(data) > 0 && data[0] == '{':
		var env armcompute.ResourceSKUsResult
		if err := json.Unmarshal(data, &env); err != nil {
			return nil, fmt.Errorf("not a resource-SKU list: %w", err)
		}
		records = env.Value
	default:
		return nil, fmt.Errorf("expected a JSON array of resource SKUs (`az vm list-skus --all -o json`)")
	}
	return FromSDK(records)
}

// FromSDK converts SDK resource-SKU records (from a file or a live call) into catalog records.
func FromSDK(records []*armcompute.ResourceSKU) ([]SKU, error) {
	var out []SKU
	for i, r := range records {
		if r == nil {
			return nil, fmt.Errorf("record %d: null", i)
		}
		if r.ResourceType != nil && !strings.EqualFold(*r.ResourceType, "virtualMachines") {
			continue
		}
		if r.Name == nil || *r.Name == "" {
			return nil, fmt.Errorf("record %d: missing name", i)
		}
		locations := deref(r.Locations)
		for _, li := range r.LocationInfo {
			if li != nil && li.Location != nil && !containsFold(locations, *li.Location) {
				locations = append(locations, *li.Location)
			}
		}
		if len(locations) == 0 {
			return nil, fmt.Errorf("record %d (%s): no locations", i, *r.Name)
		}
		caps := map[string]string{}
		for _, c := range r.Capabilities {
			if c != nil && c.Name != nil && c.Value != nil {
				caps[*c.Name] = *c.Value
			}
		}
		for _, loc := range locations {
			s := SKU{Name: *r.Name, Region: NormalizeRegion(loc), Capabilities: caps}
			if r.Family != nil {
				s.Family = *r.Family
			}
			for _, rs := range r.Restrictions {
				if rs == nil || !restrictionApplies(rs, loc) {
					continue
				}
				x := Restriction{}
				if rs.Type != nil {
					x.Type = string(*rs.Type)
				}
				if rs.ReasonCode != nil {
					x.ReasonCode = string(*rs.ReasonCode)
				}
				if rs.RestrictionInfo != nil {
					x.Zones = deref(rs.RestrictionInfo.Zones)
				}
				s.Restrictions = append(s.Restrictions, x)
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// restrictionApplies: a restriction names the locations it is about in values (and in
// restrictionInfo.locations); one that names none applies to all of the record's locations.
func restrictionApplies(r *armcompute.ResourceSKURestrictions, loc string) bool {
	names := deref(r.Values)
	if r.RestrictionInfo != nil {
		names = append(names, deref(r.RestrictionInfo.Locations)...)
	}
	if len(names) == 0 {
		return true
	}
	return containsFold(names, loc)
}

// LoadFile reads a catalog file.
func LoadFile(path string) (*Static, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, _ := os.Stat(path)
	skus, err := ParseAzCLI(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(skus) == 0 {
		return nil, fmt.Errorf("%s: no virtualMachines records", path)
	}
	return NewStatic(skus, SourceInfo{Name: "file", Detail: path, AsOf: st.ModTime()}), nil
}

func deref(ps []*string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if p != nil {
			out = append(out, *p)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if NormalizeRegion(v) == NormalizeRegion(s) {
			return true
		}
	}
	return false
}
