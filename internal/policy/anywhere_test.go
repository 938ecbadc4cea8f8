package policy

import (
	"testing"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// JudgeSizeAnywhere is the decision's own size verdict taken in every place an object may be: it
// must agree with verdict() run with the region unknown, in every catalog region and in a region no
// layer covers, for every size of the catalog, a size none lists and an empty one.
func TestJudgeSizeAnywhereAgreesWithVerdicts(t *testing.T) {
	for name, cat := range map[string]skus.Catalog{
		"evidence": evidenceCatalog(),
		// A size restricted for the user's subscription in the only region that lists it: refused
		// there and with the region unknown, but not in a region no layer covers.
		"restricted": skus.NewLayered(skus.NewStatic([]skus.SKU{
			{Name: "Standard_R1", Region: "eastus", Capabilities: map[string]string{skus.CapabilityEncryptionAtHost: "True"},
				Restrictions: []skus.Restriction{{Type: skus.RestrictionTypeLocation, ReasonCode: skus.ReasonNotAvailableForSub}}},
			{Name: "Standard_R2", Region: "eastus", Capabilities: map[string]string{skus.CapabilityEncryptionAtHost: "False"}},
			{Name: "Standard_R2", Region: "westus", Capabilities: map[string]string{skus.CapabilityEncryptionAtHost: "True"},
				Restrictions: []skus.Restriction{{Type: skus.RestrictionTypeLocation, ReasonCode: skus.ReasonNotAvailableForSub}}},
		}, skus.SourceInfo{Name: "file", AsOf: decisionTime}), evidenceCatalog()),
		"embedded": skucatalog.Embedded(),
		"none":     skus.NewLayered(),
	} {
		j := judge{cat: cat, now: decisionTime}
		sizes := map[string]bool{"Standard_Nope_v9": true, "": true, "  ": true}
		for _, r := range cat.Regions() {
			for _, s := range cat.SKUs(r) {
				sizes[s.Name] = true
			}
		}
		// What an object asking for encryption at host gets: eah-sku-unsupported's ceiling, or
		// sku-unknown's.
		ceiling := func(v sizeVerdict) Action {
			var a Action
			switch v.eah {
			case eahUnsupported:
				a = v.eahCeiling
			case eahMixed:
				a = ActionWarn
			}
			if v.unknown {
				a = stronger(a, v.unknownCeiling)
			}
			return a
		}
		classes := map[[3]any]int{}
		for size := range sizes {
			got := JudgeSizeAnywhere(cat, decisionTime, size)
			regionless := j.verdict("", size)
			every := ceiling(regionless)
			for _, r := range append(cat.Regions(), "uncoveredregion") {
				every = weaker(every, ceiling(j.verdict(r, size)))
			}
			want := SizeAnywhere{Listed: len(cat.LookupAll(size)) > 0, Inject: regionless.eah == eahSupported, Regionless: ceiling(regionless), Everywhere: every}
			if got != want {
				t.Errorf("%s: %q: got %+v, want %+v", name, size, got, want)
			}
			classes[[3]any{got.Inject, got.Regionless, got.Everywhere}]++
		}
		t.Logf("%s: %v", name, classes)
	}
}
