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
	if n != 49 {
		t.Errorf("embedded records = %d, want 49", n)
	}
	if got := c.Regions(); !slices.Equal(got, []string{"eastus", "southcentralus", "westcentralus"}) {
		t.Errorf("regions = %v", got)
	}
	for _, tc := range []struct {
		region string
		n      int
	}{{"eastus", 17}, {"southcentralus", 20}, {"westcentralus", 12}} {
		if got := len(c.SKUs(tc.region)); got != tc.n {
			t.Errorf("%s: %d records, want %d", tc.region, got, tc.n)
		}
	}

	for _, tc := range []struct {
		region, size string
		found, eah   bool
		restriction  string // type of the NotAvailableForSubscription restriction, "" for none
	}{
		{"eastus", "Standard_D2s_v3", true, true, ""},
		{"eastus", "Standard_D2_v3", true, false, ""},
		{"eastus", "Standard_A0", true, false, skus.RestrictionTypeZone},
		{"westcentralus", "Standard_A0", true, false, skus.RestrictionTypeLocation},
		{"southcentralus", "Standard_A0", true, false, ""},
		{"eastus", "Standard_M8-2ms", true, true, skus.RestrictionTypeZone},
		{"southcentralus", "Standard_M8-2ms", true, true, ""},
		{"westcentralus", "Standard_M8-2ms", false, false, ""},
		{"eastus", "Standard_NC6s_v3", true, true, skus.RestrictionTypeZone},
		// Case and spelling of regions and sizes do not matter.
		{"EastUS", "standard_d2s_V3", true, true, ""},
		{"East US", "STANDARD_D2S_V3", true, true, ""},
		{"eastus", "Standard_D2s_v4", false, false, ""},
		{"westeurope", "Standard_D2s_v3", false, false, ""},
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
		if s.EncryptionAtHostSupported() != tc.eah || restricted != (tc.restriction != "") || r.Type != tc.restriction {
			t.Errorf("%s/%s: eah=%v restriction=%+v, want eah=%v restriction type %q", tc.region, tc.size, s.EncryptionAtHostSupported(), r, tc.eah, tc.restriction)
		}
		if r.ReasonCode != "" && r.ReasonCode != skus.ReasonNotAvailableForSub {
			t.Errorf("%s/%s: reason %q", tc.region, tc.size, r.ReasonCode)
		}
		if len(r.Zones) != 0 {
			t.Errorf("%s/%s: zones %v: the source has none, the conversion must not invent any", tc.region, tc.size, r.Zones)
		}
		if !strings.EqualFold(s.Name, tc.size) || s.Region != skus.NormalizeRegion(tc.region) || s.Family == "" {
			t.Errorf("%s/%s: got %q in %q, family %q", tc.region, tc.size, s.Name, s.Region, s.Family)
		}
	}

	if all := c.LookupAll("standard_a0"); len(all) != 3 || all[0].Region != "eastus" || all[2].Region != "westcentralus" {
		t.Errorf("LookupAll(A0) = %+v, want all three regions in order", all)
	}

	src := c.Source("eastus")
	wantAsOf := time.Date(2025, 6, 3, 21, 16, 53, 0, time.UTC) // southcentralus, the newest
	if src.Name != "embedded" || !src.AsOf.Equal(wantAsOf) {
		t.Errorf("source = %+v, want embedded as of %v", src, wantAsOf)
	}
	for _, w := range []string{"karpenter-provider-azure", "Apache-2.0", "eastus 2024-12-13T00:09:51Z", "southcentralus 2025-06-03T21:16:53Z", "westcentralus 2024-12-13T00:09:53Z"} {
		if !strings.Contains(src.Detail, w) {
			t.Errorf("source detail %q lacks %q", src.Detail, w)
		}
	}
	if got := c.Source("westeurope"); got.Name != "none" {
		t.Errorf("unknown region source = %+v", got)
	}
	if Embedded() != c {
		t.Error("Embedded() must parse once and share the result")
	}
}

// TestProvenanceDoc: data/PROVENANCE.md states the licence and the same dates as the code.
func TestProvenanceDoc(t *testing.T) {
	doc, err := os.ReadFile("data/PROVENANCE.md")
	if err != nil {
		t.Fatal(err)
	}
	wants := []string{"github.com/Azure/karpenter-provider-azure", "Apache-2.0", "make sku-catalog-embedded", "from-azure"}
	for region, at := range embeddedGeneratedAt {
		wants = append(wants, region, at)
	}
	for _, w := range wants {
		if !bytes.Contains(doc, []byte(w)) {
			t.Errorf("PROVENANCE.md lacks %q", w)
		}
	}
}

// TestEmbeddedMatchesSubset: the committed catalog is exactly what the generator makes of the
// shared fact file, and the recorded dates are the fact file's.
func TestEmbeddedMatchesSubset(t *testing.T) {
	const subsetPath = "../../../shared/data/azure-vm-skus-subset.json"
	data, err := os.ReadFile(subsetPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s is absent (a checkout without the shared fact file): nothing to compare the embedded catalog with", subsetPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := ConvertSubset(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, embeddedCatalog) {
		t.Fatal("internal/skucatalog/data/vm-skus.json is stale: run `make sku-catalog-embedded`")
	}
	source, generatedAt, err := SubsetGeneratedAt(data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(source, "karpenter-provider-azure") || !strings.Contains(source, "Apache-2.0") {
		t.Errorf("the fact file's source changed to %q: update embeddedOrigin and PROVENANCE.md", source)
	}
	if len(generatedAt) != len(embeddedGeneratedAt) {
		t.Errorf("fact file regions %v, embeddedGeneratedAt %v", generatedAt, embeddedGeneratedAt)
	}
	for region, at := range generatedAt {
		if got := embeddedGeneratedAt[region]; got != at.UTC().Format(time.RFC3339) {
			t.Errorf("embeddedGeneratedAt[%s] = %q, the fact file says %s", region, got, at.UTC().Format(time.RFC3339))
		}
	}
}
