package skus

import (
	"bytes"
	"os"
	"testing"
)

func TestParseAzCLI(t *testing.T) {
	const cli = `[
 {"resourceType":"virtualMachines","name":"Standard_D2s_v3","tier":"Standard","size":"D2s_v3","family":"standardDSv3Family",
  "locations":["eastus","westeurope"],"locationInfo":[{"location":"eastus","zones":["1","2","3"]},{"location":"westeurope"}],
  "capabilities":[{"name":"EncryptionAtHostSupported","value":"True"}],
  "restrictions":[{"type":"Zone","values":["westeurope"],"restrictionInfo":{"locations":["westeurope"],"zones":["2","3"]},"reasonCode":"NotAvailableForSubscription"}]},
 {"resourceType":"virtualMachines","name":"Standard_A0","locations":["westcentralus"],
  "capabilities":[{"name":"EncryptionAtHostSupported","value":"False"}],
  "restrictions":[{"type":"Location","values":["westcentralus"],"restrictionInfo":{"locations":["westcentralus"]},"reasonCode":"NotAvailableForSubscription"}]},
 {"resourceType":"disks","name":"Premium_LRS","locations":["eastus"]}
]`
	got, err := ParseAzCLI([]byte(cli))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("want 3 records (2 locations + 1, disks skipped), got %d: %+v", len(got), got)
	}
	c := NewStatic(got, SourceInfo{Name: "file"})
	east, ok := c.Lookup("East US", "standard_d2s_V3")
	if !ok || !east.EncryptionAtHostSupported() || len(east.Restrictions) != 0 {
		t.Errorf("eastus D2s_v3 = %+v %v", east, ok)
	}
	weu, _ := c.Lookup("westeurope", "Standard_D2s_v3")
	if r, ok := weu.SubscriptionRestriction(); !ok || r.Type != RestrictionTypeZone || len(r.Zones) != 2 {
		t.Errorf("westeurope restriction = %+v %v", r, ok)
	}
	a0, _ := c.Lookup("westcentralus", "Standard_A0")
	if r, ok := a0.SubscriptionRestriction(); !ok || r.Type != RestrictionTypeLocation || a0.EncryptionAtHostSupported() {
		t.Errorf("A0 = %+v", a0)
	}

	envelope, err := ParseAzCLI([]byte(`{"value":[{"resourceType":"virtualMachines","name":"Standard_B1s","locations":["eastus"]}]}`))
	if err != nil || len(envelope) != 1 || envelope[0].Name != "Standard_B1s" {
		t.Errorf("REST envelope: %+v %v", envelope, err)
	}
	for name, bad := range map[string]string{
		"not JSON":     "name: x",
		"broken JSON":  "[{",
		"missing name": `[{"resourceType":"virtualMachines","locations":["eastus"]}]`,
		"no locations": `[{"resourceType":"virtualMachines","name":"Standard_X"}]`,
	} {
		if _, err := ParseAzCLI([]byte(bad)); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestEmbedded(t *testing.T) {
	c := Embedded()
	if c.Len() != 49 {
		t.Errorf("embedded records = %d, want 49", c.Len())
	}
	counts := map[string]int{"eastus": 17, "southcentralus": 20, "westcentralus": 12}
	for region, n := range counts {
		if got := len(c.SKUs(region)); got != n {
			t.Errorf("%s: %d records, want %d", region, got, n)
		}
	}
	check := func(region, size string, eah, restricted bool) {
		t.Helper()
		s, ok := c.Lookup(region, size)
		if !ok {
			t.Errorf("%s/%s missing", region, size)
			return
		}
		_, r := s.SubscriptionRestriction()
		if s.EncryptionAtHostSupported() != eah || r != restricted {
			t.Errorf("%s/%s: eah=%v restricted=%v, want %v %v", region, size, s.EncryptionAtHostSupported(), r, eah, restricted)
		}
	}
	check("eastus", "Standard_D2s_v3", true, false)
	check("East US", "standard_d2s_V3", true, false)
	check("eastus", "Standard_D2_v3", false, false)
	check("eastus", "Standard_A0", false, true)
	check("eastus", "Standard_M8-2ms", true, true)
	check("southcentralus", "Standard_M8-2ms", true, false)
	check("westcentralus", "Standard_A0", false, true)
	if s, _ := c.Lookup("westcentralus", "Standard_A0"); s.Restrictions[0].Type != RestrictionTypeLocation {
		t.Errorf("westcentralus A0 restriction = %+v, want Location", s.Restrictions)
	}
	if src := c.Source("eastus"); src.Name != "embedded" || src.AsOf.IsZero() {
		t.Errorf("source = %+v", src)
	}
	if src := c.Source("westeurope"); src.Name != "none" {
		t.Errorf("unknown region source = %+v", src)
	}
}

// TestEmbeddedMatchesSubset: the committed catalog is exactly what the generator makes of the shared
// fact file, and its recorded date is the fact file's newest.
func TestEmbeddedMatchesSubset(t *testing.T) {
	data, err := os.ReadFile("../../../shared/data/azure-vm-skus-subset.json")
	if os.IsNotExist(err) {
		t.Skip("the shared fact file is not beside this checkout; nothing to compare with")
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := ConvertSubset(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, embeddedCatalog) {
		t.Fatal("pkg/skus/data/vm-skus.json is stale: run `make sku-catalog-embedded`")
	}
	asOf, _, err := SubsetAsOf(data)
	if err != nil || !asOf.Equal(embeddedAsOf) {
		t.Fatalf("embeddedAsOf = %v, the fact file says %v (%v)", embeddedAsOf, asOf, err)
	}
}

func TestLayered(t *testing.T) {
	file := NewStatic([]SKU{{Name: "Standard_D2s_v3", Region: "eastus", Capabilities: map[string]string{CapabilityEncryptionAtHost: "False"}}}, SourceInfo{Name: "file"})
	l := NewLayered(file, Embedded())
	s, _ := l.Lookup("eastus", "Standard_D2s_v3")
	if s.EncryptionAtHostSupported() || l.Source("eastus").Name != "file" {
		t.Errorf("the file must answer for eastus: %+v from %s", s, l.Source("eastus").Name)
	}
	if _, ok := l.Lookup("eastus", "Standard_B1s"); ok {
		t.Error("a region answered by the file must not fall through to the embedded data size by size")
	}
	if s, ok := l.Lookup("southcentralus", "Standard_B1s"); !ok || l.Source("southcentralus").Name != "embedded" || !s.EncryptionAtHostSupported() {
		t.Errorf("southcentralus must come from the embedded catalog")
	}
	if got := l.Regions(); len(got) != 3 {
		t.Errorf("regions = %v", got)
	}
	if all := l.LookupAll("Standard_D2s_v3"); len(all) != 3 || all[0].EncryptionAtHostSupported() {
		t.Errorf("LookupAll = %+v", all)
	}
	if l.Source("").Name != "file+embedded" || l.HasRegion("westeurope") || l.Source("westeurope").Name != "none" {
		t.Errorf("sources: %q %v %q", l.Source("").Name, l.HasRegion("westeurope"), l.Source("westeurope").Name)
	}
}
