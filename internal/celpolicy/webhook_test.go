package celpolicy

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/cel/environment"
)

// webhookMatcher compiles the condition as the apiserver compiles a webhook's matchConditions (no
// parameters, no variables), at the compatibility version of a 1.30 apiserver and at this library's.
func webhookMatcher(t testing.TB) matchconditions.Matcher {
	t.Helper()
	cond := WebhookMatchCondition()
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

func sentToWebhook(t testing.TB, m matchconditions.Matcher, obj map[string]any) bool {
	t.Helper()
	va, _ := request{op: admission.Create, obj: obj}.attributes(t)
	res := m.Match(context.Background(), va, nil, nil)
	if res.Error != nil {
		t.Fatal(res.Error)
	}
	return res.Matches
}

func TestWebhookMatchCondition(t *testing.T) {
	m := webhookMatcher(t)
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
	for _, tc := range []struct {
		name string
		obj  map[string]any
		want bool
	}{
		{"machine template", object(t, azureMachineTemplate, "t", vmOK+osDES(desOS)), true},
		{"machine", object(t, azureMachine, "m", vmOK), true},
		{"machine pool", object(t, azureMachinePool, "p", vmOK), true},
		{"AKS pool", object(t, azureManagedMachinePool, "a", "mode: User\nenableEncryptionAtHost: true\n"), false},
		{"AKS control plane without patches", cp(), false},
		{"AKS control plane, unrelated patch", cp(`{"spec":{"networkProfile":{"podCidr":"10.0.0.0/16"}}}`), false},
		{"AKS control plane, DES patch the policies deny", cp(desPatch), false},
		{"AKS control plane, escaped key", cp(`{"spec":{"disk\u0045ncryptionSetReference":{}}}`), true},
		{"AKS control plane, not JSON", cp(`diskEncryptionSetReference = x`), true},
		{"AKS control plane, the word in a value", cp(`{"spec":{"tags":{"a":"diskEncryptionSet"}}}`), true},
	} {
		if got := sentToWebhook(t, m, tc.obj); got != tc.want {
			t.Errorf("%s: sent to the webhook %v, want %v", tc.name, got, tc.want)
		}
	}
}
