package policy

import (
	"encoding/json"
	"slices"
	"testing"
)

// FuzzEvaluate feeds arbitrary JSON through the policy, in the manner of cert-manager's webhook fuzz
// tests: it must never panic, and when it patches, the patch must apply, a second pass over the
// result must not patch again, and the validating stage must judge the result as `check` does.
func FuzzEvaluate(f *testing.F) {
	for _, o := range []obj{
		template(), bad(),
		template().set(tpl("dataDisks"), []any{dataDisk(nil), dataDisk(""), "not a disk"}),
		template().set(tpl("securityProfile"), "not an object"),
		template().set(tpl("osDisk.managedDisk"), []any{1}),
		template().set("metadata.annotations", "x"),
		template().set(tpl("vmExtensions"), []any{nil, map[string]any{"publisher": 1}}),
	} {
		b, _ := json.Marshal(o)
		f.Add(b)
	}
	f.Add([]byte(`{"apiVersion":"infrastructure.cluster.x-k8s.io/v1beta1","kind":"AzureManagedControlPlane","spec":{"asoManagedClusterPatches":[1,null,"{"]}}`))
	f.Add([]byte(`{"apiVersion":"infrastructure.cluster.x-k8s.io/v1beta1","kind":"AzureMachinePool","spec":{"location":7,"template":null}}`))
	p := defaultsPolicy(f, "requireCustomerManagedKeys: true\n")
	f.Fuzz(func(t *testing.T, raw []byte) {
		// The audit's view of a stored object must not panic either.
		_, _ = EvaluateStored(p, Request{Object: raw}, eastEnv())
		d, err := Evaluate(p, Request{Operation: OperationCreate, Object: raw}, eastEnv())
		if err != nil || len(d.Patch) == 0 {
			return
		}
		patched := applyPatch(t, raw, d)
		again, err := Evaluate(p, Request{Operation: OperationCreate, Object: patched}, eastEnv())
		if err != nil {
			t.Fatalf("patched object no longer evaluates: %v", err)
		}
		if len(again.Patch) != 0 {
			t.Fatalf("second pass patched again: %+v\nfirst: %+v\ninput: %s", again.Patch, d.Patch, raw)
		}
		// The validating webhook, judging the patched object as received, reaches the verdict that
		// `check` reports for the original.
		validated, err := Evaluate(p, Request{Operation: OperationCreate, Stage: StageValidate, Object: patched}, eastEnv())
		if err != nil {
			t.Fatalf("patched object does not validate: %v", err)
		}
		// One exception: when metadata.annotations is not an object (the apiserver never sends that),
		// only the pass that injects can notice that the record annotation cannot be written.
		d.Findings = slices.DeleteFunc(d.Findings, func(f Finding) bool { return f.Field == "metadata.annotations" })
		if validated.Allowed != d.Allowed || !sameFindings(d, validated) {
			t.Fatalf("validating stage disagrees with admit:\nadmit:    %+v\nvalidate: %+v\ninput: %s", d.Findings, validated.Findings, raw)
		}
	})
}
