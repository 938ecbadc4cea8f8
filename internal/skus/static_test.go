package skus

import (
	"slices"
	"testing"
	"time"
)

func TestStatic(t *testing.T) {
	src := SourceInfo{Name: "file", Detail: "skus.json", AsOf: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	eah := func(v string) map[string]string { return map[string]string{CapabilityEncryptionAtHost: v} }
	c := NewStatic([]SKU{
		{Name: "Standard_D2s_v3", Region: "westcentralus", Capabilities: eah("True")},
		{Name: "Standard_D2s_v3", Region: "East US", Capabilities: eah("True")},
		{Name: "Standard_B1s", Region: "eastus", Capabilities: eah("True")},
		{Name: "Standard_A0", Region: "eastus", Capabilities: eah("False")},
		// A later record for the same region and size wins.
		{Name: "standard_b1s", Region: "EASTUS", Capabilities: eah("False")},
		// Unusable records are dropped rather than indexed under "".
		{Name: "Standard_X", Region: ""},
		{Name: " ", Region: "eastus"},
	}, src)

	if got := c.Regions(); !slices.Equal(got, []string{"eastus", "westcentralus"}) {
		t.Errorf("Regions() = %v", got)
	}
	if n := len(c.SKUs("eastus")) + len(c.SKUs("westcentralus")); n != 4 {
		t.Errorf("%d records, want 4", n)
	}
	if got := names(c.SKUs("eastus")); !slices.Equal(got, []string{"Standard_A0", "Standard_D2s_v3", "standard_b1s"}) {
		t.Errorf("SKUs(eastus) = %v, want sorted by name", got)
	}
	all := c.LookupAll("STANDARD_D2S_V3")
	if len(all) != 2 || all[0].Region != "eastus" || all[1].Region != "westcentralus" {
		t.Errorf("LookupAll = %+v, want eastus then westcentralus", all)
	}

	for _, tc := range []struct {
		region, size string
		found, eah   bool
	}{
		{"eastus", "Standard_D2s_v3", true, true},
		{"East US", "standard_d2s_v3", true, true},
		{" eastus ", " Standard_D2s_v3 ", true, true},
		{"eastus", "Standard_B1s", true, false},
		{"westcentralus", "Standard_B1s", false, false},
		{"westeurope", "Standard_D2s_v3", false, false},
		{"", "Standard_X", false, false},
	} {
		s, ok := c.Lookup(tc.region, tc.size)
		if ok != tc.found || s.EncryptionAtHostSupported() != tc.eah {
			t.Errorf("Lookup(%q, %q) = eah %v, %v; want %v, %v", tc.region, tc.size, s.EncryptionAtHostSupported(), ok, tc.eah, tc.found)
		}
	}

	for _, tc := range []struct {
		region string
		want   string
	}{{"eastus", "file"}, {"East US", "file"}, {"", "file"}, {"westeurope", "none"}} {
		got := c.Source(tc.region)
		if got.Name != tc.want || (tc.want == "file" && (got.Detail != src.Detail || !got.AsOf.Equal(src.AsOf))) {
			t.Errorf("Source(%q) = %+v, want %s", tc.region, got, tc.want)
		}
		if c.HasRegion(tc.region) != (tc.want == "file" && tc.region != "") {
			t.Errorf("HasRegion(%q) = %v", tc.region, c.HasRegion(tc.region))
		}
	}

	// Regions() hands out a copy: a caller sorting or appending must not corrupt the catalog.
	r := c.Regions()
	r[0] = "mutated"
	if c.Regions()[0] != "eastus" {
		t.Error("Regions() exposes internal state")
	}
}

func names(list []SKU) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.Name
	}
	return out
}

// TestStaticByRegion: a catalog whose regions come from different captures describes each region by
// its own source, and the whole catalog (and only regions it has) by the overall one.
func TestStaticByRegion(t *testing.T) {
	whole := SourceInfo{Name: "embedded", Detail: "all", Selection: true}
	east := SourceInfo{Name: "embedded", Detail: "east listing", AsOf: time.Date(2020, 8, 25, 0, 0, 0, 0, time.UTC)}
	c := NewStaticByRegion([]SKU{
		{Name: "Standard_D2s_v3", Region: "eastus", Capture: &Capture{Origin: "listing", OtherSubscription: true}},
		{Name: "Standard_D2s_v3", Region: "westus2"},
	}, whole, map[string]SourceInfo{"East US": east, "brazilsouth": {Name: "embedded", Detail: "no records"}})
	for _, tc := range []struct {
		region string
		want   SourceInfo
	}{{"eastus", east}, {"EASTUS", east}, {"westus2", whole}, {"", whole}, {"brazilsouth", SourceInfo{Name: "none"}}} {
		if got := c.Source(tc.region); got != tc.want {
			t.Errorf("Source(%q) = %+v, want %+v", tc.region, got, tc.want)
		}
	}
	if s, _ := c.Lookup("eastus", "standard_d2s_v3"); s.Capture == nil || s.Capture.Origin != "listing" {
		t.Errorf("the record's capture is lost: %+v", s)
	}
}
