package celpolicy

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

const paletteValues = `cloud:
  azure:
    diskEncryptionSetID: ` + desOS + `
    encryptionAtHost: true
`

const desOnlyPolicy = `apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
defaults:
  - name: des-only
    namespaceSelector: {}
    diskEncryptionSetID: ` + desOS + `
`

const eahOnlyPolicy = `apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
defaults:
  - name: eah-only
    encryptionAtHost: true
`

type mapCase struct {
	name        string
	settings    string
	annotations map[string]string
	// injected is what fullPolicy's default fills (policy.Decision.Injected), so that a case means
	// what its name says.
	injected []string
}

const plainOS = "osDisk:\n  osType: Linux\n  managedDisk:\n    storageAccountType: Premium_LRS\n"

var mapCases = []mapCase{
	{name: "nothing set", settings: vmOK + plainOS + "dataDisks:\n  - nameSuffix: a\n    diskSizeGB: 64\n    managedDisk:\n      storageAccountType: Premium_LRS\n  - nameSuffix: b\n    diskSizeGB: 64\n  - nameSuffix: c\n    diskSizeGB: 64\n    managedDisk:\n      diskEncryptionSet:\n        id: \"\"\n  - nameSuffix: d\n    diskSizeGB: 64\n    managedDisk:\n      diskEncryptionSet: {}\n",
		injected: []string{"osDisk.managedDisk.diskEncryptionSet.id", "dataDisks[0].managedDisk.diskEncryptionSet.id", "dataDisks[2].managedDisk.diskEncryptionSet.id", "dataDisks[3].managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}},
	{name: "OS disk without managedDisk", settings: vmOK + "osDisk:\n  osType: Linux\n", injected: []string{"osDisk.managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}},
	{name: "empty DES placeholder", settings: vmOK + osDES(""), injected: []string{"osDisk.managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}},
	{name: "diskEncryptionSet without id", settings: vmOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    diskEncryptionSet: {}\n", injected: []string{"osDisk.managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}},
	{name: "ephemeral OS disk", settings: vmOK + "osDisk:\n  osType: Linux\n  diffDiskSettings:\n    option: Local\n", injected: []string{"securityProfile.encryptionAtHost"}},
	{name: "confidential OS disk", settings: vmOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    securityProfile:\n      securityEncryptionType: VMGuestStateOnly\n", injected: []string{"securityProfile.encryptionAtHost"}},
	{name: "confidential OS disk with the VM guest state", settings: vmOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    securityProfile:\n      securityEncryptionType: DiskWithVMGuestState\n"},
	{name: "securityProfile without encryptionAtHost", settings: vmOK + osDES(desOS) + "securityProfile:\n  securityType: TrustedLaunch\n", injected: []string{"securityProfile.encryptionAtHost"}},
	{name: "encryptionAtHost false", settings: vmOK + osDES(desOS) + "securityProfile:\n  encryptionAtHost: false\n"},
	{name: "size without encryption at host", settings: "vmSize: Standard_A0\n" + plainOS, injected: []string{"osDisk.managedDisk.diskEncryptionSet.id"}},
	{name: "size with mixed support", settings: "vmSize: Standard_Mixed_v1\n" + plainOS, injected: []string{"osDisk.managedDisk.diskEncryptionSet.id"}},
	{name: "size without encryption at host, old evidence", settings: "vmSize: Standard_D4a_v4\n" + plainOS, injected: []string{"osDisk.managedDisk.diskEncryptionSet.id"}},
	{name: "size restricted in the embedded captures only", settings: "vmSize: Standard_M8-2ms\n" + plainOS, injected: []string{"osDisk.managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}},
	{name: "size the catalog lacks", settings: "vmSize: Standard_Nope\n" + plainOS, injected: []string{"osDisk.managedDisk.diskEncryptionSet.id"}},
	{name: "size spelt loosely", settings: "vmSize: \" standard_d4s_v3 \"\n" + osDES(desOS), injected: []string{"securityProfile.encryptionAtHost"}},
	{name: "earlier record merged", settings: vmOK + plainOS, annotations: map[string]string{policy.AnnotationInjected: "zeta,dataDisks[9].managedDisk.diskEncryptionSet.id,osDisk.managedDisk.diskEncryptionSet.id", "other": "x"},
		injected: []string{"osDisk.managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}},
	{name: "empty earlier record", settings: vmOK + plainOS, annotations: map[string]string{policy.AnnotationInjected: ""}, injected: []string{"osDisk.managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}},
	{name: "other annotations only", settings: vmOK + plainOS, annotations: map[string]string{"other": "x"}, injected: []string{"osDisk.managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}},
	{name: "everything set", settings: vmOK + osDES(desOS) + "dataDisks:\n" + dataDisk("a", 0, desData) + "securityProfile:\n  encryptionAtHost: true\n"},
}

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
func mutate(t testing.TB, maps []compiledMAP, params runtime.Object, obj map[string]any, reverse bool) map[string]any {
	t.Helper()
	ordered := slices.Clone(maps)
	if reverse {
		slices.Reverse(ordered)
	}
	for _, m := range ordered {
		if m.kind == obj["kind"] {
			obj = runMAP(t, m.eval, m.name, request{op: admission.Create, obj: obj}, params)
		}
	}
	return obj
}

func TestMutationParity(t *testing.T) {
	cat := testCatalog()
	for _, pc := range []struct{ name, doc string }{
		{"full", fullPolicy}, {"palette", paletteValues}, {"des-only", desOnlyPolicy}, {"eah-only", eahOnlyPolicy},
	} {
		p := mustParse(t, pc.name+".yaml", pc.doc)
		res := mustCompile(t, p, cat)
		maps := compiledMAPs(t, res)
		vaps := compiledVAPs(t, res)
		params := paramsObject(t, res)
		if len(maps) == 0 {
			t.Fatalf("%s: no mutating policy", pc.name)
		}
		for _, k := range machineKinds {
			for _, c := range mapCases {
				t.Run(pc.name+"/"+k.kind+"/"+c.name, func(t *testing.T) {
					obj := object(t, k, "obj", c.settings)
					if c.annotations != nil {
						ann := map[string]any{}
						for k, v := range c.annotations {
							ann[k] = v
						}
						metadata(obj)["annotations"] = ann
					}
					r := request{op: admission.Create, obj: obj}
					d := evaluate(t, p, cat, r, policy.StageAdmit)
					if pc.name == "full" && !slices.Equal(d.Injected, c.injected) {
						t.Errorf("the webhook injects %q, the case says %q", d.Injected, c.injected)
					}
					want := normalize(t, goPatched(t, d, obj))
					got := normalize(t, mutate(t, maps, params, obj, false))
					if !reflect.DeepEqual(got, want) {
						g, _ := json.MarshalIndent(got, "", " ")
						w, _ := json.MarshalIndent(want, "", " ")
						t.Fatalf("CEL mutation differs from the webhook's patch (%s)\nCEL:\n%s\nwebhook:\n%s", patchString(d), g, w)
					}
					if other := normalize(t, mutate(t, maps, params, obj, true)); !reflect.DeepEqual(other, want) {
						t.Errorf("the result depends on the order of the mutating policies: %v", other)
					}
					// Reinvocation finds nothing left to do.
					if again := normalize(t, mutate(t, maps, params, got.(map[string]any), false)); !reflect.DeepEqual(again, got) {
						t.Errorf("a second pass changed the object: %v", again)
					}
					// Defaulting followed by validation: the compiled rules judge the patched object as the
					// webhook's validating stage does.
					checkParity(t, p, cat, vaps, params, request{op: admission.Create, obj: got.(map[string]any)}, nil)
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
