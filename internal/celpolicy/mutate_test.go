package celpolicy

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy/paritycases"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

const (
	paletteValues = paritycases.PaletteValues
	desOnlyPolicy = paritycases.DESOnlyPolicy
	eahOnlyPolicy = paritycases.EAHOnlyPolicy
	plainOS       = paritycases.PlainOS
)

var mapCases = paritycases.Mutation

func normalize(t testing.TB, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// goPatched applies the webhook's patch to the object.
func goPatched(t testing.TB, d *policy.Decision, obj map[string]any) map[string]any {
	t.Helper()
	ops, err := json.Marshal(d.Patch)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(obj)
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("webhook patch %s: %v", ops, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type compiledMAP struct {
	name string
	kind string
	eval mapEvaluator
}

func compiledMAPs(t testing.TB, res *Result) []compiledMAP {
	t.Helper()
	var out []compiledMAP
	for i, p := range res.MutatingPolicies {
		if b := res.MutatingBindings[i]; b.Name != p.Name || b.Spec.PolicyName != p.Name {
			t.Fatalf("policy %s is bound by %s to %s", p.Name, b.Name, b.Spec.PolicyName)
		}
		out = append(out, compiledMAP{name: p.Name, kind: p.Labels[LabelKind], eval: compileMAP(t, p, environment.DefaultCompatibilityVersion(), environment.StoredExpressions)})
	}
	return out
}

// mutate runs the mutating policies of the object's kind in the given order, each on the output of
// the one before, as the apiserver chains them.
func mutate(t testing.TB, maps []compiledMAP, obj map[string]any, reverse bool) map[string]any {
	t.Helper()
	ordered := slices.Clone(maps)
	if reverse {
		slices.Reverse(ordered)
	}
	for _, m := range ordered {
		if m.kind == obj["kind"] {
			obj = runMAP(t, m.eval, m.name, request{op: admission.Create, obj: obj})
		}
	}
	return obj
}

func TestMutationParity(t *testing.T) {
	cat := testCatalog()
	for _, pc := range []struct{ name, doc string }{
		{"full", fullPolicy}, {"full-ssd", fullPolicy + "    dataDiskStorageAccountType: StandardSSD_LRS\n"}, {"palette", paletteValues}, {"des-only", desOnlyPolicy}, {"eah-only", eahOnlyPolicy},
	} {
		p := mustParse(t, pc.name+".yaml", pc.doc)
		res := mustCompile(t, p, cat)
		maps := compiledMAPs(t, res)
		vaps := compiledVAPs(t, res)
		if len(maps) == 0 {
			t.Fatalf("%s: no mutating policy", pc.name)
		}
		for _, k := range machineKinds {
			for _, c := range mapCases {
				t.Run(pc.name+"/"+k.kind+"/"+c.Name, func(t *testing.T) {
					obj := object(t, k, "obj", c.Settings)
					if c.Annotations != nil {
						ann := map[string]any{}
						for k, v := range c.Annotations {
							ann[k] = v
						}
						metadata(obj)["annotations"] = ann
					}
					r := request{op: admission.Create, obj: obj}
					d := evaluate(t, p, cat, r, policy.StageAdmit)
					if pc.name == "full" && !slices.Equal(d.Injected, c.Injected) {
						t.Errorf("the webhook injects %q, the case says %q", d.Injected, c.Injected)
					}
					want := normalize(t, goPatched(t, d, obj))
					got := normalize(t, mutate(t, maps, obj, false))
					if !reflect.DeepEqual(got, want) {
						g, _ := json.MarshalIndent(got, "", " ")
						w, _ := json.MarshalIndent(want, "", " ")
						t.Fatalf("CEL mutation differs from the webhook's patch (%s)\nCEL:\n%s\nwebhook:\n%s", patchString(d), g, w)
					}
					if other := normalize(t, mutate(t, maps, obj, true)); !reflect.DeepEqual(other, want) {
						t.Errorf("the result depends on the order of the mutating policies: %v", other)
					}
					// Reinvocation finds nothing left to do.
					if again := normalize(t, mutate(t, maps, got.(map[string]any), false)); !reflect.DeepEqual(again, got) {
						t.Errorf("a second pass changed the object: %v", again)
					}
					// Defaulting followed by validation: the compiled rules judge the patched object as the
					// webhook's validating stage does.
					checkParity(t, p, cat, vaps, request{op: admission.Create, obj: got.(map[string]any)}, nil)
				})
			}
		}
	}
}

func patchString(d *policy.Decision) string {
	var ops []string
	for _, o := range d.Patch {
		v, _ := json.Marshal(o.Value)
		ops = append(ops, o.Operation+" "+o.Path+" "+string(v))
	}
	return strings.Join(ops, "; ")
}

// A default with a Premium storage type gives a data disk without managedDisk one only where the size
// can attach Premium SSD disks in the machine's region: the compiled policies neither inject it nor
// refuse the disk (des-required), and say so; the webhook decides.
func TestPremiumDataDiskLeftToTheWebhook(t *testing.T) {
	p := mustParse(t, "premium.yaml", fullPolicy+"    dataDiskStorageAccountType: Premium_LRS\n")
	res := mustCompile(t, p, testCatalog())
	obj := object(t, azureMachineTemplate, "t", vmOK+osDES(desOS)+"dataDisks:\n  - nameSuffix: etcd\n    diskSizeGB: 64\n")
	got := mutate(t, compiledMAPs(t, res), obj, false)
	if md := lookupPath(got, "spec", "template", "spec", "dataDisks"); md.([]any)[0].(map[string]any)["managedDisk"] != nil {
		t.Errorf("the compiled injection gave the data disk a Premium managedDisk: %v", md)
	}
	for _, v := range compiledVAPs(t, res) {
		if v.kind == azureMachineTemplate.kind && v.rule == policy.RuleDESRequired {
			if out := runVAP(t, v.eval, v.policy.Name, request{op: admission.Create, obj: got}); out.denied {
				t.Errorf("des-required refuses the disk the webhook may fill: %s", out.message)
			}
		}
	}
	found := false
	for _, o := range res.NotCompiled {
		found = found || strings.Contains(o.Scope, "Premium_LRS")
	}
	if !found {
		t.Errorf("not listed as not compiled: %+v", res.NotCompiled)
	}
	// The webhook, with the region unknown, gives it one where every catalog region has PremiumIO.
	if d := evaluate(t, p, testCatalog(), request{op: admission.Create, obj: obj}, policy.StageAdmit); !slices.Contains(d.Injected, "dataDisks[0].managedDisk") {
		t.Errorf("the webhook no longer injects here (%v): the case shows nothing", d.Injected)
	}
}
