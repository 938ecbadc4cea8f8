package e2e

// Binding: templates bound to their cluster by whoever references them (CAPZ's flavors label none),
// the race with the informer, and the binding-time check of MachineDeployments,
// KubeadmControlPlanes and MachinePools.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	clusterV1 = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta1", Kind: "Cluster"}
	mdV1      = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta1", Kind: "MachineDeployment"}
	mdV2      = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta2", Kind: "MachineDeployment"}
	kcpV1     = schema.GroupVersionKind{Group: "controlplane.cluster.x-k8s.io", Version: "v1beta1", Kind: "KubeadmControlPlane"}
)

func refV1(kind, name string) map[string]any {
	return map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": kind, "name": name}
}

func refV2(kind, name string) map[string]any {
	return map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": kind, "name": name}
}

// azureClusterIn and clusterV1In are a cluster as a CAPZ flavor writes it: v1beta1, the control plane
// a KubeadmControlPlane named <name>-control-plane.
func azureClusterIn(ns, name, location string) *unstructured.Unstructured {
	u := object(azureClusterGVK, name, map[string]any{"location": location})
	u.SetNamespace(ns)
	return u
}

func clusterV1In(ns, name string) *unstructured.Unstructured {
	u := object(clusterV1, name, map[string]any{
		"infrastructureRef": refV1("AzureCluster", name),
		"controlPlaneRef":   map[string]any{"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlane", "name": name + "-control-plane"},
	})
	u.SetNamespace(ns)
	return u
}

// machineDeployment is a MachineDeployment of cluster referencing AzureMachineTemplate tmpl: v1beta1
// as in the flavors, or v1beta2 as CAPI's topology controller writes it.
func machineDeployment(gvk schema.GroupVersionKind, ns, name, cluster, tmpl string, replicas int64) *unstructured.Unstructured {
	ref := refV2("AzureMachineTemplate", tmpl)
	bootstrap := map[string]any{"dataSecretName": name + "-bootstrap"}
	if gvk.Version == "v1beta1" {
		ref = refV1("AzureMachineTemplate", tmpl)
	}
	u := object(gvk, name, map[string]any{"clusterName": cluster, "replicas": replicas, "selector": map[string]any{},
		"template": map[string]any{"spec": map[string]any{"clusterName": cluster, "bootstrap": bootstrap, "infrastructureRef": ref}}})
	u.SetNamespace(ns)
	return u
}

func kubeadmControlPlaneV1(ns, name, tmpl string) *unstructured.Unstructured {
	u := object(kcpV1, name, map[string]any{"version": "v1.35.0", "replicas": int64(3), "kubeadmConfigSpec": map[string]any{},
		"machineTemplate": map[string]any{"infrastructureRef": refV1("AzureMachineTemplate", tmpl)}})
	u.SetNamespace(ns)
	return u
}

func mustCreate(t *testing.T, objs ...*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func namespace(t *testing.T, name string) {
	t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
	mustCreate(t, ns)
}

// TestReferenceRace is the race of every CAPZ flavor, 100 times: the object that references a
// template (a MachineDeployment, or a KubeadmControlPlane through its Cluster) is created, and the
// template right after it, with no label; the webhook's informers may not have seen the first yet.
// Every template must get its cluster's region default: zero misses.
func TestReferenceRace(t *testing.T) {
	const rounds = 100
	const ns = "race"
	namespace(t, ns)
	before := liveBindings(t)
	start := time.Now()
	var misses []string
	took := map[string]time.Duration{}
	timed := func(objs ...*unstructured.Unstructured) {
		for _, o := range objs {
			s := time.Now()
			mustCreate(t, o)
			took[o.GetKind()] += time.Since(s)
		}
	}
	for i := range rounds {
		name := fmt.Sprintf("race-%d", i)
		timed(clusterV1In(ns, name), azureClusterIn(ns, name, "southcentralus"))
		tmplName := name + "-control-plane"
		if i%2 == 0 {
			tmplName = name + "-md-0"
			timed(machineDeployment(mdV1, ns, tmplName, name, tmplName, 2))
		} else {
			timed(kubeadmControlPlaneV1(ns, tmplName, tmplName))
		}
		tmpl := template(tmplName, "", "Standard_D4s_v3")
		tmpl.SetNamespace(ns)
		s := time.Now()
		err := k8s.Create(ctx(t), tmpl)
		took[tmpl.GetKind()] += time.Since(s)
		if err != nil {
			misses = append(misses, fmt.Sprintf("%s: denied: %v", tmplName, err))
			continue
		}
		// Create fills tmpl with what the apiserver stored: after our mutation.
		if got := nestedString(t, tmpl, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...); got != desSouth {
			misses = append(misses, fmt.Sprintf("%s: DES %q", tmplName, got))
		}
	}
	elapsed := time.Since(start)
	if len(misses) > 0 {
		t.Errorf("%d of %d templates missed their cluster's region:\n%s", len(misses), rounds, strings.Join(misses, "\n"))
	}
	// Each template is resolved twice (mutating and validating webhook); those the informer had
	// not caught up with were bound by the apiserver lookup.
	t.Logf("%d rounds in %s, 0 misses; %d of %d resolutions of a template needed the apiserver (the informer had not seen its referrer yet); time in creates by kind: %v",
		rounds, elapsed.Round(time.Millisecond), int(liveBindings(t)-before), 2*rounds, took)
}

func liveBindings(t *testing.T) float64 {
	t.Helper()
	v, _ := metricValue(scrape(t), "capz_encryption_webhook_binding_resolutions_total", map[string]string{"phase": "live", "result": "bound"})
	return v
}

// TestBindingCheck: a template created before anything binds it, judged again when a
// MachineDeployment or KubeadmControlPlane binds it to a cluster.
func TestBindingCheck(t *testing.T) {
	const ns = "binding"
	namespace(t, ns)
	mustCreate(t, clusterV1In(ns, "east"), azureClusterIn(ns, "east", "eastus"), clusterV1In(ns, "south"), azureClusterIn(ns, "south", "southcentralus"))
	// Standard_M8-2ms supports encryption at host, but is restricted for the subscription in
	// eastus: unbound, the template is allowed with a warning; bound in eastus, it must not be.
	m8 := template("m8", "", "Standard_M8-2ms")
	m8.SetNamespace(ns)
	setField(m8, true, tplPath("securityProfile", "encryptionAtHost")...)
	setField(m8, desUser, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
	warnings.take()
	mustCreate(t, m8)
	if w := strings.Join(warnings.take(), "\n"); !strings.Contains(w, "[eah-sku-unsupported]") || !strings.Contains(w, "region is unknown") {
		t.Errorf("unbound template: want the mixed-support warning, got %q", w)
	}

	t.Run("bound where the template is allowed", func(t *testing.T) {
		mustCreate(t, machineDeployment(mdV2, ns, "south-md", "south", "m8", 3))
	})
	t.Run("bound where the template is denied", func(t *testing.T) {
		err := k8s.Create(ctx(t), machineDeployment(mdV2, ns, "east-md", "east", "m8", 3))
		expectDenied(t, err, "eah-sku-unsupported", "MachineDeployment binding/east-md", "AzureMachineTemplate m8 (referenced at spec.template.spec.infrastructureRef)",
			`cluster "east", region eastus`, "restricted for this subscription in eastus")
	})
	t.Run("KubeadmControlPlane v1beta1, its cluster through the Cluster's controlPlaneRef", func(t *testing.T) {
		err := k8s.Create(ctx(t), kubeadmControlPlaneV1(ns, "east-control-plane", "m8"))
		expectDenied(t, err, "eah-sku-unsupported", "KubeadmControlPlane binding/east-control-plane", "spec.machineTemplate.infrastructureRef", `cluster "east"`)
	})
	t.Run("scaling never reaches the check; switching templates does, with the repave warning", func(t *testing.T) {
		other := template("m8-team-b", "", "Standard_M8-2ms")
		other.SetNamespace(ns)
		setField(other, true, tplPath("securityProfile", "encryptionAtHost")...)
		setField(other, desSouth, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
		mustCreate(t, other)
		md := get(t, machineDeployment(mdV2, ns, "south-md", "", "", 0))
		setField(md, int64(5), "spec", "replicas")
		if err := k8s.Update(ctx(t), md); err != nil {
			t.Fatal(err)
		}
		md = get(t, md)
		setField(md, "m8-team-b", "spec", "template", "spec", "infrastructureRef", "name")
		warnings.take()
		if err := k8s.Update(ctx(t), md); err != nil {
			t.Fatal(err)
		}
		w := strings.Join(warnings.take(), "\n")
		for _, want := range []string{"[encryption-change-repave]", "from AzureMachineTemplate m8 to AzureMachineTemplate m8-team-b",
			desUser + " → " + desSouth, "all 5 of its machines will be replaced"} {
			if !strings.Contains(w, want) {
				t.Errorf("switch: warning lacks %q: %q", want, w)
			}
		}
		// The apiserver called the binding check for the switch, and not for the scale-up.
		if l := hook.auditLine(5*time.Second, func(l map[string]any) bool {
			return l["webhook"] == "validate-binding" && l["name"] == "south-md" && l["operation"] == "UPDATE"
		}); l == nil {
			t.Fatal("no binding decision for the switch")
		}
		updates := 0
		for _, l := range hook.auditLines() {
			if l["webhook"] == "validate-binding" && l["name"] == "south-md" && l["operation"] == "UPDATE" {
				updates++
			}
		}
		if updates != 1 {
			t.Errorf("%d binding decisions for UPDATEs of south-md, want 1 (the switch; matchConditions keep the scale-up away)", updates)
		}
	})
}

// TestAPIGenerations: aks-target on the AKS kinds CAPZ ships besides the two TestEachRuleDenies
// covers, including the ASO kinds in their v1alpha1 generation.
func TestAPIGenerations(t *testing.T) {
	gvk := func(v, kind string) schema.GroupVersionKind {
		return schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: v, Kind: kind}
	}
	agentPool := map[string]any{"apiVersion": "containerservice.azure.com/v1api20240901", "kind": "ManagedClustersAgentPool",
		"metadata": map[string]any{"name": "pool0"}, "spec": map[string]any{"enableEncryptionAtHost": true}}
	managedCluster := map[string]any{"apiVersion": "containerservice.azure.com/v1api20240901", "kind": "ManagedCluster",
		"metadata": map[string]any{"name": "aks"}, "spec": map[string]any{"location": "eastus", "diskEncryptionSetReference": map[string]any{"armId": desEast}}}
	cases := []struct {
		obj   *unstructured.Unstructured
		field string
	}{
		{object(gvk("v1beta1", "AzureManagedMachinePoolTemplate"), "gen-ammpt", map[string]any{"template": map[string]any{"spec": map[string]any{
			"mode": "System", "sku": "Standard_D4s_v3", "asoManagedClustersAgentPoolPatches": []any{`{"spec":{"enableEncryptionAtHost":true}}`}}}}),
			"spec.template.spec.asoManagedClustersAgentPoolPatches[0]"},
		{object(gvk("v1beta1", "AzureManagedControlPlaneTemplate"), "gen-amcpt", map[string]any{"template": map[string]any{"spec": map[string]any{
			"version": "v1.33.2", "resourceGroupName": "aks", "location": "eastus", "identityRef": map[string]any{"kind": "AzureClusterIdentity", "name": "id"},
			"asoManagedClusterPatches": []any{`{"spec":{"diskEncryptionSetReference":{"armId":"` + desEast + `"}}}`}}}}),
			"spec.template.spec.asoManagedClusterPatches[0]"},
		{object(gvk("v1alpha1", "AzureASOManagedMachinePool"), "gen-asomp", map[string]any{"resources": []any{agentPool}}),
			"spec.resources[0].spec.enableEncryptionAtHost"},
		{object(gvk("v1beta1", "AzureASOManagedControlPlane"), "gen-asocp", map[string]any{"version": "v1.33.2", "resources": []any{managedCluster}}),
			"spec.resources[0].spec.diskEncryptionSetReference"},
		{object(gvk("v1alpha1", "AzureASOManagedControlPlaneTemplate"), "gen-asocpt", map[string]any{"template": map[string]any{"spec": map[string]any{"resources": []any{managedCluster}}}}),
			"spec.template.spec.resources[0].spec.diskEncryptionSetReference"},
	}
	for _, tc := range cases {
		t.Run(tc.obj.GetAPIVersion()+"/"+tc.obj.GetKind(), func(t *testing.T) {
			expectDenied(t, k8s.Create(ctx(t), tc.obj), "aks-target", tc.field)
		})
	}
}
