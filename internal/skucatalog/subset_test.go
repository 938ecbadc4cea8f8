package skucatalog

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

func TestConvertSubset(t *testing.T) {
	// Two regions given out of order, records out of order, capabilities as a map.
	const subset = `{"source": "test", "regions": {
	  "westcentralus": {"generatedAt": "2024-12-13T00:09:53Z", "skus": [
	    {"name": "Standard_A0", "family": "standardA0_A7Family", "capabilities": {"vCPUs": "1", "EncryptionAtHostSupported": "False"},
	     "restrictions": [{"reasonCode": "NotAvailableForSubscription", "type": "Location"}]}]},
	  "eastus": {"generatedAt": "2024-12-13T00:09:51Z", "skus": [
	    {"name": "Standard_M8-2ms", "family": "standardMSFamily", "capabilities": {"EncryptionAtHostSupported": "True"},
	     "restrictions": [{"reasonCode": "NotAvailableForSubscription", "type": "Zone"}]},
	    {"name": "Basic_A0", "family": "basicAFamily", "capabilities": {}, "restrictions": []},
	    {"name": "Oddity", "family": "", "capabilities": {}, "restrictions": []}]}}}`
	out, err := ConvertSubset([]byte(subset))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(out, []byte("}\n]\n")) || !bytes.HasPrefix(out, []byte("[\n  {\n")) {
		t.Errorf("want a two-space-indented array with a trailing newline:\n%s", out)
	}
	again, _ := ConvertSubset([]byte(subset))
	if !bytes.Equal(out, again) {
		t.Error("conversion is not deterministic")
	}

	var recs []*armcompute.ResourceSKU
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range recs {
		order = append(order, *r.Locations[0]+"/"+*r.Name)
	}
	if want := []string{"eastus/Basic_A0", "eastus/Oddity", "eastus/Standard_M8-2ms", "westcentralus/Standard_A0"}; !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v (region, then name)", order, want)
	}
	for _, tc := range []struct {
		idx        int
		tier, size *string
	}{{0, to.Ptr("Basic"), to.Ptr("A0")}, {1, nil, nil}, {2, to.Ptr("Standard"), to.Ptr("M8-2ms")}} {
		r := recs[tc.idx]
		if !eqPtr(r.Tier, tc.tier) || !eqPtr(r.Size, tc.size) {
			t.Errorf("%s: tier %v size %v", *r.Name, deref([]*string{r.Tier}), deref([]*string{r.Size}))
		}
	}
	a0 := recs[3]
	if caps := a0.Capabilities; len(caps) != 2 || *caps[0].Name != "EncryptionAtHostSupported" || *caps[1].Name != "vCPUs" {
		t.Errorf("capabilities not sorted by name: %v", caps)
	}
	rs := a0.Restrictions
	if len(rs) != 1 || *rs[0].Type != "Location" || *rs[0].ReasonCode != "NotAvailableForSubscription" ||
		!slices.Equal(deref(rs[0].Values), []string{"westcentralus"}) || !slices.Equal(deref(rs[0].RestrictionInfo.Locations), []string{"westcentralus"}) ||
		rs[0].RestrictionInfo.Zones != nil {
		t.Errorf("restriction = %+v / %+v", rs[0], rs[0].RestrictionInfo)
	}
	if strings.Contains(string(out), `"zones"`) {
		t.Error("the subset has no zones; the conversion must not write any")
	}
	if *recs[0].ResourceType != "virtualMachines" || len(recs[0].LocationInfo) != 1 || *recs[0].LocationInfo[0].Location != "eastus" || recs[0].Restrictions == nil {
		t.Errorf("record shape: %+v", recs[0])
	}
	for _, w := range []string{`"apiVersions": null`, `"capacity": null`, `"costs": null`, `"kind": null`, `"restrictions": []`} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %s, which az prints", w)
		}
	}

	// The converted file is read back by the same parser as a user's file.
	list, err := ParseAzCLI(out)
	if err != nil || len(list) != 4 {
		t.Fatalf("round trip: %d records, %v", len(list), err)
	}
}

func eqPtr(a, b *string) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }

func TestConvertSubsetErrors(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"not JSON", "{", "reading the SKU subset"},
		{"no regions", `{"regions": {}}`, "no regions"},
		{"unnormalised region", `{"regions": {"East US": {"skus": []}}}`, `region "East US"`},
		{"missing name", `{"regions": {"eastus": {"skus": [{"family": "x"}]}}}`, "region eastus, record 0: missing name"},
		{"restriction without type", `{"regions": {"eastus": {"skus": [{"name": "Standard_A0", "restrictions": [{"reasonCode": "NotAvailableForSubscription"}]}]}}}`, "restriction 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ConvertSubset([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, _, err := SubsetGeneratedAt([]byte(`{"regions": {"eastus": {"generatedAt": "yesterday"}}}`)); err == nil || !strings.Contains(err.Error(), "eastus") {
		t.Errorf("bad generatedAt: %v", err)
	}
}

// vm is a resource-SKU record of a VM size offered in one location.
func vm(name, loc, eah string) *armcompute.ResourceSKU {
	return &armcompute.ResourceSKU{ResourceType: to.Ptr("virtualMachines"), Name: to.Ptr(name), Locations: []*string{to.Ptr(loc)},
		Capabilities: []*armcompute.ResourceSKUCapabilities{{Name: to.Ptr(skus.CapabilityEncryptionAtHost), Value: to.Ptr(eah)}}}
}

func TestMarshalAzCLI(t *testing.T) {
	in := []*armcompute.ResourceSKU{
		vm("Standard_D2s_v3", "westus2", "True"),
		nil,
		vm("Standard_B1s", "westus2", "True"),
		vm("Standard_D2s_v3", "eastus", "True"),
	}
	orig := slices.Clone(in)
	out, err := MarshalAzCLI(in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in, orig) {
		t.Error("MarshalAzCLI reordered the caller's slice")
	}
	list, err := ParseAzCLI(out)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range list {
		order = append(order, s.Region+"/"+s.Name)
	}
	if want := []string{"eastus/Standard_D2s_v3", "westus2/Standard_B1s", "westus2/Standard_D2s_v3"}; !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
	if empty, _ := MarshalAzCLI(nil); string(empty) != "[]\n" {
		t.Errorf("empty = %q", empty)
	}
}
