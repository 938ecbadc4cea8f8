package celpolicy

import (
	"os"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy/paritycases"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

const (
	sub        = paritycases.Sub
	otherSub   = paritycases.OtherSub
	desOS      = paritycases.DESOS
	desData    = paritycases.DESData
	fullPolicy = paritycases.FullPolicy
)

func mustParse(t testing.TB, name, doc string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(name, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testNow and testCatalog: see paritycases.Now and paritycases.Catalog.
var testNow = paritycases.Now

func testCatalog() skus.Catalog { return paritycases.Catalog() }

func mustCompile(t testing.TB, p *policy.Policy, cat skus.Catalog) *Result {
	t.Helper()
	res, err := Compile(p, cat, Options{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Every expression compiles where the apiserver compiles it: as a new expression at the oldest
// compatibility version the policy kind exists at, at this library's default, and as a stored
// expression (what runs).
func TestExpressionsCompile(t *testing.T) {
	res := mustCompile(t, mustParse(t, "full.yaml", fullPolicy), skucatalog.Embedded())
	if len(res.ValidatingPolicies) == 0 || len(res.MutatingPolicies) == 0 {
		t.Fatalf("nothing compiled: %d validating, %d mutating", len(res.ValidatingPolicies), len(res.MutatingPolicies))
	}
	for _, p := range res.ValidatingPolicies {
		for _, v := range vapVersions {
			compileVAP(t, p, v, environment.NewExpressions)
		}
		compileVAP(t, p, environment.DefaultCompatibilityVersion(), environment.StoredExpressions)
	}
	for _, p := range res.MutatingPolicies {
		for _, v := range mapVersions {
			compileMAP(t, p, v, environment.NewExpressions)
		}
		compileMAP(t, p, environment.DefaultCompatibilityVersion(), environment.StoredExpressions)
	}
}

// The versions above mean something: one minor earlier, the features the expressions rely on are
// missing (optional types arrived in 1.28; two-variable comprehensions in 1.32).
func TestExpressionsNeedTheirVersions(t *testing.T) {
	res := mustCompile(t, mustParse(t, "full.yaml", fullPolicy), skucatalog.Embedded())
	if _, err := buildVAP(res.ValidatingPolicies[0], version.MajorMinor(1, 27), environment.NewExpressions); err == nil {
		t.Errorf("%s compiles at 1.27, which has no optional types", res.ValidatingPolicies[0].Name)
	}
	for _, p := range res.MutatingPolicies {
		if strings.Contains(p.Name, "inject-des") {
			if _, err := buildMAP(p, version.MajorMinor(1, 31), environment.NewExpressions); err == nil {
				t.Errorf("%s compiles at 1.31, which has no two-variable comprehensions", p.Name)
			}
		}
	}
}

func TestNamesLabelsAndOwnership(t *testing.T) {
	res := mustCompile(t, mustParse(t, "full.yaml", fullPolicy), skucatalog.Embedded())
	var names []string
	for _, o := range res.Objects() {
		names = append(names, o.GetObjectKind().GroupVersionKind().Kind+" "+o.GetNamespace()+"/"+o.GetName())
		if errs := validation.IsDNS1123Subdomain(o.GetName()); len(errs) > 0 {
			t.Errorf("%s: %v", o.GetName(), errs)
		}
		if !OwnedSelector().Matches(labels.Set(o.GetLabels())) {
			t.Errorf("%s is not selected by %s: %v", o.GetName(), OwnedSelector(), o.GetLabels())
		}
		if o.GetObjectKind().GroupVersionKind().Empty() {
			t.Errorf("%s has no apiVersion and kind", o.GetName())
		}
	}
	var want []string
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		for _, n := range []string{
			"ade-extension.azuremachine", "ade-extension.azuremachinepool", "ade-extension.azuremachinetemplate",
			"aks-target.azuremanagedcontrolplane", "aks-target.azuremanagedmachinepool",
			"des-id-malformed.azuremachine", "des-id-malformed.azuremachinepool", "des-id-malformed.azuremachinetemplate",
			"des-required.azuremachine", "des-required.azuremachinepool", "des-required.azuremachinetemplate",
			"des-subscription-not-allowed.azuremachine", "des-subscription-not-allowed.azuremachinepool", "des-subscription-not-allowed.azuremachinetemplate",
			"eah-sku-unsupported.azuremachine", "eah-sku-unsupported.azuremachine.warn", "eah-sku-unsupported.azuremachinepool", "eah-sku-unsupported.azuremachinepool.warn",
			"eah-sku-unsupported.azuremachinetemplate", "eah-sku-unsupported.azuremachinetemplate.warn",
		} {
			want = append(want, kind+" /capz-encryption-webhook."+n)
		}
	}
	for _, kind := range []string{"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"} {
		for _, n := range []string{"inject-des", "inject-eah"} {
			for _, k := range []string{"azuremachine", "azuremachinepool", "azuremachinetemplate"} {
				want = append(want, kind+" /capz-encryption-webhook."+n+"."+k)
			}
		}
	}
	if !slices.Equal(names, want) {
		t.Errorf("objects:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
	for _, b := range res.ValidatingBindings {
		sel := b.Spec.MatchResources.NamespaceSelector
		if len(sel.MatchExpressions) != 1 || !slices.Equal(sel.MatchExpressions[0].Values, []string{"capz-encryption-webhook-system", "kube-system"}) {
			t.Errorf("%s: namespaces left out: %v", b.Name, sel)
		}
		if b.Spec.ParamRef != nil {
			t.Errorf("%s: paramRef %v", b.Name, b.Spec.ParamRef)
		}
	}
	// The VM-size verdicts are constants of the policies that use them, which say where they come
	// from; no policy has a parameter object.
	for _, p := range res.ValidatingPolicies {
		holds := strings.Contains(p.Name, "eah-sku-unsupported")
		if (p.Annotations[AnnotationCatalog] != "") != holds || p.Spec.ParamKind != nil || holds != strings.Contains(p.Spec.Variables[0].Expression, `"standard_a0": "unsupported"`) {
			t.Errorf("%s: catalog %q, paramKind %v, verdicts %.80s", p.Name, p.Annotations[AnnotationCatalog], p.Spec.ParamKind, p.Spec.Variables[0].Expression)
		}
	}
}

// The same inputs give the same bytes, so that a controller's server-side apply is a no-op and
// golden files hold.
func TestDeterministic(t *testing.T) {
	render := func() string {
		var b strings.Builder
		res := mustCompile(t, mustParse(t, "full.yaml", fullPolicy), skus.NewLayered(skucatalog.Embedded()))
		if err := res.WriteYAML(&b); err != nil {
			t.Fatal(err)
		}
		if err := res.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	first := render()
	for range 5 {
		if render() != first {
			t.Fatal("two compilations of the same policy differ")
		}
	}
}

func TestActionsOnBindings(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want map[policy.RuleID]admissionregistrationv1.ValidationAction
	}{
		{fullPolicy, map[policy.RuleID]admissionregistrationv1.ValidationAction{policy.RuleDESIDMalformed: admissionregistrationv1.Deny, policy.RuleAKSTarget: admissionregistrationv1.Deny}},
		{fullPolicy + "rules:\n  des-id-malformed: warn\n  aks-target: audit\n", map[policy.RuleID]admissionregistrationv1.ValidationAction{policy.RuleDESIDMalformed: admissionregistrationv1.Warn, policy.RuleAKSTarget: admissionregistrationv1.Audit, policy.RuleADEExtension: admissionregistrationv1.Deny}},
		{fullPolicy + "dryRun: true\nrules:\n  aks-target: audit\n", map[policy.RuleID]admissionregistrationv1.ValidationAction{policy.RuleDESIDMalformed: admissionregistrationv1.Warn, policy.RuleAKSTarget: admissionregistrationv1.Audit}},
	} {
		res := mustCompile(t, mustParse(t, "p.yaml", tc.doc), skucatalog.Embedded())
		for _, b := range res.ValidatingBindings {
			rule := policy.RuleID(b.Labels[LabelRule])
			if want, ok := tc.want[rule]; ok && !slices.Equal(b.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{want}) {
				t.Errorf("%s: %v, want %v", b.Name, b.Spec.ValidationActions, want)
			}
		}
	}
}

// Every rule is accounted for: compiled, not compiled (with a reason), or off.
func TestEveryRuleAccountedFor(t *testing.T) {
	for _, doc := range []string{fullPolicy, paletteValues, desOnlyPolicy, "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n"} {
		for _, cat := range []skus.Catalog{nil, skucatalog.Embedded()} {
			res := mustCompile(t, mustParse(t, "p.yaml", doc), cat)
			seen := map[policy.RuleID]bool{}
			for _, c := range res.Compiled {
				seen[c.Rule] = true
			}
			for _, o := range append(res.NotCompiled, res.Inactive...) {
				seen[o.Rule] = true
				if o.Reason == "" {
					t.Errorf("%v without a reason", o)
				}
			}
			for _, r := range policy.Rules() {
				if !seen[r] {
					t.Errorf("%s (catalog %v): rule %s is neither compiled, nor listed as not compiled, nor off", strings.SplitN(doc, "\n", 2)[0], cat != nil, r)
				}
			}
		}
	}
}

// A Palette-style policy (one default, no per-region data) compiles whole, except what needs live
// Azure data or the Cluster; and of those, only the parts of rules that need the region.
func TestPaletteCompilesWhole(t *testing.T) {
	res := mustCompile(t, mustParse(t, "palette.yaml", paletteValues), skucatalog.Embedded())
	needsData := map[policy.RuleID]bool{
		policy.RuleDESLocationMismatch: true, policy.RuleDESNotFound: true, policy.RuleDESEncryptionType: true, policy.RuleDESKeyRotation: true,
		policy.RuleSKUUnknown: true, policy.RuleDefaultNotApplied: true, policy.RuleRepave: true,
		policy.RuleCatalogRegionMissing: true, policy.RuleLocationAnnotationIgnored: true, policy.RuleLocationMismatch: true,
		policy.RuleDESKeyExpiry: true, policy.RuleCreatedBeforeDefault: true, policy.RuleAzureDiskNotCustomerKey: true,
		policy.RuleAzureDiskDESMismatch: true, policy.RuleAzureEAHDisabled: true,
	}
	for _, o := range res.NotCompiled {
		if !needsData[o.Rule] && o.Scope == "" {
			t.Errorf("%q is not compiled at all: %s", o.Rule, o.Reason)
		}
	}
	compiled := map[policy.RuleID][]string{}
	for _, c := range res.Compiled {
		compiled[c.Rule] = append(compiled[c.Rule], c.Kinds...)
	}
	// eah-sku-unsupported: refused (unsupported) and warned (doubtful), for each machine kind.
	for r, n := range map[policy.RuleID]int{"": 6, policy.RuleDESIDMalformed: 3, policy.RuleADEExtension: 3, policy.RuleEAHSKUUnsupported: 6, policy.RuleAKSTarget: 2} {
		if len(compiled[r]) != n {
			t.Errorf("%q compiled for %v, want %d kinds", r, compiled[r], n)
		}
	}
	if len(res.MutatingPolicies) != 6 {
		t.Errorf("%d mutating policies, want DES and EAH for 3 kinds", len(res.MutatingPolicies))
	}
}

// The sample policy's defaults depend on the region: neither the injection nor des-required is
// compiled, and the reason says why.
func TestRegionalDefaultsNotCompiled(t *testing.T) {
	data, err := os.ReadFile("../../config/samples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse("policy.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	res := mustCompile(t, p, skucatalog.Embedded())
	if len(res.MutatingPolicies) != 0 {
		t.Errorf("%d mutating policies for regional defaults", len(res.MutatingPolicies))
	}
	found := map[policy.RuleID]string{}
	for _, o := range res.NotCompiled {
		if o.Scope == "" || o.Rule == "" {
			found[o.Rule] = o.Reason
		}
	}
	for _, r := range []policy.RuleID{policy.RuleDESRequired, ""} {
		if !strings.Contains(found[r], `default "eastus" applies only in eastus`) {
			t.Errorf("%q: reason %q", r, found[r])
		}
	}
	for _, v := range res.ValidatingPolicies {
		if v.Labels[LabelRule] == string(policy.RuleDESRequired) {
			t.Errorf("%s compiled", v.Name)
		}
	}
}

func TestWithoutCatalog(t *testing.T) {
	res := mustCompile(t, mustParse(t, "palette.yaml", paletteValues), nil)
	if res.Sizes != nil {
		t.Error("VM-size verdicts without a catalog")
	}
	for _, p := range res.MutatingPolicies {
		if strings.Contains(p.Name, "inject-eah") || p.Spec.ParamKind != nil {
			t.Errorf("%s without a catalog", p.Name)
		}
	}
	for _, v := range res.ValidatingPolicies {
		if v.Spec.ParamKind != nil {
			t.Errorf("%s reads parameters without a catalog", v.Name)
		}
	}
}

func TestBadOptions(t *testing.T) {
	bad := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near"}}}
	for _, o := range []Options{{Namespace: "Not_A_Namespace"}, {ExcludedNamespaces: []string{"a/b"}}, {NamespaceSelector: bad}} {
		if _, err := Compile(nil, nil, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// The bindings keep to the namespaces the webhook configurations keep to.
func TestNamespaceSelector(t *testing.T) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"capz": "on"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpExists}}}
	res, err := Compile(mustParse(t, "full.yaml", fullPolicy), testCatalog(), Options{Now: testNow, Namespace: "platform", ExcludedNamespaces: []string{"legacy", "kube-system", "platform"}, NamespaceSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{corev1.LabelMetadataName: "team-a", "capz": "on", "team": "a"}, true},
		{map[string]string{corev1.LabelMetadataName: "team-a", "capz": "on"}, false},
		{map[string]string{corev1.LabelMetadataName: "team-a", "team": "a"}, false},
		{map[string]string{corev1.LabelMetadataName: "legacy", "capz": "on", "team": "a"}, false},
		{map[string]string{corev1.LabelMetadataName: "platform", "capz": "on", "team": "a"}, false},
	} {
		for _, mr := range bindingSelectors(res) {
			s, err := metav1.LabelSelectorAsSelector(mr)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Matches(labels.Set(ns.labels)); got != ns.want {
				t.Errorf("%v: %s matches %v, want %v", ns.labels, s, got, ns.want)
			}
		}
	}
	if sel.MatchExpressions[0].Key != "team" || len(sel.MatchExpressions) != 1 {
		t.Errorf("the caller's selector was changed: %v", sel)
	}
}

func bindingSelectors(res *Result) []*metav1.LabelSelector {
	var out []*metav1.LabelSelector
	for _, b := range res.ValidatingBindings {
		out = append(out, b.Spec.MatchResources.NamespaceSelector)
	}
	for _, b := range res.MutatingBindings {
		out = append(out, b.Spec.MatchResources.NamespaceSelector)
	}
	return out
}
