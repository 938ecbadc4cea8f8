package policy

import (
	"strings"
	"testing"
)

func TestEvaluateRejectsBadInput(t *testing.T) {
	cases := map[string]string{
		"empty":          "",
		"not JSON":       "apiVersion: v1",
		"array":          "[]",
		"trailing data":  `{"kind":"AzureMachine"} {}`,
		"trailing brace": `{"apiVersion":"infrastructure.cluster.x-k8s.io/v1beta1","kind":"AzureMachine"}}`,
		"other kind":     `{"apiVersion":"v1","kind":"ConfigMap"}`,
		"other group":    `{"apiVersion":"example.com/v1","kind":"AzureMachine"}`,
		"no api version": `{"kind":"AzureMachine"}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Evaluate(nil, Request{Operation: OperationCreate, Object: []byte(in)}, Environment{}); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestRegionPrecedence(t *testing.T) {
	p := mustPolicy(t, policyHeader+"defaultLocation: West US 2\n")
	candidates := []LocationCandidate{{Location: "", Source: "cluster"}, {Location: "EastUS", Source: "namespace-annotation"}}
	cases := []struct {
		name       string
		object     obj
		env        Environment
		wantRegion string
		wantSource string
	}{
		{"annotation wins", template().set("metadata.annotations", map[string]any{AnnotationLocation: "southcentralus"}), Environment{Locations: candidates}, "southcentralus", "annotation"},
		{"first non-empty candidate", template(), Environment{Locations: candidates}, "eastus", "namespace-annotation"},
		{"policy default", template(), Environment{}, "westus2", "policy-default"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := create(t, p, tc.object, tc.env)
			if d.Region != tc.wantRegion || d.RegionSource != tc.wantSource {
				t.Errorf("region %q from %q, want %q from %q", d.Region, d.RegionSource, tc.wantRegion, tc.wantSource)
			}
		})
	}
	d := create(t, DefaultPolicy(), template(), Environment{})
	if d.Region != "" || d.RegionSource != "unknown" || d.Catalog.Name != "none" {
		t.Errorf("nothing known: region %q from %q, catalog %q", d.Region, d.RegionSource, d.Catalog.Name)
	}
}

// bad is a template that breaks a rule on a field the tests below change or keep.
func bad() obj { return template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desPlaceholder) }

func TestExemptions(t *testing.T) {
	p := DefaultPolicy()
	env := eastEnv()
	relabelled := bad().set("metadata.labels", map[string]any{"owner": "team-b"})
	cases := []struct {
		name       string
		req        Request
		wantAllow  bool
		wantExempt string
		wantAction Action
	}{
		{"create is enforced", Request{Operation: OperationCreate, Object: bad().json(t)}, false, "", ActionDeny},
		{"delete is never blocked", Request{Operation: OperationDelete, Object: bad().json(t)}, true, "delete", ""},
		{"object being deleted", Request{Operation: OperationUpdate, Object: bad().set("metadata.deletionTimestamp", "2026-11-26T00:00:00Z").json(t), OldObject: bad().set(tpl("vmSize"), "Standard_D8s_v3").json(t)}, true, "deleting", ActionAudit},
		{"metadata-only update of an old object", Request{Operation: OperationUpdate, Object: relabelled.json(t), OldObject: bad().json(t)}, true, "metadata-only update", ActionAudit},
		{"topology dry-run", Request{Operation: OperationCreate, DryRun: true, Object: bad().set("metadata.annotations", map[string]any{AnnotationTopologyDryRun: ""}).json(t)}, true, "topology dry-run", ActionAudit},
		{"plain dry-run gets the same answer", Request{Operation: OperationCreate, DryRun: true, Object: bad().json(t)}, false, "", ActionDeny},
		{"spec update keeping the old violation is ratcheted", Request{Operation: OperationUpdate, Object: bad().set(tpl("vmSize"), "Standard_D8s_v3").json(t), OldObject: bad().json(t)}, true, "", ActionAudit},
		{"spec update introducing the violation is enforced", Request{Operation: OperationUpdate, Object: bad().json(t), OldObject: template().json(t)}, false, "", ActionDeny},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Evaluate(p, tc.req, env)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed != tc.wantAllow || d.Exempt != tc.wantExempt {
				t.Fatalf("allowed=%v exempt=%q, want %v %q (%+v)", d.Allowed, d.Exempt, tc.wantAllow, tc.wantExempt, d.Findings)
			}
			got := findingsOf(d, RuleDESIDMalformed)
			if tc.wantAction == "" {
				if len(got) != 0 {
					t.Fatalf("want no findings on delete, got %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Action != tc.wantAction {
				t.Fatalf("des-id-malformed findings %+v, want one with action %s", got, tc.wantAction)
			}
		})
	}
}

func TestRepaveWarning(t *testing.T) {
	pool := func(des string) obj {
		return obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachinePool",
			"metadata": map[string]any{"name": "mp", "namespace": "default"},
			"spec": map[string]any{"location": "eastus", "template": map[string]any{"vmSize": "Standard_D4s_v3",
				"osDisk": map[string]any{"osType": "Linux", "managedDisk": map[string]any{"diskEncryptionSet": map[string]any{"id": des}}}}}}
	}
	d, err := Evaluate(DefaultPolicy(), Request{Operation: OperationUpdate, Object: pool(desData).json(t), OldObject: pool(desEast).json(t)}, eastEnv())
	if err != nil {
		t.Fatal(err)
	}
	got := findingsOf(d, RuleRepave)
	if len(got) != 1 || got[0].Action != ActionWarn || got[0].Field != "spec.template.osDisk.managedDisk.diskEncryptionSet" || !strings.Contains(got[0].Message, "full repave") {
		t.Fatalf("repave findings = %+v", got)
	}
	if !d.Allowed {
		t.Fatalf("a repave warning must not deny: %+v", d.Findings)
	}
}

func TestWarnOnly(t *testing.T) {
	for _, key := range []string{"warnOnly", "dryRun"} {
		p := mustPolicy(t, policyHeader+key+": true\n")
		d := create(t, p, bad(), eastEnv())
		f := findingsOf(d, RuleDESIDMalformed)
		if !d.Allowed || !d.WarnOnly || len(f) != 1 || f[0].Action != ActionWarn || !strings.HasPrefix(f[0].Message, "[warn-only: would deny]") {
			t.Fatalf("%s: warn-only decision: allowed=%v warnOnly=%v findings=%+v", key, d.Allowed, d.WarnOnly, d.Findings)
		}
	}
}

func TestDecisionIdentity(t *testing.T) {
	d, err := Evaluate(DefaultPolicy(), Request{Operation: OperationCreate, Namespace: "from-request",
		Object: template().del("metadata.namespace").del("metadata.name").set("metadata.generateName", "md-").json(t)}, eastEnv())
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != "AzureMachineTemplate" || d.Name != "md-" || d.Namespace != "from-request" || d.Catalog.Name != "test" {
		t.Fatalf("identity = %s %s/%s catalog %q", d.Kind, d.Namespace, d.Name, d.Catalog.Name)
	}
}
