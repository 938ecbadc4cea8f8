package policy

import (
	"slices"
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

// TestRegionPrecedence: the object's own real location (AzureMachinePool spec.location), then its
// cluster's region; only when neither is known, the object's annotation, the namespace annotation
// (and other candidates of the caller, such as check --location), and the policy's default.
func TestRegionPrecedence(t *testing.T) {
	p := mustPolicy(t, policyHeader+"defaultLocation: West US 2\n")
	cluster := LocationCandidate{Location: "East US", Source: "cluster", Cluster: true}
	namespace := LocationCandidate{Location: "southcentralus", Source: "namespace-annotation"}
	annotated := func(o obj, region string) obj {
		return o.set("metadata.annotations", map[string]any{AnnotationLocation: region})
	}
	pool := func(location string) obj {
		o := obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachinePool",
			"metadata": map[string]any{"name": "mp", "namespace": "default"},
			"spec":     map[string]any{"template": map[string]any{"vmSize": "Standard_D4s_v3", "osDisk": map[string]any{"osType": "Linux"}}}}
		if location != "" {
			o.set("spec.location", location)
		}
		return o
	}
	cases := []struct {
		name       string
		object     obj
		env        Environment
		wantRegion string
		wantSource string
		wantRules  []string
	}{
		{"the cluster's region beats the annotation", annotated(template(), "westus2"), Environment{Locations: []LocationCandidate{namespace, cluster}},
			"eastus", "cluster", []string{"location-annotation-ignored:warn"}},
		{"an annotation that agrees is no conflict", annotated(template(), "eastus"), Environment{Locations: []LocationCandidate{cluster}}, "eastus", "cluster", nil},
		{"without a cluster the annotation applies", annotated(template(), "westus2"), Environment{Locations: []LocationCandidate{namespace}}, "westus2", "annotation", nil},
		{"then the namespace annotation", template(), Environment{Locations: []LocationCandidate{{Location: "", Source: "cluster", Cluster: true}, namespace}}, "southcentralus", "namespace-annotation", nil},
		{"then the policy default", template(), Environment{}, "westus2", "policy-default", nil},
		{"a machine pool's own location comes first", pool("westus2"), Environment{Locations: []LocationCandidate{cluster}},
			"westus2", "spec.location", []string{"location-mismatch:warn"}},
		{"a machine pool in its cluster's region", pool("eastus"), Environment{Locations: []LocationCandidate{cluster}}, "eastus", "spec.location", nil},
		{"a machine pool's annotation loses to its spec.location", annotated(pool("eastus"), "westus2"), Environment{}, "eastus", "spec.location", []string{"location-annotation-ignored:warn"}},
		{"a machine pool without location takes its cluster's", pool(""), Environment{Locations: []LocationCandidate{cluster}}, "eastus", "cluster", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := create(t, p, tc.object, tc.env)
			if d.Region != tc.wantRegion || d.RegionSource != tc.wantSource {
				t.Errorf("region %q from %q, want %q from %q", d.Region, d.RegionSource, tc.wantRegion, tc.wantSource)
			}
			var got []string
			for _, f := range d.Findings {
				if f.Rule == RuleLocationAnnotationIgnored || f.Rule == RuleLocationMismatch {
					got = append(got, string(f.Rule)+":"+string(f.Action))
				}
			}
			if !slices.Equal(got, tc.wantRules) {
				t.Errorf("region findings %v, want %v (%+v)", got, tc.wantRules, d.Findings)
			}
		})
	}
	d := create(t, DefaultPolicy(), template(), Environment{})
	if d.Region != "" || d.RegionSource != BindingUnbound || d.Binding != BindingUnbound || d.Catalog.Name != "none" {
		t.Errorf("nothing known: region %q from %q, binding %q, catalog %q", d.Region, d.RegionSource, d.Binding, d.Catalog.Name)
	}
	d = create(t, DefaultPolicy(), template(), Environment{Cluster: ClusterInfo{Name: "c1", BoundBy: "MachineDeployment md-0"}})
	if d.Region != "" || d.RegionSource != "unknown" || d.Binding != "MachineDeployment md-0" {
		t.Errorf("bound, cluster without a region: region %q from %q, binding %q", d.Region, d.RegionSource, d.Binding)
	}
}

func TestBindingRecorded(t *testing.T) {
	for _, tc := range []struct {
		cluster ClusterInfo
		want    string
	}{
		{ClusterInfo{}, BindingUnbound},
		{ClusterInfo{Name: "c1"}, "label"},
		{ClusterInfo{Name: "c1", BoundBy: "owner MachineSet ms-1"}, "owner MachineSet ms-1"},
		{ClusterInfo{Class: "quick-start"}, "ClusterClass quick-start"},
		{ClusterInfo{BoundBy: "ambiguous: referenced by ..."}, "ambiguous: referenced by ..."},
	} {
		if d := create(t, DefaultPolicy(), template(), Environment{Cluster: tc.cluster}); d.Binding != tc.want {
			t.Errorf("%+v: binding %q, want %q", tc.cluster, d.Binding, tc.want)
		}
	}
}

// TestRuleLocationAnnotationIgnored: the annotation cannot choose the region whose defaults suit the
// user; the mismatch is reported at the annotation, and denies where a policy says so.
func TestRuleLocationAnnotationIgnored(t *testing.T) {
	ann := "metadata.annotations.capz-encryption-webhook.io/location"
	elsewhere := template().set("metadata.annotations", map[string]any{AnnotationLocation: "westus2"})
	runRuleCases(t, RuleLocationAnnotationIgnored, []ruleCase{
		{name: "no annotation", object: template(), wantAllowed: true},
		{name: "annotation names another region than the cluster's", object: elsewhere,
			wantRule: RuleLocationAnnotationIgnored, wantField: ann, wantAction: ActionWarn, wantAllowed: true,
			wantMessage: []string{"names westus2", "is in eastus (AzureCluster.spec.location)", "remove it"}},
		{name: "policy says deny", object: elsewhere, policy: mustPolicy(t, policyHeader+"rules:\n  location-annotation-ignored: deny\n"),
			wantRule: RuleLocationAnnotationIgnored, wantField: ann, wantAction: ActionDeny},
	})
	// The annotation does not pick the default either: the cluster's region does.
	p := mustPolicy(t, policyHeader+"defaults:\n- name: west\n  regions: [westus2]\n  diskEncryptionSetID: "+desWest+"\n- name: east\n  regions: [eastus]\n  diskEncryptionSetID: "+desEast+"\n")
	if d := create(t, p, elsewhere, eastEnv()); d.DefaultName != "east" {
		t.Errorf("default %q applied, want the cluster region's (east)", d.DefaultName)
	}
}

// TestRuleLocationMismatch: an AzureMachinePool whose spec.location is not its cluster's region.
func TestRuleLocationMismatch(t *testing.T) {
	pool := obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachinePool",
		"metadata": map[string]any{"name": "mp", "namespace": "default"},
		"spec":     map[string]any{"location": "westus2", "template": map[string]any{"vmSize": "Standard_D4s_v3", "osDisk": map[string]any{"osType": "Linux"}}}}
	runRuleCases(t, RuleLocationMismatch, []ruleCase{
		{name: "pool in another region than its cluster", object: pool,
			wantRule: RuleLocationMismatch, wantField: "spec.location", wantAction: ActionWarn, wantAllowed: true,
			wantMessage: []string{"spec.location is westus2", "is in eastus", "judged for westus2", "set spec.location to eastus"}},
		{name: "policy says deny", object: pool, policy: mustPolicy(t, policyHeader+"rules:\n  location-mismatch: deny\n"),
			wantRule: RuleLocationMismatch, wantField: "spec.location", wantAction: ActionDeny},
	})
}

// TestDefaultNotAppliedWhenNoDefaultMatches: defaults exist, none reaches the object: say why
// (CREATE of a kind that takes defaults only).
func TestDefaultNotAppliedWhenNoDefaultMatches(t *testing.T) {
	p := mustPolicy(t, policyHeader+`defaults:
- name: prod-east
  regions: [eastus]
  namespaceSelector: {matchLabels: {env: prod}}
  diskEncryptionSetID: `+desEast+`
- name: west
  regions: [westus2]
  diskEncryptionSetID: `+desWest+"\n")
	base := strings.TrimSuffix(tpl(""), ".")
	runRuleCases(t, RuleDefaultNotApplied, []ruleCase{
		{name: "no region known", object: template(), env: Environment{Catalog: testCatalog()}, policy: p,
			wantRule: RuleDefaultNotApplied, wantField: base, wantAction: ActionWarn, wantAllowed: true,
			wantMessage: []string{"none applies", "region is unknown", LabelClusterName, `"prod-east" is for regions eastus`, `"west" is for regions westus2`}},
		{name: "no default for the region", object: template(), env: Environment{Catalog: testCatalog(), Locations: []LocationCandidate{{Location: "westeurope", Source: "cluster", Cluster: true}}}, policy: p,
			wantRule: RuleDefaultNotApplied, wantField: base, wantAction: ActionWarn, wantAllowed: true,
			wantMessage: []string{`"prod-east" is for regions eastus, not westeurope`, `"west" is for regions westus2, not westeurope`}},
		{name: "the namespace does not match", object: template(), policy: p,
			wantRule: RuleDefaultNotApplied, wantField: base, wantAction: ActionWarn, wantAllowed: true,
			wantMessage: []string{`"prod-east" is for namespaces matching env=prod, which namespace "default" does not`}},
		{name: "a default applies", object: template(), env: Environment{Catalog: testCatalog(), Locations: []LocationCandidate{{Location: "westus2", Source: "cluster", Cluster: true}}}, policy: p, wantAllowed: true},
		{name: "no defaults at all", object: template(), env: Environment{Catalog: testCatalog()}, wantAllowed: true},
		{name: "policy says deny", object: template(), env: Environment{Catalog: testCatalog()},
			policy:   mustPolicy(t, policyHeader+"rules:\n  default-not-applied: deny\ndefaults:\n- name: west\n  regions: [westus2]\n  diskEncryptionSetID: "+desWest+"\n"),
			wantRule: RuleDefaultNotApplied, wantField: base, wantAction: ActionDeny},
	})
	// UPDATE never injects, so it never says that nothing was injected.
	d, err := Evaluate(p, Request{Operation: OperationUpdate, Object: template().json(t), OldObject: template().json(t)}, Environment{Catalog: testCatalog()})
	if err != nil {
		t.Fatal(err)
	}
	if f := findingsOf(d, RuleDefaultNotApplied); len(f) != 0 {
		t.Errorf("UPDATE: %+v", f)
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
