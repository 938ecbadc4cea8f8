package clusterinfo

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

func capi(apiVersion, kind, name string, spec map[string]any) map[string]any {
	return map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name, "namespace": "team"}, "spec": spec}
}

// v1beta1 and v1beta2 references, as CAPZ's flavors and CAPI's topology controller write them.
func ref1(kind, name string) map[string]any {
	return map[string]any{"apiVersion": policy.Group + "/v1beta1", "kind": kind, "name": name}
}

func ref2(kind, name string) map[string]any {
	return map[string]any{"apiGroup": policy.Group, "kind": kind, "name": name}
}

func infra(r map[string]any) map[string]any {
	return map[string]any{"spec": map[string]any{"infrastructureRef": r}}
}

func amt(name string) Subject {
	return Subject{Namespace: "team", Group: policy.Group, Kind: "AzureMachineTemplate", Name: name}
}

func TestBind(t *testing.T) {
	objs := []map[string]any{
		// A flavor, v1beta1: Cluster → KCP → AMT, MD → AMT, MP → AMP.
		capi("cluster.x-k8s.io/v1beta1", "Cluster", "flavor", map[string]any{
			"infrastructureRef": ref1("AzureCluster", "flavor"),
			"controlPlaneRef":   map[string]any{"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlane", "name": "flavor-cp"}}),
		capi("controlplane.cluster.x-k8s.io/v1beta1", "KubeadmControlPlane", "flavor-cp", map[string]any{
			"machineTemplate": map[string]any{"infrastructureRef": ref1("AzureMachineTemplate", "flavor-cp")}}),
		capi("cluster.x-k8s.io/v1beta1", "MachineDeployment", "flavor-md-0", map[string]any{"clusterName": "flavor",
			"template": infra(ref1("AzureMachineTemplate", "flavor-md-0"))}),
		capi("cluster.x-k8s.io/v1beta1", "MachinePool", "flavor-mp-0", map[string]any{"clusterName": "flavor",
			"template": infra(ref1("AzureMachinePool", "flavor-mp-0"))}),
		// v1beta2 objects, and a v1beta1 KCP relabelled v1beta2 without conversion.
		capi("cluster.x-k8s.io/v1beta2", "Cluster", "new", map[string]any{
			"controlPlaneRef": map[string]any{"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "new-cp"}}),
		capi("controlplane.cluster.x-k8s.io/v1beta2", "KubeadmControlPlane", "new-cp", map[string]any{
			"machineTemplate": map[string]any{"infrastructureRef": map[string]any{"kind": "AzureMachineTemplate", "name": "new-cp"}}}),
		capi("controlplane.cluster.x-k8s.io/v1beta2", "KubeadmControlPlane", "new-cp-v2", map[string]any{
			"machineTemplate": map[string]any{"spec": map[string]any{"infrastructureRef": ref2("AzureMachineTemplate", "new-cp-v2")}}}),
		capi("controlplane.cluster.x-k8s.io/v1beta2", "KubeadmControlPlane", "orphan-cp", map[string]any{
			"machineTemplate": map[string]any{"spec": map[string]any{"infrastructureRef": ref2("AzureMachineTemplate", "orphan-cp")}}}),
		// An AKS cluster: the Cluster binds its control plane, a MachinePool its agent pool.
		capi("cluster.x-k8s.io/v1beta1", "Cluster", "aks", map[string]any{
			"infrastructureRef": ref1("AzureManagedCluster", "aks"), "controlPlaneRef": ref1("AzureManagedControlPlane", "aks")}),
		capi("cluster.x-k8s.io/v1beta1", "MachinePool", "aks-pool0", map[string]any{"clusterName": "aks",
			"template": infra(ref1("AzureManagedMachinePool", "aks-pool0"))}),
		// A template shared by MachineDeployments of two clusters.
		capi("cluster.x-k8s.io/v1beta2", "MachineDeployment", "a-md", map[string]any{"clusterName": "a", "template": infra(ref2("AzureMachineTemplate", "shared"))}),
		capi("cluster.x-k8s.io/v1beta2", "MachineDeployment", "b-md", map[string]any{"clusterName": "b", "template": infra(ref2("AzureMachineTemplate", "shared"))}),
		// A template of the same name in another provider's group binds nothing of ours.
		capi("cluster.x-k8s.io/v1beta2", "MachineDeployment", "docker-md", map[string]any{"clusterName": "docker",
			"template": infra(map[string]any{"apiGroup": "infrastructure.example.com", "kind": "AzureMachineTemplate", "name": "lookalike"})}),
		// A ClusterClass's templates, v1beta1.
		capi("cluster.x-k8s.io/v1beta1", "ClusterClass", "quick-start", map[string]any{
			"controlPlane": map[string]any{"machineInfrastructure": map[string]any{"ref": ref1("AzureMachineTemplate", "class-cp")}},
			"workers": map[string]any{"machineDeployments": []any{
				map[string]any{"class": "w", "template": map[string]any{"infrastructure": map[string]any{"ref": ref1("AzureMachineTemplate", "class-md")}}}}}}),
		// A MachineSet owns AzureMachines CAPI creates.
		capi("cluster.x-k8s.io/v1beta2", "MachineSet", "ms-1", map[string]any{"clusterName": "flavor"}),
		capi("cluster.x-k8s.io/v1beta2", "Machine", "m-1", map[string]any{"clusterName": "flavor", "infrastructureRef": ref2("AzureMachine", "am-by-ref")}),
	}
	st := NewObjectStore(objs, "team")
	cases := []struct {
		name    string
		subject Subject
		want    policy.ClusterInfo
	}{
		{"label", func() Subject {
			s := amt("x")
			s.Labels = map[string]string{"cluster.x-k8s.io/cluster-name": "c"}
			return s
		}(),
			policy.ClusterInfo{Name: "c", BoundBy: "label"}},
		{"spec.clusterName of a CAPI object", Subject{Namespace: "team", Group: "cluster.x-k8s.io", Kind: "MachineDeployment", Name: "x", ClusterName: "c"},
			policy.ClusterInfo{Name: "c", BoundBy: "spec.clusterName"}},
		{"KubeadmControlPlane v1beta1, through the Cluster that names it", amt("flavor-cp"), policy.ClusterInfo{Name: "flavor", BoundBy: "KubeadmControlPlane flavor-cp"}},
		{"MachineDeployment v1beta1", amt("flavor-md-0"), policy.ClusterInfo{Name: "flavor", BoundBy: "MachineDeployment flavor-md-0"}},
		{"MachinePool", Subject{Namespace: "team", Group: policy.Group, Kind: "AzureMachinePool", Name: "flavor-mp-0"},
			policy.ClusterInfo{Name: "flavor", BoundBy: "MachinePool flavor-mp-0"}},
		{"KCP labelled v1beta2 in v1beta1 shape", amt("new-cp"), policy.ClusterInfo{Name: "new", BoundBy: "KubeadmControlPlane new-cp"}},
		{"KCP v1beta2 no Cluster names", amt("orphan-cp"), policy.ClusterInfo{}},
		{"AKS control plane, through the Cluster", Subject{Namespace: "team", Group: policy.Group, Kind: "AzureManagedControlPlane", Name: "aks"},
			policy.ClusterInfo{Name: "aks", BoundBy: "Cluster aks"}},
		{"AKS agent pool", Subject{Namespace: "team", Group: policy.Group, Kind: "AzureManagedMachinePool", Name: "aks-pool0"},
			policy.ClusterInfo{Name: "aks", BoundBy: "MachinePool aks-pool0"}},
		{"referrers of two clusters", amt("shared"),
			policy.ClusterInfo{BoundBy: "ambiguous: referenced by MachineDeployment a-md (cluster a), MachineDeployment b-md (cluster b)"}},
		{"other provider's group", amt("lookalike"), policy.ClusterInfo{}},
		{"ClusterClass template", amt("class-md"), policy.ClusterInfo{Class: "quick-start"}},
		{"nothing references it", amt("alone"), policy.ClusterInfo{}},
		{"other namespace", func() Subject { s := amt("flavor-md-0"); s.Namespace = "other"; return s }(), policy.ClusterInfo{}},
		{"owner MachineSet", Subject{Namespace: "team", Group: policy.Group, Kind: "AzureMachine", Name: "am",
			Owners: []objmeta.OwnerReference{{APIVersion: "cluster.x-k8s.io/v1beta2", Kind: "MachineSet", Name: "ms-1"}}},
			policy.ClusterInfo{Name: "flavor", BoundBy: "owner MachineSet ms-1"}},
		{"owner KubeadmControlPlane", Subject{Namespace: "team", Group: policy.Group, Kind: "AzureMachine", Name: "am",
			Owners: []objmeta.OwnerReference{{APIVersion: "controlplane.cluster.x-k8s.io/v1beta2", Kind: "KubeadmControlPlane", Name: "flavor-cp"}}},
			policy.ClusterInfo{Name: "flavor", BoundBy: "owner KubeadmControlPlane flavor-cp"}},
		{"owner Cluster", Subject{Namespace: "team", Group: policy.Group, Kind: "AzureMachine", Name: "am",
			Owners: []objmeta.OwnerReference{{APIVersion: "cluster.x-k8s.io/v1beta1", Kind: "Cluster", Name: "c"}}},
			policy.ClusterInfo{Name: "c", BoundBy: "owner Cluster c"}},
		{"owner of another group is not followed", Subject{Namespace: "team", Group: policy.Group, Kind: "AzureMachine", Name: "am",
			Owners: []objmeta.OwnerReference{{APIVersion: "example.com/v1", Kind: "MachineSet", Name: "ms-1"}}}, policy.ClusterInfo{}},
		{"Machine references it", Subject{Namespace: "team", Group: policy.Group, Kind: "AzureMachine", Name: "am-by-ref"},
			policy.ClusterInfo{Name: "flavor", BoundBy: "Machine m-1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Bind(context.Background(), st, tc.subject); got != tc.want {
				t.Errorf("Bind = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A cycle of owner references must end.
func TestBindOwnerCycle(t *testing.T) {
	ms := func(name, owner string) map[string]any {
		o := capi("cluster.x-k8s.io/v1beta2", "MachineSet", name, map[string]any{})
		o["metadata"].(map[string]any)["ownerReferences"] = []any{map[string]any{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineSet", "name": owner}}
		return o
	}
	st := NewObjectStore([]map[string]any{ms("a", "b"), ms("b", "a")}, "team")
	s := Subject{Namespace: "team", Group: policy.Group, Kind: "AzureMachine", Name: "am",
		Owners: []objmeta.OwnerReference{{APIVersion: "cluster.x-k8s.io/v1beta2", Kind: "MachineSet", Name: "a"}}}
	if got := Bind(context.Background(), st, s); got != (policy.ClusterInfo{}) {
		t.Errorf("Bind = %+v", got)
	}
}

func TestResolveRegion(t *testing.T) {
	labelled := func(o map[string]any, cluster string) map[string]any {
		o["metadata"].(map[string]any)["labels"] = map[string]any{"cluster.x-k8s.io/cluster-name": cluster}
		return o
	}
	objs := []map[string]any{
		// CAPI's topology controller, first reconcile: the AzureCluster exists, labelled, but the
		// Cluster does not reference it yet.
		capi("cluster.x-k8s.io/v1beta2", "Cluster", "topo", map[string]any{"topology": map[string]any{"classRef": map[string]any{"name": "c"}}}),
		labelled(capi(policy.Group+"/v1beta1", "AzureCluster", "topo-x7k2p", map[string]any{"location": "southcentralus"}), "topo"),
		// AKS: the region is the AzureManagedControlPlane's, or the embedded ASO ManagedCluster's.
		capi("cluster.x-k8s.io/v1beta1", "Cluster", "aks", map[string]any{
			"infrastructureRef": ref1("AzureManagedCluster", "aks"), "controlPlaneRef": ref1("AzureManagedControlPlane", "aks")}),
		capi(policy.Group+"/v1beta1", "AzureManagedControlPlane", "aks", map[string]any{"location": "eastus"}),
		capi("cluster.x-k8s.io/v1beta1", "Cluster", "aso", map[string]any{
			"infrastructureRef": ref1("AzureASOManagedCluster", "aso"), "controlPlaneRef": ref1("AzureASOManagedControlPlane", "aso")}),
		capi(policy.Group+"/v1beta1", "AzureASOManagedControlPlane", "aso", map[string]any{"resources": []any{
			map[string]any{"kind": "ManagedCluster", "spec": map[string]any{"location": "westus2"}}}}),
	}
	st := NewObjectStore(objs, "team")
	for cluster, want := range map[string]string{"topo": "southcentralus", "aks": "eastus", "aso": "westus2"} {
		s := amt("t")
		s.Labels = map[string]string{"cluster.x-k8s.io/cluster-name": cluster}
		info, locs := Resolve(context.Background(), st, s)
		if !info.Found || len(locs) != 1 || locs[0] != (policy.LocationCandidate{Location: want, Source: "cluster", Cluster: true}) {
			t.Errorf("%s: %+v %+v, want %s", cluster, info, locs, want)
		}
	}
}

// check resolves an object without itself, as the webhook does at its CREATE: an
// AzureASOManagedControlPlane's cluster region, which is its own ManagedCluster's, is not known yet.
func TestExcludingTheSubject(t *testing.T) {
	st := NewObjectStore([]map[string]any{
		capi("cluster.x-k8s.io/v1beta1", "Cluster", "aso", map[string]any{"controlPlaneRef": ref1("AzureASOManagedControlPlane", "aso")}),
		capi(policy.Group+"/v1beta1", "AzureASOManagedControlPlane", "aso", map[string]any{"resources": []any{
			map[string]any{"kind": "ManagedCluster", "spec": map[string]any{"location": "westus2"}}}}),
	}, "team")
	s := Subject{Namespace: "team", Group: policy.Group, Kind: "AzureASOManagedControlPlane", Name: "aso"}
	if _, locs := Resolve(context.Background(), st, s); len(locs) != 1 {
		t.Fatalf("with itself in the store: %v", locs)
	}
	info, locs := Resolve(context.Background(), st.Excluding(schema.GroupKind{Group: policy.Group, Kind: s.Kind}, "team", "aso"), s)
	if info.Name != "aso" || len(locs) != 0 {
		t.Errorf("without itself: %+v %v", info, locs)
	}
}
