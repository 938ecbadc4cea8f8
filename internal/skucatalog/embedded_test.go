package skucatalog

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// TestEmbedded pins the embedded catalog to facts of the real data it was made from.
func TestEmbedded(t *testing.T) {
	c := Embedded()
	n := 0
	for _, r := range c.Regions() {
		n += len(c.SKUs(r))
	}
	if n != 447 {
		t.Errorf("embedded records = %d, want 447", n)
	}
	if got := c.Regions(); !slices.Equal(got, []string{"eastus", "eastus2", "southcentralus", "westcentralus"}) {
		t.Errorf("regions = %v", got)
	}
	for _, tc := range []struct {
		region string
		n      int
	}{{"eastus", 383}, {"eastus2", 29}, {"southcentralus", 21}, {"westcentralus", 14}} {
		if got := len(c.SKUs(tc.region)); got != tc.n {
			t.Errorf("%s: %d records, want %d", tc.region, got, tc.n)
		}
	}

	karpenterEast := "Azure/karpenter-provider-azure pkg/fake/zz_generated.sku.eastus.go@ace0fc6166ac (Apache-2.0)"
	skewer2020 := "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT)"
	java := "Azure/azure-sdk-for-java sdk/resourcemanager/azure-resourcemanager-compute/src/test/resources/session-records/ComputeSkuTests.canListSkusByRegion.json@04da2345fc1d (MIT)"
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		region, size string
		found, eah   bool
		restriction  string   // type of the NotAvailableForSubscription restriction, "" for none
		zones        []string // of that restriction, as the source had them
		origin       string
		capturedOn   time.Time
	}{
		{"eastus", "Standard_D2s_v3", true, true, "", nil, karpenterEast, day(2024, 12, 13)},
		{"eastus", "Standard_D2_v3", true, false, "", nil, karpenterEast, day(2024, 12, 13)},
		{"eastus", "Standard_A0", true, false, skus.RestrictionTypeZone, []string{"1", "2", "3"}, karpenterEast, day(2024, 12, 13)},
		{"westcentralus", "Standard_A0", true, false, skus.RestrictionTypeLocation, nil, "Azure/karpenter-provider-azure pkg/fake/zz_generated.sku.westcentralus.go@352646f59929 (Apache-2.0)", day(2024, 12, 13)},
		{"eastus", "Standard_M8-2ms", true, true, skus.RestrictionTypeZone, []string{"1"}, karpenterEast, day(2024, 12, 13)},
		// From the 2020 full listing of eastus: real then, perhaps not now.
		{"eastus", "Standard_E4s_v3", true, true, "", nil, skewer2020, day(2020, 8, 25)},
		{"eastus", "Standard_D4a_v4", true, false, "", nil, skewer2020, day(2020, 8, 25)},
		{"eastus", "Basic_A0", true, false, skus.RestrictionTypeZone, []string{"1", "2", "3"}, skewer2020, day(2020, 8, 25)},
		{"eastus", "Standard_NV6", true, false, skus.RestrictionTypeZone, []string{"1", "2", "3"}, "Azure/skewer testdata/eastus.json@a3821e69bc09 (MIT)", day(2023, 7, 18)},
		{"eastus2", "Standard_D4s_v5", true, true, "", nil, java, day(2022, 6, 8)},
		// Only in the PR capture of karpenter, restricted for that subscription.
		{"southcentralus", "Standard_NV4ads_V710_v5", true, true, skus.RestrictionTypeLocation, nil, "Azure/karpenter-provider-azure pkg/fake/zz_generated.sku.southcentralus.go@cb68298e24b1 (Apache-2.0)", day(2026, 4, 14)},
		{"westcentralus", "Standard_M8-2ms", false, false, "", nil, "", time.Time{}},
		// Case and spelling of regions and sizes do not matter.
		{"EastUS", "standard_d2s_V3", true, true, "", nil, karpenterEast, day(2024, 12, 13)},
		{"East US", "STANDARD_D2S_V3", true, true, "", nil, karpenterEast, day(2024, 12, 13)},
		// A v5 size introduced after the 2020 listing: not in eastus.
		{"eastus", "Standard_D4s_v5", false, false, "", nil, "", time.Time{}},
		{"westeurope", "Standard_D2s_v3", false, false, "", nil, "", time.Time{}},
	} {
		s, ok := c.Lookup(tc.region, tc.size)
		if ok != tc.found {
			t.Errorf("%s/%s: found=%v, want %v", tc.region, tc.size, ok, tc.found)
			continue
		}
		if !ok {
			continue
		}
		r, restricted := s.SubscriptionRestriction()
		if s.EncryptionAtHostSupported() != tc.eah || restricted != (tc.restriction != "") || r.Type != tc.restriction || !slices.Equal(r.Zones, tc.zones) {
			t.Errorf("%s/%s: eah=%v restriction=%+v, want eah=%v restriction type %q zones %v", tc.region, tc.size, s.EncryptionAtHostSupported(), r, tc.eah, tc.restriction, tc.zones)
		}
		if r.ReasonCode != "" && r.ReasonCode != skus.ReasonNotAvailableForSub {
			t.Errorf("%s/%s: reason %q", tc.region, tc.size, r.ReasonCode)
		}
		if !strings.EqualFold(s.Name, tc.size) || s.Region != skus.NormalizeRegion(tc.region) || s.Family == "" {
			t.Errorf("%s/%s: got %q in %q, family %q", tc.region, tc.size, s.Name, s.Region, s.Family)
		}
		if s.Capture == nil || s.Capture.Origin != tc.origin || s.Capture.At.Truncate(24*time.Hour) != tc.capturedOn || !s.Capture.OtherSubscription {
			t.Errorf("%s/%s: capture %+v, want %s on %s, another subscription", tc.region, tc.size, s.Capture, tc.origin, tc.capturedOn.Format(time.DateOnly))
		}
	}

	if all := c.LookupAll("standard_d2_v2"); len(all) != 4 || all[0].Region != "eastus" || all[3].Region != "westcentralus" {
		t.Errorf("LookupAll(D2_v2) = %+v, want all four regions in order", all)
	}

	// Region sources: eastus is a complete listing as of 2020-08-25 (a size it lacks was not offered
	// then); the others are selections, as old as their oldest capture.
	for _, tc := range []struct {
		region    string
		selection bool
		asOf      time.Time
		detail    []string
	}{
		{"eastus", false, time.Date(2020, 8, 25, 23, 23, 43, 0, time.UTC), []string{skewer2020 + ", a complete listing (19 of its sizes from newer captures)"}},
		{"eastus2", true, time.Date(2022, 6, 8, 3, 39, 31, 0, time.UTC), []string{"a selection of 29 sizes: " + java + " captured 2022-06-08"}},
		{"southcentralus", true, time.Date(2025, 6, 3, 21, 16, 53, 0, time.UTC), []string{"a selection of 21 sizes: ", "@cb68298e24b1 (Apache-2.0) captured 2026-04-14, ", "@352646f59929 (Apache-2.0) captured 2025-06-03"}},
		{"westcentralus", true, time.Date(2024, 12, 13, 0, 9, 53, 0, time.UTC), []string{"a selection of 14 sizes: ", "captured 2024-12-13"}},
	} {
		src := c.Source(tc.region)
		if src.Name != "embedded" || src.Selection != tc.selection || !src.AsOf.Equal(tc.asOf) || !src.OtherSubscription {
			t.Errorf("%s: source = %+v, want selection=%v as of %v", tc.region, src, tc.selection, tc.asOf)
		}
		for _, w := range tc.detail {
			if !strings.Contains(src.Detail, w) {
				t.Errorf("%s: detail %q lacks %q", tc.region, src.Detail, w)
			}
		}
	}
	if whole := c.Source(""); whole.Name != "embedded" || !whole.AsOf.Equal(time.Date(2026, 4, 14, 22, 10, 30, 0, time.UTC)) ||
		!strings.Contains(whole.Detail, "karpenter-provider-azure (Apache-2.0), Azure/skewer (MIT)") {
		t.Errorf("whole catalog source = %+v", whole)
	}
	if got := c.Source("westeurope"); got.Name != "none" {
		t.Errorf("unknown region source = %+v", got)
	}
	if Embedded() != c {
		t.Error("Embedded() must parse once and share the result")
	}
}

// TestEmbeddedProvenanceMismatch: a catalog and a provenance that do not name the same records are
// refused, so a hand edit of either cannot leave a record without its capture.
func TestEmbeddedProvenanceMismatch(t *testing.T) {
	cat, prov, err := ConvertFactFile([]byte(testFacts))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, catalog, provenance, want string }{
		{"record without capture", string(cat), strings.Replace(string(prov), `"Oddity"`, `"Renamed"`, 1), "Oddity: no capture"},
		{"capture naming a missing record", strings.Replace(string(cat), `"name": "Oddity"`, `"name": "Standard_Oddity"`, 1), string(prov), "Standard_Oddity: no capture"},
		{"two complete listings", string(cat), strings.Replace(string(prov), `"completeListing": false`, `"completeListing": true`, 1), "two complete listings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := buildEmbedded([]byte(tc.catalog), []byte(tc.provenance)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestProvenanceDoc: data/PROVENANCE.md names every capture the embedded catalog uses, with its
// licence and date, and states the rules for old evidence.
func TestProvenanceDoc(t *testing.T) {
	doc, err := os.ReadFile("data/PROVENANCE.md")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProvenance(embeddedProvenance)
	if err != nil {
		t.Fatal(err)
	}
	wants := []string{"make sku-catalog-embedded", "from-azure", "azure-vm-skus-extended.json", "447",
		"sku-unknown", "eah-sku-unsupported", "catalog-region-missing", "three years"}
	for _, c := range p.Captures {
		wants = append(wants, c.Repo, c.Licence, c.Commit[:12], c.CapturedAt.Format(time.DateOnly))
	}
	for _, w := range wants {
		if !bytes.Contains(doc, []byte(w)) {
			t.Errorf("PROVENANCE.md lacks %q", w)
		}
	}
}

// TestEmbeddedMatchesFactFile: the committed catalog and its provenance are exactly what the
// generator makes of the shared fact file.
func TestEmbeddedMatchesFactFile(t *testing.T) {
	const factPath = "../../../shared/data/azure-vm-skus-extended.json"
	data, err := os.ReadFile(factPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is absent (a checkout without the shared fact file): nothing to compare the embedded catalog with", factPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	catalog, provenance, err := ConvertFactFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(catalog, embeddedCatalog) {
		t.Error("internal/skucatalog/data/vm-skus.json is stale: run `make sku-catalog-embedded`")
	}
	if !bytes.Equal(provenance, embeddedProvenance) {
		t.Error("internal/skucatalog/data/vm-skus.provenance.json is stale: run `make sku-catalog-embedded`")
	}
}
