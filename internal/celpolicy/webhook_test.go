package celpolicy

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// webhookMatcher compiles the condition as the apiserver compiles a webhook's matchConditions (no
// parameters, no variables), at the compatibility version of a 1.30 apiserver and at this library's.
func webhookMatcher(t testing.TB, scope WebhookScope) matchconditions.Matcher {
	t.Helper()
	cond := WebhookMatchCondition(scope)
	var m matchconditions.Matcher
	for _, v := range []*version.Version{version.MajorMinor(1, 29), environment.DefaultCompatibilityVersion()} {
		ev := plugincel.NewConditionCompiler(environment.MustBaseEnvSet(v)).CompileCondition(
			[]plugincel.ExpressionAccessor{(*matchconditions.MatchCondition)(&cond)},
			plugincel.OptionalVariableDeclarations{HasAuthorizer: true}, environment.NewExpressions)
		if errs := ev.CompilationErrors(); len(errs) > 0 {
			t.Fatalf("at %s: %v", v, errs)
		}
		m = matchconditions.NewMatcher(ev, nil, "webhook", "validating", "capz-encryption-webhook")
	}
	return m
}

func sentToWebhook(t testing.TB, m matchconditions.Matcher, r request) bool {
	t.Helper()
	va, _ := r.attributes(t)
	res := m.Match(context.Background(), va, nil, nil)
	if res.Error != nil {
		t.Fatal(res.Error)
	}
	return res.Matches
}

func TestWebhookMatchCondition(t *testing.T) {
	cp := func(patches ...string) map[string]any {
		obj := object(t, azureManagedControlPlane, "cp", "version: v1.33.0\n")
		var ps []any
		for _, p := range patches {
			ps = append(ps, p)
		}
		if ps != nil {
			obj["spec"].(map[string]any)["asoManagedClusterPatches"] = ps
		}
		return obj
	}
	create := func(obj map[string]any) request { return request{op: admission.Create, obj: obj} }
	update := func(obj, old map[string]any) request { return request{op: admission.Update, obj: obj, old: old} }
	deleting := func(obj map[string]any) map[string]any {
		metadata(obj)["deletionTimestamp"] = "2026-01-02T03:04:05Z"
		return obj
	}
	relabelled := func(obj map[string]any) map[string]any {
		metadata(obj)["labels"] = map[string]any{"team": "a"}
		return obj
	}
	tpl := func(settings string) map[string]any { return object(t, azureMachineTemplate, "t", settings) }
	const eah = "securityProfile:\n  encryptionAtHost: true\n"
	ephemeral := vmOK + "osDisk:\n  osType: Linux\n  diffDiskSettings:\n    option: Local\n"
	none, live, everything, desDefault := WebhookScope{}, WebhookScope{LiveAzure: true}, WebhookScope{EveryMachine: true}, WebhookScope{DefaultDES: true}
	for _, tc := range []struct {
		name  string
		scope WebhookScope
		r     request
		want  bool
	}{
		{"machine template with a DES", none, create(tpl(vmOK + osDES(desOS))), false},
		{"machine without settings, no defaults", none, create(object(t, azureMachine, "m", vmOK)), false},
		{"machine pool with a DES", none, create(object(t, azureMachinePool, "p", vmOK+osDES(desOS))), false},
		{"encryption at host asked for", none, create(tpl(vmOK + osDES(desOS) + eah)), true},
		{"encryption at host asked for, machine", none, create(object(t, azureMachine, "m", vmOK+eah)), true},
		{"encryption at host asked for, machine pool", none, create(object(t, azureMachinePool, "p", vmOK+eah)), true},
		{"encryption at host off", none, create(tpl(vmOK + osDES(desOS) + "securityProfile:\n  encryptionAtHost: false\n")), false},
		{"a DES to look up", live, create(tpl(vmOK + osDES(desOS))), true},
		{"a confidential DES to look up", live, create(tpl(vmOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    securityProfile:\n      diskEncryptionSet:\n        id: " + desOS + "\n")), true},
		{"a data disk DES to look up", live, create(tpl(vmOK + "osDisk:\n  osType: Linux\n" + "dataDisks:\n" + dataDisk("a", 0, desData))), true},
		{"nothing to look up", live, create(tpl(vmOK + "osDisk:\n  osType: Linux\n")), false},
		{"the policy needs the region", everything, create(tpl(vmOK + osDES(desOS))), true},
		{"default DES filled", desDefault, create(tpl(vmOK + osDES(desOS) + "dataDisks:\n" + dataDisk("a", 0, desData))), false},
		{"default DES missing on the OS disk", desDefault, create(tpl(ephemeral)), true},
		{"default DES missing, no OS disk", desDefault, create(tpl(vmOK)), true},
		{"default DES missing beside a confidential-VM set", desDefault, create(tpl(vmOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    securityProfile:\n      securityEncryptionType: VMGuestStateOnly\n      diskEncryptionSet:\n        id: " + desOS + "\n")), true},
		{"default DES missing on a data disk", desDefault, create(tpl(vmOK + osDES(desOS) + "dataDisks:\n  - nameSuffix: c\n    diskSizeGB: 64\n")), true},
		{"spec update", none, update(tpl(vmOK+osDES(desOS)), tpl("vmSize: Standard_D2s_v3\n"+osDES(desOS))), true},
		{"metadata-only update", everything, update(relabelled(tpl(vmOK+osDES(desOS))), tpl(vmOK+osDES(desOS))), false},
		{"object being deleted", everything, update(deleting(tpl(vmOK+osDES(desOS))), tpl(vmOK+osDES(desOS))), false},
		{"AKS pool", everything, create(object(t, azureManagedMachinePool, "a", "mode: User\nenableEncryptionAtHost: true\n")), false},
		{"AKS pool update", everything, update(object(t, azureManagedMachinePool, "a", "mode: User\nenableEncryptionAtHost: true\n"), object(t, azureManagedMachinePool, "a", "mode: User\n")), false},
		{"AKS control plane without patches", everything, create(cp()), false},
		{"AKS control plane, unrelated patch", everything, create(cp(`{"spec":{"networkProfile":{"podCidr":"10.0.0.0/16"}}}`)), false},
		{"AKS control plane, DES patch the policies deny", everything, create(cp(desPatch)), false},
		{"AKS control plane, escaped key", none, create(cp(`{"spec":{"disk\u0045ncryptionSetReference":{}}}`)), true},
		{"AKS control plane, not JSON", none, create(cp(`diskEncryptionSetReference = x`)), true},
		{"AKS control plane, the word in a value", none, create(cp(`{"spec":{"tags":{"a":"diskEncryptionSet"}}}`)), true},
	} {
		if got := sentToWebhook(t, webhookMatcher(t, tc.scope), tc.r); got != tc.want {
			t.Errorf("%s: sent to the webhook %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestScopeFor(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want WebhookScope
	}{
		{"apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n", WebhookScope{}},
		{"apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nrules:\n  location-mismatch: deny\n", WebhookScope{EveryMachine: true}},
		{desOnlyPolicy, WebhookScope{DefaultDES: true}},
		{eahOnlyPolicy, WebhookScope{EveryMachine: true}},
		{paletteValues, WebhookScope{EveryMachine: true}},
		{"cloud:\n  azure:\n    diskEncryptionSetID: " + desOS + "\n", WebhookScope{DefaultDES: true}},
		{"apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\ndefaults:\n  - name: east\n    regions: [eastus]\n    diskEncryptionSetID: " + desOS + "\n", WebhookScope{EveryMachine: true}},
		{"apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\ndefaults:\n  - name: prod\n    namespaceSelector: {matchLabels: {env: prod}}\n    diskEncryptionSetID: " + desOS + "\n", WebhookScope{EveryMachine: true}},
	} {
		for _, live := range []bool{false, true} {
			want := tc.want
			want.LiveAzure = live
			if got := ScopeFor(mustParse(t, "p.yaml", tc.doc), live); got != want {
				t.Errorf("%s (live %v): %+v, want %+v", tc.doc, live, got, want)
			}
		}
	}
}

// What WebhookMatchCondition keeps from the webhook, the compiled policies decide alone as the webhook
// would: the same patch, and the same answer (refused or admitted), wherever the machine is. The
// objects are every case of the mutation and validation tables, as they reach the webhooks (after
// the mutating policies), under policies whose scope lets some of them through.
func TestWhatTheWebhookDoesNotSeeIsDecidedAlike(t *testing.T) {
	cat := testCatalog()
	const header = "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n"
	docs := map[string]string{
		"built-in":           header,
		"strict, no default": header + "requireCustomerManagedKeys: true\nallowedDESSubscriptions: [" + sub + "]\nrules:\n  ade-extension: warn\n",
		"des-only":           desOnlyPolicy,
		"des-only, strict":   desOnlyPolicy + "requireCustomerManagedKeys: true\nallowedDESSubscriptions: [" + sub + "]\n",
		"des-only, a default that cannot apply refuses": desOnlyPolicy + "rules:\n  default-not-applied: deny\n",
		"palette, des only":                             "cloud:\n  azure:\n    diskEncryptionSetID: " + desOS + "\n",
		"full":                                          fullPolicy,
	}
	var settings []string
	for _, c := range mapCases {
		settings = append(settings, c.Settings)
	}
	for _, c := range machineCases {
		if c.Old == "" && !c.MetadataOnly && !c.Deleting && c.Annotations == nil {
			settings = append(settings, c.Settings)
		}
	}
	skipped := 0
	for name, doc := range docs {
		p := mustParse(t, name+".yaml", doc)
		res := mustCompile(t, p, cat)
		vaps, maps := compiledVAPs(t, res), compiledMAPs(t, res)
		for _, live := range []bool{false, true} {
			m := webhookMatcher(t, ScopeFor(p, live))
			for _, k := range machineKinds {
				for i, s := range settings {
					obj := object(t, k, "obj", s)
					mutated := mutate(t, maps, obj, false)
					if sentToWebhook(t, m, request{op: admission.Create, obj: mutated}) {
						continue
					}
					skipped++
					celDenied := false
					for _, v := range vaps {
						if v.kind == k.kind && bindingAction(v.binding) == policy.ActionDeny && runVAP(t, v.eval, v.policy.Name, request{op: admission.Create, obj: mutated}).denied {
							celDenied = true
						}
					}
					for _, region := range []string{"", "eastus", "southcentralus", "westeurope", "testwest"} {
						raw, _ := json.Marshal(obj)
						env := policy.Environment{Catalog: cat, Now: testNow}
						if region != "" {
							env.Locations = []policy.LocationCandidate{{Location: region, Source: "cluster", Cluster: true}}
						}
						d, err := policy.Evaluate(p, policy.Request{Operation: policy.OperationCreate, Object: raw,
							Namespace: testNamespace.Name, NamespaceLabels: testNamespace.Labels}, env)
						if err != nil {
							t.Fatal(err)
						}
						want := normalize(t, goPatched(t, d, obj))
						if got := normalize(t, mutated); !reflect.DeepEqual(got, want) {
							t.Errorf("%s, live %v, %s case %d in %q: not sent to the webhook, but its patch (%s) differs from the compiled one:\n%v\n%v", name, live, k.kind, i, region, patchString(d), got, want)
						}
						if celDenied == d.Allowed {
							t.Errorf("%s, live %v, %s case %d in %q: not sent to the webhook; the compiled policies refuse it: %v, the webhook admits it: %v (%v)", name, live, k.kind, i, region, celDenied, d.Allowed, d.Findings)
						}
					}
				}
			}
		}
	}
	if skipped == 0 {
		t.Fatal("no object was left out of the webhook: the test shows nothing")
	}
	t.Logf("%d objects left out of the webhook", skipped)
}
