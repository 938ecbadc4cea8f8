package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// decisionTime is the pinned "now" of the tests that judge the age of catalog evidence.
var decisionTime = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// evidenceCatalog layers, as skucatalog.Build does, a current catalog file over captures of
// different ages and kinds, as the embedded catalog holds them:
//   - file (the user's `az vm list-skus`, a month old, complete, the user's subscription):
//     eastus and centralus;
//   - oldus: a complete listing captured in 2020 (stale), in another subscription;
//   - selus: a selection of sizes captured in 2024 (current), in another subscription.
//
// Standard_Mixed_v1 supports EAH in eastus only; Standard_D4s_v3 is not in the 2020 listing nor in
// the selection, as a size newer than both would not be.
func evidenceCatalog() skus.Catalog {
	eah := func(v string) map[string]string { return map[string]string{skus.CapabilityEncryptionAtHost: v} }
	zone := func(z string) []skus.Restriction {
		return []skus.Restriction{{Type: skus.RestrictionTypeZone, ReasonCode: skus.ReasonNotAvailableForSub, Zones: []string{z}}}
	}
	file := skus.NewStatic([]skus.SKU{
		{Name: "Standard_D4s_v3", Region: "eastus", Family: "standardDSv3Family", Capabilities: eah("True")},
		{Name: "Standard_D8s_v3", Region: "eastus", Family: "standardDSv3Family", Capabilities: eah("True")},
		{Name: "Standard_D2_v3", Region: "eastus", Family: "standardDv3Family", Capabilities: eah("False")},
		{Name: "Standard_M8-2ms", Region: "eastus", Family: "standardMSFamily", Capabilities: eah("True"), Restrictions: zone("2")},
		{Name: "Standard_Mixed_v1", Region: "eastus", Family: "x", Capabilities: eah("True")},
		{Name: "Standard_B1s", Region: "centralus", Family: "standardBSFamily", Capabilities: eah("True")},
	}, skus.SourceInfo{Name: "file", Detail: "/etc/skus/skus.json", AsOf: decisionTime.AddDate(0, -1, 0)})
	skewer := &skus.Capture{Origin: "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT)", At: time.Date(2020, 8, 25, 23, 23, 43, 0, time.UTC), OtherSubscription: true}
	karpenter := &skus.Capture{Origin: "Azure/karpenter-provider-azure pkg/fake/zz_generated.sku.eastus.go@ace0fc6166ac (Apache-2.0)", At: time.Date(2024, 12, 13, 0, 9, 51, 0, time.UTC), OtherSubscription: true}
	embedded := skus.NewStaticByRegion([]skus.SKU{
		{Name: "Standard_E4s_v3", Region: "oldus", Family: "standardESv3Family", Capabilities: eah("True"), Capture: skewer},
		{Name: "Standard_D4a_v4", Region: "oldus", Family: "standardDAv4Family", Capabilities: eah("False"), Capture: skewer},
		{Name: "Standard_M8-2ms", Region: "oldus", Family: "standardMSFamily", Capabilities: eah("True"), Restrictions: zone("1"), Capture: skewer},
		{Name: "Standard_New_v5", Region: "selus", Family: "x", Capabilities: eah("True"), Capture: karpenter},
		{Name: "Standard_D2_v3", Region: "selus", Family: "standardDv3Family", Capabilities: eah("False"), Capture: karpenter},
		{Name: "Standard_Mixed_v1", Region: "selus", Family: "x", Capabilities: eah("False"), Capture: karpenter},
	}, skus.SourceInfo{Name: "embedded", Selection: true, OtherSubscription: true}, map[string]skus.SourceInfo{
		"oldus": {Name: "embedded", Detail: "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT) captured 2020-08-25 (complete listing)", AsOf: skewer.At, OtherSubscription: true},
		"selus": {Name: "embedded", Detail: "karpenter captured 2024-12-13 (3 sizes)", AsOf: karpenter.At, Selection: true, OtherSubscription: true},
	})
	return skus.NewLayered(file, embedded)
}

// ageEnv is an object in region (the cluster's; "" for unknown) judged against evidenceCatalog at
// decisionTime.
func ageEnv(region string) Environment {
	env := Environment{Catalog: evidenceCatalog(), Now: decisionTime}
	if region != "" {
		env.Locations = []LocationCandidate{{Location: region, Source: "cluster", Cluster: true}}
	}
	return env
}

// TestCatalogCombinations is issue 15's table: the object's region covered by the catalog or not
// (and covered by what: a current complete listing, an old one, a selection), the size offered or
// not, and encryption at host asked for, injected by a default, or neither. Each case runs as
// `check` does (StageAdmit), and as the webhook pair does (the mutating webhook's patch applied, then
// StageValidate on the result): both must reach the same findings.
func TestCatalogCombinations(t *testing.T) {
	injecting := mustPolicy(t, policyHeader+"defaults:\n- name: eah-everywhere\n  encryptionAtHost: true\n")
	strict := mustPolicy(t, policyHeader+"rules:\n  catalog-region-missing: deny\n")
	const (
		neither   = "neither"
		requested = "requested"
		injected  = "injected"
	)
	eahField := tpl("securityProfile.encryptionAtHost")
	cases := []struct {
		region, size, mode string
		policy             *Policy
		want               []string // rule:action, sorted
		allowed            bool
		injects            bool     // the patch enables encryption at host
		message            []string // substrings of the findings' messages, all together
	}{
		// A region the catalog covers with a current, complete listing.
		{region: "eastus", size: "Standard_D4s_v3", mode: neither, allowed: true},
		{region: "eastus", size: "Standard_D4s_v3", mode: requested, allowed: true},
		{region: "eastus", size: "Standard_D4s_v3", mode: injected, allowed: true, injects: true},
		{region: "eastus", size: "Standard_Nope_v9", mode: neither, allowed: true},
		{region: "eastus", size: "Standard_Nope_v9", mode: requested, want: []string{"sku-unknown:deny"},
			message: []string{`VM size "Standard_Nope_v9" is not offered in region "eastus"`, "file /etc/skus/skus.json"}},
		{region: "eastus", size: "Standard_Nope_v9", mode: injected, want: []string{"default-not-applied:warn", "sku-unknown:deny"}},
		{region: "eastus", size: "Standard_D2_v3", mode: neither, allowed: true},
		{region: "eastus", size: "Standard_D2_v3", mode: requested, want: []string{"eah-sku-unsupported:deny"},
			message: []string{"does not support encryption at host in eastus", "file: /etc/skus/skus.json, captured 2026-10-27", "Standard_D4s_v3"}},
		{region: "eastus", size: "Standard_D2_v3", mode: injected, want: []string{"default-not-applied:warn"}, allowed: true},
		// Restricted for the user's own subscription (a catalog file is the user's listing).
		{region: "eastus", size: "Standard_M8-2ms", mode: requested, want: []string{"eah-sku-unsupported:deny"},
			message: []string{"restricted for this subscription in eastus", "zones 2"}},

		// A region no layer covers: our gap, a warning; what the other regions say decides EAH.
		{region: "westeurope", size: "Standard_D4s_v3", mode: neither, want: []string{"catalog-region-missing:warn"}, allowed: true,
			message: []string{"region westeurope is not covered", "file+embedded catalog of centralus, eastus, oldus, selus", "not checked", "azure.subscriptionID", "skuCatalog.configMapName"}},
		{region: "westeurope", size: "Standard_D4s_v3", mode: requested, want: []string{"catalog-region-missing:warn"}, allowed: true,
			message: []string{"judged from the catalog's other regions", "supports encryption at host in every catalog region that lists it: eastus (file: /etc/skus/skus.json, captured 2026-10-27)"}},
		{region: "westeurope", size: "Standard_D4s_v3", mode: injected, want: []string{"catalog-region-missing:warn"}, allowed: true, injects: true},
		{region: "westeurope", size: "Standard_Nope_v9", mode: neither, want: []string{"catalog-region-missing:warn"}, allowed: true},
		{region: "westeurope", size: "Standard_Nope_v9", mode: requested, want: []string{"catalog-region-missing:warn"}, allowed: true,
			message: []string{"no catalog region lists it"}},
		{region: "westeurope", size: "Standard_Nope_v9", mode: injected, want: []string{"catalog-region-missing:warn", "default-not-applied:warn"}, allowed: true,
			message: []string{"cannot be vouched for"}},
		// Every region that lists the size says no, with current evidence: as with an unknown region.
		{region: "westeurope", size: "Standard_D2_v3", mode: requested, want: []string{"catalog-region-missing:warn", "eah-sku-unsupported:deny"},
			message: []string{"none of the catalog regions that list it", "eastus (file: /etc/skus/skus.json", "selus (embedded: Azure/karpenter-provider-azure", "captured 2024-12-13", "region westeurope itself has no data"}},
		{region: "westeurope", size: "Standard_D2_v3", mode: injected, want: []string{"catalog-region-missing:warn", "default-not-applied:warn"}, allowed: true},
		{region: "westeurope", size: "Standard_Mixed_v1", mode: requested, want: []string{"catalog-region-missing:warn", "eah-sku-unsupported:warn"}, allowed: true,
			message: []string{"only in eastus", "not in selus", "cannot be vouched for"}},
		{region: "westeurope", size: "Standard_Mixed_v1", mode: injected, want: []string{"catalog-region-missing:warn", "default-not-applied:warn"}, allowed: true},
		// Strictness stays available.
		{region: "westeurope", size: "Standard_D4s_v3", mode: neither, policy: strict, want: []string{"catalog-region-missing:deny"}},

		// A region covered by a complete listing from 2020: old negative evidence only warns, old
		// positive evidence still counts.
		{region: "oldus", size: "Standard_E4s_v3", mode: requested, allowed: true},
		{region: "oldus", size: "Standard_E4s_v3", mode: injected, allowed: true, injects: true},
		{region: "oldus", size: "Standard_D4a_v4", mode: requested, want: []string{"eah-sku-unsupported:warn"}, allowed: true,
			message: []string{"embedded: Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT), captured 2020-08-25, more than 3 years ago", "Azure may have added the capability since"}},
		{region: "oldus", size: "Standard_D4a_v4", mode: injected, want: []string{"default-not-applied:warn"}, allowed: true},
		{region: "oldus", size: "Standard_D4s_v3", mode: neither, allowed: true},
		{region: "oldus", size: "Standard_D4s_v3", mode: requested, want: []string{"sku-unknown:warn"}, allowed: true,
			message: []string{`not offered in region "oldus"`, "more than 3 years old", "lacks every size introduced since", "judged from the other regions"}},
		{region: "oldus", size: "Standard_D4s_v3", mode: injected, want: []string{"sku-unknown:warn"}, allowed: true, injects: true},
		{region: "oldus", size: "Standard_Nope_v9", mode: requested, want: []string{"sku-unknown:warn"}, allowed: true},
		{region: "oldus", size: "Standard_Nope_v9", mode: injected, want: []string{"default-not-applied:warn", "sku-unknown:warn"}, allowed: true},
		// Restricted only for the subscription that made the capture: not judged.
		{region: "oldus", size: "Standard_M8-2ms", mode: requested, allowed: true},

		// A region the catalog holds only a selection of sizes for.
		{region: "selus", size: "Standard_New_v5", mode: requested, allowed: true},
		{region: "selus", size: "Standard_D2_v3", mode: requested, want: []string{"eah-sku-unsupported:deny"},
			message: []string{"embedded: Azure/karpenter-provider-azure pkg/fake/zz_generated.sku.eastus.go@ace0fc6166ac (Apache-2.0), captured 2024-12-13"}},
		{region: "selus", size: "Standard_D4s_v3", mode: neither, allowed: true},
		{region: "selus", size: "Standard_D4s_v3", mode: requested, want: []string{"catalog-region-missing:warn"}, allowed: true,
			message: []string{"data for selus is a selection of sizes without Standard_D4s_v3", "every catalog region that lists it: eastus"}},
		{region: "selus", size: "Standard_D4s_v3", mode: injected, want: []string{"catalog-region-missing:warn"}, allowed: true, injects: true},

		// The region is unknown: every catalog region that lists the size is evidence.
		{region: "", size: "Standard_D4s_v3", mode: requested, allowed: true},
		{region: "", size: "Standard_D4s_v3", mode: neither, allowed: true},
		{region: "", size: "Standard_Nope_v9", mode: requested, want: []string{"sku-unknown:warn"}, allowed: true},
		{region: "", size: "Standard_D2_v3", mode: requested, want: []string{"eah-sku-unsupported:deny"}},
		{region: "", size: "Standard_Mixed_v1", mode: requested, want: []string{"eah-sku-unsupported:warn"}, allowed: true},
		// Restricted for the user's subscription in eastus, where the object may be.
		{region: "", size: "Standard_M8-2ms", mode: requested, want: []string{"eah-sku-unsupported:warn"}, allowed: true},
	}
	for _, tc := range cases {
		name := tc.region
		if name == "" {
			name = "unknown"
		}
		if tc.policy == strict {
			name += "/strict"
		}
		t.Run(name+"/"+tc.size+"/"+tc.mode, func(t *testing.T) {
			o := template().set(tpl("vmSize"), tc.size)
			p := tc.policy
			switch {
			case tc.mode == requested:
				o = o.set(eahField, true)
			case tc.mode == injected:
				p = injecting
			case p == nil:
				p = DefaultPolicy()
			}
			env := ageEnv(tc.region)
			raw := o.json(t)
			admit, err := Evaluate(p, Request{Operation: OperationCreate, Object: raw}, env)
			if err != nil {
				t.Fatal(err)
			}
			patched := applyPatch(t, raw, admit)
			validate, err := Evaluate(p, Request{Operation: OperationCreate, Stage: StageValidate, Object: patched}, env)
			if err != nil {
				t.Fatal(err)
			}
			for stage, d := range map[string]*Decision{"check (StageAdmit)": admit, "webhook pair (StageValidate on the patched object)": validate} {
				if got := ruleActions(d); !slices.Equal(got, tc.want) {
					t.Errorf("%s: findings %v, want %v\n%s", stage, got, tc.want, messages(d))
				}
				if d.Allowed != tc.allowed {
					t.Errorf("%s: allowed = %v, want %v", stage, d.Allowed, tc.allowed)
				}
			}
			if msgs := messages(admit); !slices.Equal(findingsText(admit), findingsText(validate)) {
				t.Errorf("the two stages say different things:\nadmit:    %s\nvalidate: %s", msgs, messages(validate))
			}
			if got := slices.Contains(admit.Injected, "securityProfile.encryptionAtHost"); got != tc.injects {
				t.Errorf("encryption at host injected = %v, want %v (patch %v)", got, tc.injects, admit.Patch)
			}
			for _, m := range tc.message {
				if !strings.Contains(messages(admit), m) {
					t.Errorf("messages lack %q:\n%s", m, messages(admit))
				}
			}
			// A decision that judged the size says which evidence it used; one that did not, none.
			if judged := tc.mode != neither; judged != (len(admit.Evidence) > 0) && tc.size != "Standard_Nope_v9" {
				t.Errorf("evidence = %+v, want some: %v", admit.Evidence, judged)
			}
		})
	}
}

// TestEvidenceRecorded: the decision records every catalog fact a verdict used, with its source,
// capture and date, and whether it was too old to deny.
func TestEvidenceRecorded(t *testing.T) {
	eah := func(size string) obj {
		return template().set(tpl("vmSize"), size).set(tpl("securityProfile.encryptionAtHost"), true)
	}
	d := create(t, DefaultPolicy(), eah("Standard_D4a_v4"), ageEnv("oldus"))
	want := []Evidence{{Region: "oldus", Fact: "eah-unsupported", Source: "embedded", Origin: "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT)",
		CapturedAt: "2020-08-25T23:23:43Z", Stale: true}}
	if !slices.Equal(d.Evidence, want) {
		t.Errorf("evidence = %+v, want %+v", d.Evidence, want)
	}
	// Across regions: one entry per region that lists the size, each with its own capture.
	d = create(t, DefaultPolicy(), eah("Standard_D2_v3"), ageEnv("westeurope"))
	want = []Evidence{
		{Region: "eastus", Fact: "eah-unsupported", Source: "file", Origin: "/etc/skus/skus.json", CapturedAt: "2026-10-27T12:00:00Z"},
		{Region: "selus", Fact: "eah-unsupported", Source: "embedded", Origin: "Azure/karpenter-provider-azure pkg/fake/zz_generated.sku.eastus.go@ace0fc6166ac (Apache-2.0)", CapturedAt: "2024-12-13T00:09:51Z"},
	}
	if !slices.Equal(d.Evidence, want) {
		t.Errorf("evidence = %+v, want %+v", d.Evidence, want)
	}
	// A complete listing that lacks the size is evidence too.
	d = create(t, DefaultPolicy(), eah("Standard_Nope_v9"), ageEnv("oldus"))
	if len(d.Evidence) != 1 || d.Evidence[0].Fact != "size-not-listed" || !d.Evidence[0].Stale || d.Evidence[0].CapturedAt != "2020-08-25T23:23:43Z" {
		t.Errorf("evidence = %+v, want the stale listing", d.Evidence)
	}
	// Without a clock, ages are not judged: the 2020 capture denies.
	env := ageEnv("oldus")
	env.Now = time.Time{}
	d = create(t, DefaultPolicy(), eah("Standard_D4a_v4"), env)
	if f := findingsOf(d, RuleEAHSKUUnsupported); len(f) != 1 || f[0].Action != ActionDeny || d.Evidence[0].Stale {
		t.Errorf("no clock: %+v %+v", f, d.Evidence)
	}
	// Three years to the day is the limit.
	env.Now = time.Date(2023, 8, 25, 23, 23, 43, 0, time.UTC)
	if d = create(t, DefaultPolicy(), eah("Standard_D4a_v4"), env); d.Allowed {
		t.Error("evidence exactly three years old still denies")
	}
	env.Now = env.Now.Add(time.Second)
	if d = create(t, DefaultPolicy(), eah("Standard_D4a_v4"), env); !d.Allowed {
		t.Errorf("evidence older than three years only warns: %+v", d.Findings)
	}
}

// TestRuleCatalogRegionMissing: a region no catalog layer covers warns; a site that wants nothing
// unverified denies it.
func TestRuleCatalogRegionMissing(t *testing.T) {
	europe := Environment{Catalog: testCatalog(), Locations: []LocationCandidate{{Location: "westeurope", Source: "cluster", Cluster: true}}}
	size := tpl("vmSize")
	runRuleCases(t, RuleCatalogRegionMissing, []ruleCase{
		{name: "covered region", object: template(), wantAllowed: true},
		{name: "region unknown is not a catalog gap", object: template(), env: Environment{Catalog: testCatalog()}, wantAllowed: true},
		{name: "uncovered region", object: template(), env: europe,
			wantRule: RuleCatalogRegionMissing, wantField: size, wantAction: ActionWarn, wantAllowed: true,
			wantMessage: []string{"region westeurope is not covered", "test catalog of eastus, westus2", "azure.subscriptionID"}},
		{name: "policy says deny", object: template(), env: europe, policy: mustPolicy(t, policyHeader+"rules:\n  catalog-region-missing: deny\n"),
			wantRule: RuleCatalogRegionMissing, wantField: size, wantAction: ActionDeny},
	})
}

// TestCatalogRegionMissingWithoutCatalog: no catalog at all is a gap like an uncovered region.
func TestCatalogRegionMissingWithoutCatalog(t *testing.T) {
	env := Environment{Locations: []LocationCandidate{{Location: "westeurope", Source: "cluster", Cluster: true}}}
	d := create(t, DefaultPolicy(), template().set(tpl("securityProfile.encryptionAtHost"), true), env)
	f := findingsOf(d, RuleCatalogRegionMissing)
	if !d.Allowed || len(f) != 1 || f[0].Action != ActionWarn || !strings.Contains(f[0].Message, "no VM-size catalog is configured") {
		t.Fatalf("findings = %+v", d.Findings)
	}
}

func ruleActions(d *Decision) []string {
	out := []string{}
	for _, f := range d.Findings {
		out = append(out, string(f.Rule)+":"+string(f.Action))
	}
	slices.Sort(out)
	return out
}

func findingsText(d *Decision) []string {
	var out []string
	for _, f := range d.Findings {
		out = append(out, string(f.Rule)+" "+string(f.Action)+" "+f.Field+" "+f.Message)
	}
	slices.Sort(out)
	return out
}

func messages(d *Decision) string { return strings.Join(findingsText(d), "\n") }
