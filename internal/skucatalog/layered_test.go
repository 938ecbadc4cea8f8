package skucatalog

import (
	"slices"
	"testing"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

func TestLayered(t *testing.T) {
	eah := func(v string) map[string]string { return map[string]string{skus.CapabilityEncryptionAtHost: v} }
	// "live" knows westcentralus only; the "file" disagrees with the embedded data about eastus and
	// lacks Standard_B1s there; "embedded" is the real data (eastus, eastus2, southcentralus,
	// westcentralus).
	live := skus.NewStatic([]skus.SKU{
		{Name: "Standard_D2s_v3", Region: "westcentralus", Capabilities: eah("True")},
	}, skus.SourceInfo{Name: "live", AsOf: time.Now()})
	file := skus.NewStatic([]skus.SKU{
		{Name: "Standard_D2s_v3", Region: "eastus", Capabilities: eah("False")},
		{Name: "Standard_D2s_v3", Region: "westeurope", Capabilities: eah("True")},
	}, skus.SourceInfo{Name: "file", Detail: "skus.json"})
	l := skus.NewLayered(live, nil, file, Embedded())

	for _, tc := range []struct {
		name         string
		region, size string
		found, eah   bool
		source       string
	}{
		{"file overrides embedded", "eastus", "Standard_D2s_v3", true, false, "file"},
		{"case and spaces", "East US", "standard_D2S_v3", true, false, "file"},
		{"per region, not per size: no fall-through", "eastus", "Standard_B1s", false, false, "file"},
		{"only the file has it", "westeurope", "Standard_D2s_v3", true, true, "file"},
		{"embedded fills the gaps", "southcentralus", "Standard_B1s", true, true, "embedded"},
		{"live overrides embedded", "westcentralus", "Standard_D2s_v3", true, true, "live"},
		{"live answers its region whole", "westcentralus", "Standard_A0", false, false, "live"},
		{"nobody knows the region", "brazilsouth", "Standard_D2s_v3", false, false, "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := l.Lookup(tc.region, tc.size)
			if ok != tc.found || s.EncryptionAtHostSupported() != tc.eah {
				t.Errorf("Lookup = eah %v, %v; want %v, %v", s.EncryptionAtHostSupported(), ok, tc.eah, tc.found)
			}
			if got := l.Source(tc.region).Name; got != tc.source {
				t.Errorf("Source = %q, want %q", got, tc.source)
			}
			if l.HasRegion(tc.region) != (tc.source != "none") {
				t.Errorf("HasRegion = %v", l.HasRegion(tc.region))
			}
		})
	}

	if got := l.Regions(); !slices.Equal(got, []string{"eastus", "eastus2", "southcentralus", "westcentralus", "westeurope"}) {
		t.Errorf("Regions() = %v, want the sorted union", got)
	}
	all := l.LookupAll("Standard_D2s_v3")
	var regions, sources []string
	for _, s := range all {
		regions = append(regions, s.Region)
		sources = append(sources, map[bool]string{true: "eah", false: "no-eah"}[s.EncryptionAtHostSupported()])
	}
	if !slices.Equal(regions, []string{"eastus", "eastus2", "southcentralus", "westcentralus", "westeurope"}) ||
		!slices.Equal(sources, []string{"no-eah", "eah", "eah", "eah", "eah"}) {
		t.Errorf("LookupAll: regions %v, eah %v; want the file's eastus record first", regions, sources)
	}
	if got := len(l.SKUs("eastus")); got != 1 {
		t.Errorf("SKUs(eastus) = %d records, want the file's 1", got)
	}
	if got := len(l.SKUs("southcentralus")); got != 21 {
		t.Errorf("SKUs(southcentralus) = %d records, want the embedded 21", got)
	}
	if got := l.Source("").Name; got != "live+file+embedded" {
		t.Errorf("Source(\"\") = %q", got)
	}

	empty := skus.NewLayered()
	if _, ok := empty.Lookup("eastus", "Standard_D2s_v3"); ok || empty.HasRegion("eastus") || len(empty.Regions()) != 0 || empty.Source("eastus").Name != "none" {
		t.Error("an empty Layered must know nothing")
	}
}
