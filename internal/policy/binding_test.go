package policy

import (
	"strings"
	"testing"
)

func binder(kind string) obj {
	return obj{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": kind,
		"metadata": map[string]any{"name": "md-0", "namespace": "default"},
		"spec":     map[string]any{"clusterName": "c1"}}
}

func bindingReq(t *testing.T, op Operation, b obj, tmpl, old obj) BindingRequest {
	t.Helper()
	req := BindingRequest{Operation: op, Object: b.json(t), Kind: b["kind"].(string), Namespace: "default", Name: "md-0",
		RefField: "spec.template.spec.infrastructureRef", RefGroup: Group, RefKind: "AzureMachineTemplate", RefName: "md-0",
		Replicas: 3, ReplicasKnown: true}
	if tmpl != nil {
		req.Template = tmpl.json(t)
		req.RefKind = tmpl["kind"].(string)
	}
	if old != nil {
		req.OldTemplate = old.json(t)
	}
	return req
}

func boundEnv(region string) Environment {
	return Environment{Catalog: testCatalog(), Cluster: ClusterInfo{Name: "c1", Found: true, BoundBy: "spec.clusterName"},
		Locations: []LocationCandidate{{Location: region, Source: "cluster"}}}
}

func TestEvaluateBinding(t *testing.T) {
	require := defaultsPolicy(t, "requireCustomerManagedKeys: true\n")
	withDES := func(des string) obj { return template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), des) }
	aks := boundEnv("eastus")
	aks.Cluster.AKS, aks.Cluster.InfrastructureKind = true, "AzureManagedCluster"
	cases := []struct {
		name        string
		policy      *Policy
		req         func(t *testing.T) BindingRequest
		env         Environment
		wantAllowed bool
		wantRules   []RuleID
		wantExempt  string
		wantMessage []string
	}{
		{name: "template not created yet", policy: require, env: boundEnv("eastus"), wantAllowed: true, wantExempt: "template not found yet: judged at its own CREATE",
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationCreate, binder("MachineDeployment"), nil, nil)
			}},
		{name: "template created bound, with its default", policy: require, env: boundEnv("eastus"), wantAllowed: true,
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationCreate, binder("MachineDeployment"), withDES(desEast).set(tpl("securityProfile.encryptionAtHost"), true), nil)
			}},
		{name: "template created unbound, bound where a DES is required", policy: require, env: boundEnv("eastus"),
			wantRules: []RuleID{RuleCreatedBeforeDefault, RuleDESRequired},
			wantMessage: []string{"AzureMachineTemplate md-0 (referenced at spec.template.spec.infrastructureRef)", `cluster "c1", region eastus (from cluster)`,
				"created before anything bound it to this cluster", `organisation default "eastus" applies`},
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationCreate, binder("MachineDeployment"), template(), nil)
			}},
		{name: "EAH the size lacks in the cluster's region", env: boundEnv("westus2"), wantRules: []RuleID{RuleEAHSKUUnsupported},
			wantMessage: []string{"Standard_Mixed does not support encryption at host in westus2"},
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationCreate, binder("KubeadmControlPlane"), template().set(tpl("vmSize"), "Standard_Mixed").set(tpl("securityProfile.encryptionAtHost"), true), nil)
			}},
		{name: "same template, bound in a region where the size has EAH", env: boundEnv("eastus"), wantAllowed: true,
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationCreate, binder("KubeadmControlPlane"), template().set(tpl("vmSize"), "Standard_Mixed").set(tpl("securityProfile.encryptionAtHost"), true), nil)
			}},
		{name: "template with a DES bound to an AKS cluster", env: aks, wantRules: []RuleID{RuleAKSTarget},
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationCreate, binder("MachinePool"), withDES(desEast), nil)
			}},
		{name: "switch to a template with another DES", env: boundEnv("eastus"), wantAllowed: true, wantRules: []RuleID{RuleRepave},
			wantMessage: []string{"MachineDeployment md-0 switches spec.template.spec.infrastructureRef from AzureMachineTemplate old to AzureMachineTemplate md-0",
				"osDisk.managedDisk.diskEncryptionSet: " + desWest + " → " + desEast, "all 3 of its machines will be replaced"},
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationUpdate, binder("MachineDeployment"), withDES(desEast), withDES(desWest).set("metadata.name", "old"))
			}},
		{name: "switch to a template with a DES on a data disk", env: boundEnv("eastus"), wantAllowed: true, wantRules: []RuleID{RuleRepave},
			wantMessage: []string{`dataDisks[nameSuffix="data"].managedDisk.diskEncryptionSet: unset → ` + desEast},
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationUpdate, binder("MachineDeployment"),
					withDES(desEast).set(tpl("dataDisks"), []any{dataDisk(desEast)}), withDES(desEast).set(tpl("dataDisks"), []any{dataDisk(nil)}))
			}},
		{name: "switch to a template with the same encryption", env: boundEnv("eastus"), wantAllowed: true,
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationUpdate, binder("MachineDeployment"), withDES(desEast).set(tpl("vmSize"), "Standard_D8s_v3"), withDES(desEast))
			}},
		{name: "topology dry-run", policy: require, env: boundEnv("eastus"), wantAllowed: true, wantExempt: "topology dry-run",
			wantRules: []RuleID{RuleCreatedBeforeDefault, RuleDESRequired},
			req: func(t *testing.T) BindingRequest {
				r := bindingReq(t, OperationCreate, binder("MachineDeployment").set("metadata.annotations", map[string]any{AnnotationTopologyDryRun: ""}), template(), nil)
				r.DryRun = true
				return r
			}},
		{name: "binding object being deleted", policy: require, env: boundEnv("eastus"), wantAllowed: true, wantExempt: "deleting",
			wantRules: []RuleID{RuleCreatedBeforeDefault, RuleDESRequired},
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationUpdate, binder("MachineDeployment").set("metadata.deletionTimestamp", "2026-01-01T00:00:00Z"), template(), nil)
			}},
		{name: "warn-only", policy: defaultsPolicy(t, "requireCustomerManagedKeys: true\nwarnOnly: true\n"), env: boundEnv("eastus"), wantAllowed: true,
			wantRules: []RuleID{RuleCreatedBeforeDefault, RuleDESRequired}, wantMessage: []string{"[warn-only: would deny]"},
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationCreate, binder("MachineDeployment"), template(), nil)
			}},
		{name: "another provider's template", policy: require, env: boundEnv("eastus"), wantAllowed: true,
			wantExempt: "references DockerMachineTemplate md-0 (infrastructure.cluster.x-k8s.io), not a kind this policy decides on",
			req: func(t *testing.T) BindingRequest {
				return bindingReq(t, OperationCreate, binder("MachineDeployment"), obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DockerMachineTemplate",
					"metadata": map[string]any{"name": "d"}}, nil)
			}},
		{name: "a template of our kind in another group", policy: require, env: boundEnv("eastus"), wantAllowed: true,
			wantExempt: "references AzureMachineTemplate md-0 (infrastructure.example.com), not a kind this policy decides on",
			req: func(t *testing.T) BindingRequest {
				r := bindingReq(t, OperationCreate, binder("MachineDeployment"), template(), nil)
				r.RefGroup = "infrastructure.example.com"
				return r
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := EvaluateBinding(tc.policy, tc.req(t), tc.env)
			if err != nil {
				t.Fatal(err)
			}
			var rules []RuleID
			var msgs []string
			for _, f := range d.Findings {
				rules = append(rules, f.Rule)
				msgs = append(msgs, f.Message)
				if f.Field != "spec.template.spec.infrastructureRef" {
					t.Errorf("finding at %q, want the reference", f.Field)
				}
			}
			if strings.Join(ruleStrings(rules), ",") != strings.Join(ruleStrings(tc.wantRules), ",") {
				t.Errorf("rules %v, want %v (%q)", rules, tc.wantRules, msgs)
			}
			if d.Allowed != tc.wantAllowed || d.Exempt != tc.wantExempt {
				t.Errorf("allowed %v exempt %q, want %v %q (%q)", d.Allowed, d.Exempt, tc.wantAllowed, tc.wantExempt, msgs)
			}
			for _, w := range tc.wantMessage {
				if !strings.Contains(strings.Join(msgs, "\n"), w) {
					t.Errorf("no message contains %q:\n%s", w, strings.Join(msgs, "\n"))
				}
			}
			if d.Kind != tc.req(t).Kind || d.Name != "md-0" {
				t.Errorf("decision names %s %s, want the binding object", d.Kind, d.Name)
			}
		})
	}
}

func ruleStrings(rs []RuleID) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}
