package skucatalog

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// testFacts is a fact file in the shared file's shape: two regions given out of order, records out
// of order, capabilities as a map, restrictions with and without zones (and one in the old shape,
// naming no location), and three captures, one of them a complete listing.
const testFacts = `{"source": "test facts", "regions": {
  "westcentralus": {"generatedAt": "2024-12-13T00:09:53Z", "skus": [
    {"name": "Standard_A0", "family": "standardA0_A7Family", "capabilities": {"vCPUs": "1", "EncryptionAtHostSupported": "False"},
     "restrictions": [{"reasonCode": "NotAvailableForSubscription", "type": "Location", "values": ["westcentralus"], "restrictionInfo": {"locations": ["westcentralus"]}}]}]},
  "eastus": {"generatedAt": "2024-12-13T00:09:51Z; 2020-08-25T16:23:43-07:00", "skus": [
    {"name": "Standard_M8-2ms", "family": "standardMSFamily", "capabilities": {"EncryptionAtHostSupported": "True"},
     "restrictions": [{"reasonCode": "NotAvailableForSubscription", "type": "Zone", "values": ["eastus"], "restrictionInfo": {"locations": ["eastus"], "zones": ["2", "1"]}}]},
    {"name": "Basic_A0", "family": "basicAFamily", "capabilities": {}, "restrictions": [{"reasonCode": "NotAvailableForSubscription", "type": "Zone"}]},
    {"name": "Oddity", "family": "", "capabilities": {}, "restrictions": []}]}},
 "sources": [
  {"repo": "Azure/karpenter-provider-azure", "path": "pkg/fake/zz_generated.sku.eastus.go", "commit": "ace0fc6166ace9e36ea446872620e5e8a84c8b5a",
   "licence": "Apache-2.0", "generatedAt": "2024-12-13T00:09:51Z", "note": "selected SKUs only", "taken": {"eastus": ["Standard_M8-2ms"]}},
  {"repo": "Azure/karpenter-provider-azure", "path": "pkg/fake/zz_generated.sku.westcentralus.go", "commit": "352646f599290c3a6d2f9710fb535a7b288f88ed",
   "licence": "Apache-2.0", "generatedAt": "2024-12-13T00:09:53Z", "taken": {"westcentralus": ["Standard_A0"]}},
  {"repo": "Azure/skewer", "path": "testdata/eastus.json", "commit": "ab19a3fa578b4e07d8525e4db32c98667b9cd1f2",
   "licence": "MIT", "generatedAt": "2020-08-25T16:23:43-07:00", "note": "commit date", "taken": {"eastus": ["Oddity", "Basic_A0"]}}]}`

func TestConvertFactFile(t *testing.T) {
	out, prov, err := ConvertFactFile([]byte(testFacts))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(out, []byte("}\n]\n")) || !bytes.HasPrefix(out, []byte("[\n  {\n")) {
		t.Errorf("want a two-space-indented array with a trailing newline:\n%s", out)
	}
	again, againProv, _ := ConvertFactFile([]byte(testFacts))
	if !bytes.Equal(out, again) || !bytes.Equal(prov, againProv) {
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
		t.Errorf("Location restriction = %+v / %+v", rs[0], rs[0].RestrictionInfo)
	}
	// Zones are kept as the source had them (not sorted, not invented).
	if z := recs[2].Restrictions[0].RestrictionInfo.Zones; !slices.Equal(deref(z), []string{"2", "1"}) {
		t.Errorf("M8-2ms zones = %v, want the source's [2 1]", deref(z))
	}
	// A restriction in the old shape (no location named) gets the record's region, as az prints it.
	if r := recs[0].Restrictions[0]; !slices.Equal(deref(r.Values), []string{"eastus"}) || r.RestrictionInfo.Zones != nil {
		t.Errorf("Basic_A0 restriction = %+v / %+v", r, r.RestrictionInfo)
	}
	if *recs[0].ResourceType != "virtualMachines" || len(recs[0].LocationInfo) != 1 || *recs[0].LocationInfo[0].Location != "eastus" || recs[1].Restrictions == nil {
		t.Errorf("record shape: %+v", recs[0])
	}
	for _, w := range []string{`"apiVersions": null`, `"capacity": null`, `"costs": null`, `"kind": null`, `"restrictions": []`} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %s, which az prints", w)
		}
	}

	// The provenance names every record's capture, in the fact file's order, dated in UTC; only the
	// skewer capture is a complete listing, and every capture is someone else's subscription.
	p, err := ParseProvenance(prov)
	if err != nil {
		t.Fatal(err)
	}
	if p.FactSource != "test facts" || len(p.Captures) != 3 {
		t.Fatalf("provenance = %+v", p)
	}
	sk := p.Captures[2]
	if !sk.CompleteListing || p.Captures[0].CompleteListing || p.Captures[1].CompleteListing ||
		!sk.CapturedAt.Equal(time.Date(2020, 8, 25, 23, 23, 43, 0, time.UTC)) || sk.CapturedAt.Location() != time.UTC ||
		!slices.Equal(sk.Sizes["eastus"], []string{"Basic_A0", "Oddity"}) {
		t.Errorf("skewer capture = %+v", sk)
	}
	for _, c := range p.Captures {
		if !c.OtherSubscription {
			t.Errorf("%s: a capture from a public repository is not the user's subscription", c.Describe())
		}
	}
	if got := sk.Describe(); got != "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT)" {
		t.Errorf("Describe = %q", got)
	}

	// The converted files are read back by the same code as the embedded catalog.
	c, err := buildEmbedded(out, prov)
	if err != nil {
		t.Fatal(err)
	}
	if m8, ok := c.Lookup("eastus", "standard_m8-2ms"); !ok || m8.Capture == nil || !strings.Contains(m8.Capture.Origin, "karpenter") || !m8.Capture.OtherSubscription {
		t.Errorf("M8-2ms = %+v", m8)
	}
	if src := c.Source("eastus"); src.Selection || !src.AsOf.Equal(sk.CapturedAt) || src.Detail != "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT), a complete listing (1 of its sizes from newer captures)" {
		t.Errorf("eastus source = %+v, want the complete listing of 2020", src)
	}
	if src := c.Source("westcentralus"); !src.Selection || !src.OtherSubscription {
		t.Errorf("westcentralus source = %+v, want a selection", src)
	}
}

func eqPtr(a, b *string) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }

func TestConvertFactFileErrors(t *testing.T) {
	src := func(taken string) string {
		return `"sources": [{"repo": "r", "path": "p", "commit": "c", "generatedAt": "2024-01-01T00:00:00Z", "taken": ` + taken + `}]`
	}
	for _, tc := range []struct{ name, data, want string }{
		{"not JSON", "{", "reading the SKU fact file"},
		{"no regions", `{"regions": {}}`, "no regions"},
		{"the old subset, without sources", `{"regions": {"eastus": {"skus": [{"name": "Standard_A0"}]}}}`, `no "sources"`},
		{"unnormalised region", `{"regions": {"East US": {"skus": []}}, ` + src(`{"eastus": ["x"]}`) + `}`, `region "East US"`},
		{"missing name", `{"regions": {"eastus": {"skus": [{"family": "x"}]}}, ` + src(`{"eastus": ["x"]}`) + `}`, "region eastus, record 0: missing name"},
		{"record without a source", `{"regions": {"eastus": {"skus": [{"name": "Standard_A0"}]}}, ` + src(`{"eastus": ["Standard_B1s"]}`) + `}`, `Standard_A0: no source names it`},
		{"source naming a missing record", `{"regions": {"eastus": {"skus": [{"name": "Standard_A0"}]}}, ` + src(`{"eastus": ["Standard_A0", "Standard_B1s"]}`) + `}`, "eastus/standard_b1s"},
		{"bad date", `{"regions": {"eastus": {"skus": []}}, "sources": [{"repo": "r", "generatedAt": "yesterday", "taken": {"eastus": ["x"]}}]}`, "generatedAt"},
		{"restriction without type", `{"regions": {"eastus": {"skus": [{"name": "Standard_A0", "restrictions": [{"reasonCode": "NotAvailableForSubscription"}]}]}}, ` + src(`{"eastus": ["Standard_A0"]}`) + `}`, "restriction 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ConvertFactFile([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, data, want string }{
		{"unknown key", `{"captures": [], "extra": 1}`, "unknown field"},
		{"no captures", `{"captures": []}`, "no captures"},
		{"capture without date", `{"captures": [{"repo": "r", "sizes": {"eastus": ["x"]}}]}`, "lacks a date"},
	} {
		t.Run("provenance "+tc.name, func(t *testing.T) {
			if _, err := ParseProvenance([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
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
