package celpolicy

// The samples (config/samples) through the compiled policies and through policy.Evaluate, with the
// sample policy (regional defaults: rules only) and with the Palette pack values (one default:
// rules and injection), judged on the embedded catalog as of testNow. Some samples name their region
// (an annotation, AzureMachinePool spec.location), which the webhook uses; the compiled policies
// judge as if it were unknown, with what holds in every region. Where that makes a difference, the
// table says so.

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"k8s.io/apiserver/pkg/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
)

func samples(t *testing.T) map[string]map[string]any {
	t.Helper()
	objs, err := manifest.ReadPaths([]string{"../../config/samples"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, o := range objs {
		if !policy.Handles(o.APIVersion, o.Kind) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(o.JSON, &m); err != nil {
			t.Fatal(err)
		}
		out[o.Name] = m
	}
	return out
}

var sampleCases = map[string]vapCase{
	"payments-control-plane": {},
	"payments-md-0":          {},
	"with-ade":               {Deny: []policy.RuleID{policy.RuleADEExtension}},
	"aks-pool0":              {Deny: []policy.RuleID{policy.RuleAKSTarget}},
	"aks-control-plane":      {Deny: []policy.RuleID{policy.RuleAKSTarget}},
	"copied-from-docs":       {Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	"analytics-eastus":       {Warn: []policy.RuleID{policy.RuleEAHSKUUnsupported}}, // eastus, 2020: old evidence
	"legacy-size":            {Deny: []policy.RuleID{policy.RuleEAHSKUUnsupported}},
	"worker-kv-url":          {Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	"analytics-mp-0":         {},
}

func TestSamplesValidationParity(t *testing.T) {
	data, err := os.ReadFile("../../config/samples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse("policy.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	cat := skucatalog.Embedded()
	res := mustCompile(t, p, cat)
	vaps := compiledVAPs(t, res)
	objs := samples(t)
	if len(objs) != len(sampleCases) {
		t.Fatalf("%d samples, %d cases: a sample was added or removed", len(objs), len(sampleCases))
	}
	for name, obj := range objs {
		c, ok := sampleCases[name]
		if !ok {
			t.Fatalf("no case for sample %s", name)
		}
		t.Run(name, func(t *testing.T) {
			checkParity(t, p, cat, vaps, request{op: admission.Create, obj: obj}, &c)
		})
	}
}

func TestSamplesMutationParity(t *testing.T) {
	p := mustParse(t, "palette.yaml", paletteValues)
	cat := skucatalog.Embedded()
	res := mustCompile(t, p, cat)
	maps := compiledMAPs(t, res)
	vaps := compiledVAPs(t, res)
	for name, obj := range samples(t) {
		t.Run(name, func(t *testing.T) {
			r := request{op: admission.Create, obj: obj}
			want := normalize(t, goPatched(t, evaluate(t, p, cat, r, policy.StageAdmit), obj)).(map[string]any)
			got := normalize(t, mutate(t, maps, obj, false)).(map[string]any)
			if !reflect.DeepEqual(got, want) {
				g, _ := json.MarshalIndent(got, "", " ")
				w, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("CEL:\n%s\nwebhook:\n%s", g, w)
			}
			c := sampleCases[name]
			checkParity(t, p, cat, vaps, request{op: admission.Create, obj: got}, &c)
		})
	}
}

func lookupPath(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}
