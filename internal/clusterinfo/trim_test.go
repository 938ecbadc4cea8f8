package clusterinfo

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/go-logr/logr"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	infrav1 "sigs.k8s.io/cluster-api-provider-azure/api/v1beta1"
	kcpv1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1beta1 "sigs.k8s.io/cluster-api/api/core/v1beta1" //nolint:staticcheck // deprecated, and what CAPZ's flavors write
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// The informer cache keeps trimmed copies of every watched kind (WatchedKinds' transforms). The
// tests here resolve the same subjects against full objects, as CAPI's and CAPZ's controllers store
// them, and against their trimmed copies: every answer must be the same, so a field the resolver
// reads cannot be trimmed away unnoticed.

// asMap serialises a typed object as the apiserver would send it.
func asMap(t *testing.T, gvk schema.GroupVersionKind, o runtime.Object) map[string]any {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["apiVersion"], m["kind"] = gvk.GroupVersion().String(), gvk.Kind
	return m
}

// fullMeta is metadata as a management cluster stores it: labels, annotations, managed fields.
func fullMeta(name, cluster string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: "team", UID: types.UID("uid-" + name), ResourceVersion: "42", Generation: 2,
		Labels:      map[string]string{"topology.cluster.x-k8s.io/owned": "", "example.com/team": "a"},
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"big":"json"}`},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "capi-topology", Operation: metav1.ManagedFieldsOperationApply,
			FieldsType: "FieldsV1"}},
	}
	if cluster != "" {
		m.Labels[capiref.LabelClusterName] = cluster
	}
	return m
}

func conds() []metav1.Condition {
	return []metav1.Condition{{Type: "Available", Status: metav1.ConditionTrue, Reason: "Available", Message: "all good", LastTransitionTime: metav1.Now()},
		{Type: "RollingOut", Status: metav1.ConditionFalse, Reason: "NotRollingOut", LastTransitionTime: metav1.Now()}}
}

func gvk(group, version, kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: group, Version: version, Kind: kind}
}

// fullObjects are a management cluster's objects in full: a topology Cluster with its
// AzureCluster, control plane, workers and class; an AKS Cluster, an ASO one, and a Cluster the
// topology controller has not pointed at its AzureCluster yet.
func fullObjects(t *testing.T) []map[string]any {
	amtRef := func(name string) clusterv1.ContractVersionedObjectReference {
		return clusterv1.ContractVersionedObjectReference{APIGroup: policy.Group, Kind: "AzureMachineTemplate", Name: name}
	}
	core2, core1 := func(k string) schema.GroupVersionKind { return gvk(capiref.GroupCore, "v1beta2", k) },
		func(k string) schema.GroupVersionKind { return gvk(capiref.GroupCore, "v1beta1", k) }
	infra := func(k string) schema.GroupVersionKind { return gvk(policy.Group, "v1beta1", k) }
	topology := &clusterv1.Cluster{ObjectMeta: fullMeta("topo", "topo"), Spec: clusterv1.ClusterSpec{
		ClusterNetwork:       clusterv1.ClusterNetwork{Pods: clusterv1.NetworkRanges{CIDRBlocks: []string{"192.168.0.0/16"}}, ServiceDomain: "cluster.local"},
		ControlPlaneEndpoint: clusterv1.APIEndpoint{Host: "topo.eastus.cloudapp.azure.com", Port: 6443},
		InfrastructureRef:    clusterv1.ContractVersionedObjectReference{APIGroup: policy.Group, Kind: "AzureCluster", Name: "topo-az"},
		ControlPlaneRef:      clusterv1.ContractVersionedObjectReference{APIGroup: capiref.GroupControlPlane, Kind: "KubeadmControlPlane", Name: "topo-cp"},
		Topology: clusterv1.Topology{ClassRef: clusterv1.ClusterClassRef{Name: "cc"}, Version: "v1.33.4",
			Workers:   clusterv1.WorkersTopology{MachineDeployments: []clusterv1.MachineDeploymentTopology{{Class: "w", Name: "md-0", Replicas: ptr.To[int32](3)}}},
			Variables: []clusterv1.ClusterVariable{{Name: "location", Value: apiextJSON(`"eastus"`)}}},
	}, Status: clusterv1.ClusterStatus{Conditions: conds(), Phase: "Provisioned"}}
	az := &infrav1.AzureCluster{ObjectMeta: fullMeta("topo-az", "topo"), Spec: infrav1.AzureClusterSpec{
		AzureClusterClassSpec: infrav1.AzureClusterClassSpec{Location: "eastus", SubscriptionID: "sub", AdditionalTags: infrav1.Tags{"a": "b"}},
		ResourceGroup:         "rg-topo",
		NetworkSpec: infrav1.NetworkSpec{Vnet: infrav1.VnetSpec{Name: "vnet", VnetClassSpec: infrav1.VnetClassSpec{CIDRBlocks: []string{"10.0.0.0/8"}}},
			Subnets: infrav1.Subnets{{SubnetClassSpec: infrav1.SubnetClassSpec{Name: "node", Role: infrav1.SubnetNode, CIDRBlocks: []string{"10.1.0.0/16"}}}}},
	}, Status: infrav1.AzureClusterStatus{Ready: true, FailureDomains: clusterv1beta1.FailureDomains{"1": {ControlPlane: true}}}}
	kcp := &kcpv1.KubeadmControlPlane{ObjectMeta: fullMeta("topo-cp", "topo"), Spec: kcpv1.KubeadmControlPlaneSpec{Replicas: ptr.To[int32](3), Version: "v1.33.4",
		MachineTemplate: kcpv1.KubeadmControlPlaneMachineTemplate{Spec: kcpv1.KubeadmControlPlaneMachineTemplateSpec{InfrastructureRef: amtRef("cp-amt")}}},
		Status: kcpv1.KubeadmControlPlaneStatus{Replicas: ptr.To[int32](3), Conditions: conds()}}
	kcp.Labels = map[string]string{} // CAPI puts no cluster-name label on a KubeadmControlPlane it did not create
	md := &clusterv1.MachineDeployment{ObjectMeta: fullMeta("topo-md-0", "topo"), Spec: clusterv1.MachineDeploymentSpec{ClusterName: "topo", Replicas: ptr.To[int32](3),
		Template: clusterv1.MachineTemplateSpec{Spec: clusterv1.MachineSpec{ClusterName: "topo", InfrastructureRef: amtRef("md-amt"),
			Bootstrap: clusterv1.Bootstrap{ConfigRef: clusterv1.ContractVersionedObjectReference{APIGroup: "bootstrap.cluster.x-k8s.io", Kind: "KubeadmConfigTemplate", Name: "b"}}}}},
		Status: clusterv1.MachineDeploymentStatus{Replicas: ptr.To[int32](2), Conditions: conds()}}
	ms := &clusterv1.MachineSet{ObjectMeta: fullMeta("topo-md-0-abcde", "topo"), Spec: clusterv1.MachineSetSpec{ClusterName: "topo",
		Template: clusterv1.MachineTemplateSpec{Spec: clusterv1.MachineSpec{ClusterName: "topo", InfrastructureRef: amtRef("md-amt")}}}}
	machine := &clusterv1.Machine{ObjectMeta: fullMeta("topo-md-0-abcde-xyz", "topo"), Spec: clusterv1.MachineSpec{ClusterName: "topo",
		InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: policy.Group, Kind: "AzureMachine", Name: "am-1"}}}
	pool := &clusterv1.MachinePool{ObjectMeta: fullMeta("topo-mp", "topo"), Spec: clusterv1.MachinePoolSpec{ClusterName: "topo", Replicas: ptr.To[int32](2),
		Template: clusterv1.MachineTemplateSpec{Spec: clusterv1.MachineSpec{ClusterName: "topo",
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: policy.Group, Kind: "AzureMachinePool", Name: "amp"}}}}}
	class := &clusterv1.ClusterClass{ObjectMeta: fullMeta("cc", ""), Spec: clusterv1.ClusterClassSpec{
		Workers: clusterv1.WorkersClass{MachineDeployments: []clusterv1.MachineDeploymentClass{{Class: "w", Infrastructure: clusterv1.MachineDeploymentClassInfrastructureTemplate{
			TemplateRef: clusterv1.ClusterClassTemplateReference{APIVersion: policy.Group + "/v1beta1", Kind: "AzureMachineTemplate", Name: "class-amt"}}}}}}}
	aks := &clusterv1beta1.Cluster{ObjectMeta: fullMeta("aks", "aks"), Spec: clusterv1beta1.ClusterSpec{
		InfrastructureRef: &corev1.ObjectReference{APIVersion: policy.Group + "/v1beta1", Kind: "AzureManagedCluster", Name: "aks"},
		ControlPlaneRef:   &corev1.ObjectReference{APIVersion: policy.Group + "/v1beta1", Kind: "AzureManagedControlPlane", Name: "aks"}}}
	amcp := &infrav1.AzureManagedControlPlane{ObjectMeta: fullMeta("aks", "aks"), Spec: infrav1.AzureManagedControlPlaneSpec{
		AzureManagedControlPlaneClassSpec: infrav1.AzureManagedControlPlaneClassSpec{Location: "westeurope", Version: "v1.33.4", SubscriptionID: "sub"},
		SSHPublicKey:                      ptr.To("ssh-rsa AAAA")},
		Status: infrav1.AzureManagedControlPlaneStatus{Ready: true, Version: "v1.33.4"}}
	objs := []map[string]any{
		asMap(t, core2("Cluster"), topology), asMap(t, infra("AzureCluster"), az),
		asMap(t, gvk(capiref.GroupControlPlane, "v1beta2", "KubeadmControlPlane"), kcp),
		asMap(t, core2("MachineDeployment"), md), asMap(t, core2("MachineSet"), ms), asMap(t, core2("Machine"), machine),
		asMap(t, core2("MachinePool"), pool), asMap(t, core2("ClusterClass"), class),
		asMap(t, core1("Cluster"), aks), asMap(t, infra("AzureManagedControlPlane"), amcp),
		// ASO: the region is the embedded ManagedCluster's; the other resources have locations too.
		capi("cluster.x-k8s.io/v1beta2", "Cluster", "aso", map[string]any{"controlPlaneRef": ref2("AzureASOManagedControlPlane", "aso")}),
		capi(policy.Group+"/v1beta1", "AzureASOManagedControlPlane", "aso", map[string]any{"version": "v1.33.4", "resources": []any{
			map[string]any{"apiVersion": "resources.azure.com/v1api20200601", "kind": "ResourceGroup", "metadata": map[string]any{"name": "rg"},
				"spec": map[string]any{"location": "northeurope"}},
			map[string]any{"apiVersion": "containerservice.azure.com/v1api20231001", "kind": "ManagedCluster", "metadata": map[string]any{"name": "aso"},
				"spec": map[string]any{"location": "westus2", "dnsPrefix": "aso", "owner": map[string]any{"name": "rg"},
					"agentPoolProfiles": []any{map[string]any{"name": "pool0", "count": int64(1), "vmSize": "Standard_D2s_v3"}}}},
		}}),
		// CAPI's topology controller, first reconcile: the AzureCluster exists, labelled, and the
		// Cluster does not reference it yet.
		asMap(t, core2("Cluster"), &clusterv1.Cluster{ObjectMeta: fullMeta("new", "new"), Spec: clusterv1.ClusterSpec{
			Topology: clusterv1.Topology{ClassRef: clusterv1.ClusterClassRef{Name: "cc"}, Version: "v1.33.4"}}}),
		asMap(t, infra("AzureCluster"), &infrav1.AzureCluster{ObjectMeta: fullMeta("new-x7k2p", "new"), Spec: infrav1.AzureClusterSpec{
			AzureClusterClassSpec: infrav1.AzureClusterClassSpec{Location: "southcentralus"}, ResourceGroup: "rg-new"}}),
	}
	// The ASO objects carry what a cluster stores too.
	for _, o := range objs[10:12] {
		fm := fullMeta("", "")
		md := o["metadata"].(map[string]any)
		md["labels"], md["managedFields"] = map[string]any{"example.com/team": "a", capiref.LabelClusterName: "aso"}, []any{map[string]any{"manager": fm.ManagedFields[0].Manager}}
		o["status"] = map[string]any{"ready": true}
	}
	return objs
}

func apiextJSON(raw string) apiextensionsv1.JSON { return apiextensionsv1.JSON{Raw: []byte(raw)} }

// trimmedCopies runs every object through the transform the cache applies to its kind.
func trimmedCopies(t *testing.T, objs []map[string]any) []map[string]any {
	t.Helper()
	transforms := map[schema.GroupKind]WatchedKind{}
	for _, w := range WatchedKinds(nil) {
		transforms[w.GVK.GroupKind()] = w
	}
	out := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		u := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(o)}
		w, ok := transforms[u.GroupVersionKind().GroupKind()]
		if !ok {
			t.Fatalf("%s is not watched", u.GroupVersionKind())
		}
		if w.Transform == nil {
			t.Fatalf("%s: the cache keeps it whole", w.GVK.Kind)
		}
		got, err := w.Transform(u)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got.(*unstructured.Unstructured).Object)
	}
	return out
}

func TestTrimmedCacheResolvesAlike(t *testing.T) {
	full := fullObjects(t)
	trimmed := trimmedCopies(t, full)
	for i := range full {
		fb, _ := json.Marshal(full[i])
		tb, _ := json.Marshal(trimmed[i])
		u := unstr(full[i])
		// Objects with a spec beyond their references lose most of their size.
		fat := map[string]bool{"topo": true, "topo-az": true, "new-x7k2p": true, "topo-md-0": true, "topo-cp": true}[u.GetName()] ||
			u.GetKind() == "AzureManagedControlPlane" || u.GetKind() == "AzureASOManagedControlPlane"
		if len(tb) >= len(fb) || fat && len(tb)*2 > len(fb) {
			t.Errorf("%s %s: trimmed to %d of %d bytes: %s", u.GetKind(), u.GetName(), len(tb), len(fb), tb)
		}
		if md, _ := trimmed[i]["metadata"].(map[string]any); md["managedFields"] != nil || md["annotations"] != nil {
			t.Errorf("%s %s: managed fields or annotations kept", u.GetKind(), u.GetName())
		}
		if st, _ := trimmed[i]["status"].(map[string]any); st["conditions"] != nil {
			t.Errorf("%s %s: status conditions kept", u.GetKind(), u.GetName())
		}
		// What the index and Bind read of a CAPI object (the binding check reads replicas of the
		// object it admits, not of the cache).
		if k, ok := capiref.Lookup(u.GroupVersionKind().Group, u.GetKind()); ok {
			if got, want := k.Refs(trimmed[i]), k.Refs(full[i]); !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: refs %v, want %v", u.GetKind(), u.GetName(), got, want)
			}
			if got, want := capiref.ClusterName(trimmed[i]), capiref.ClusterName(full[i]); got != want {
				t.Errorf("%s %s: cluster name %q, want %q", u.GetKind(), u.GetName(), got, want)
			}
		}
		if got, want := objmeta.FromMap(trimmed[i]), objmeta.FromMap(full[i]); got.Name != want.Name || got.Namespace != want.Namespace ||
			got.Labels[capiref.LabelClusterName] != want.Labels[capiref.LabelClusterName] || !reflect.DeepEqual(got.OwnerReferences, want.OwnerReferences) {
			t.Errorf("%s %s: identity %+v, want %+v", u.GetKind(), u.GetName(), got, want)
		}
	}

	labelled := func(s Subject, cluster string) Subject {
		s.Labels = map[string]string{capiref.LabelClusterName: cluster}
		return s
	}
	azure := func(kind, name string) Subject {
		return Subject{Namespace: "team", Group: policy.Group, Kind: kind, Name: name}
	}
	owned := azure("AzureMachine", "am-1")
	owned.Owners = []objmeta.OwnerReference{{APIVersion: "cluster.x-k8s.io/v1beta2", Kind: "Machine", Name: "topo-md-0-abcde-xyz"}}
	eastus := []policy.LocationCandidate{{Location: "eastus", Source: "cluster", Cluster: true}}
	cases := []struct {
		name      string
		s         Subject
		cluster   string
		class     string
		locations []policy.LocationCandidate
	}{
		{"control plane template, via KubeadmControlPlane and Cluster", amt("cp-amt"), "topo", "", eastus},
		{"worker template, via MachineDeployment and MachineSet", amt("md-amt"), "topo", "", eastus},
		{"AzureMachine, via its owner Machine", owned, "topo", "", eastus},
		{"AzureMachine, via the Machine that references it", azure("AzureMachine", "am-1"), "topo", "", eastus},
		{"AzureMachinePool, via MachinePool", azure("AzureMachinePool", "amp"), "topo", "", eastus},
		{"AzureCluster, via the Cluster's infrastructureRef", azure("AzureCluster", "topo-az"), "topo", "", eastus},
		{"class template", amt("class-amt"), "", "cc", nil},
		{"AKS", labelled(azure("AzureManagedMachinePool", "pool0"), "aks"), "aks", "",
			[]policy.LocationCandidate{{Location: "westeurope", Source: "cluster", Cluster: true}}},
		{"AKS control plane, via the Cluster's controlPlaneRef", azure("AzureManagedControlPlane", "aks"), "aks", "",
			[]policy.LocationCandidate{{Location: "westeurope", Source: "cluster", Cluster: true}}},
		{"ASO", labelled(azure("AzureASOManagedMachinePool", "pool0"), "aso"), "aso", "",
			[]policy.LocationCandidate{{Location: "westus2", Source: "cluster", Cluster: true}}},
		{"topology Cluster without references yet: the labelled AzureCluster", labelled(amt("new-md"), "new"), "new", "",
			[]policy.LocationCandidate{{Location: "southcentralus", Source: "cluster", Cluster: true}}},
	}
	ctx := context.Background()
	fullStore, trimmedStore := NewObjectStore(full, "team"), NewObjectStore(trimmed, "team")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantInfo, wantLocs := Resolve(ctx, fullStore, tc.s)
			if wantInfo.Name != tc.cluster || wantInfo.Class != tc.class || !reflect.DeepEqual(wantLocs, tc.locations) {
				t.Fatalf("from the full objects: %+v %+v; the case expects cluster %q class %q %+v", wantInfo, wantLocs, tc.cluster, tc.class, tc.locations)
			}
			gotInfo, gotLocs := Resolve(ctx, trimmedStore, tc.s)
			if gotInfo != wantInfo || !reflect.DeepEqual(gotLocs, wantLocs) {
				t.Errorf("from the trimmed objects: %+v %+v\nfrom the full ones:  %+v %+v", gotInfo, gotLocs, wantInfo, wantLocs)
			}
		})
	}
}

func TestNamespaceTrim(t *testing.T) {
	var trim WatchedKind
	for _, w := range WatchedKinds(nil) {
		if w.GVK.Kind == "Namespace" {
			trim = w
		}
	}
	if trim.Transform == nil {
		t.Fatal("namespaces are cached whole")
	}
	ns := &corev1.Namespace{ObjectMeta: fullMeta("team", ""), Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	ns.Namespace = ""
	ns.Annotations[policy.AnnotationLocation] = "eastus"
	out, err := trim.Transform(ns.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*corev1.Namespace)
	if !reflect.DeepEqual(got.Labels, ns.Labels) || got.Name != "team" || got.ResourceVersion != ns.ResourceVersion {
		t.Errorf("identity or labels lost: %+v", got.ObjectMeta)
	}
	if !reflect.DeepEqual(got.Annotations, map[string]string{policy.AnnotationLocation: "eastus"}) {
		t.Errorf("annotations = %v, want only the location", got.Annotations)
	}
	if got.ManagedFields != nil || len(got.Spec.Finalizers) != 0 || got.Status.Phase != "" {
		t.Errorf("kept more than the resolver reads: %+v", got)
	}
	// What Resolve reads of it.
	c := fakeCache(served(), got)
	r := New(c, NewCacheStore(c, c, served(), time.Second, nil, logr.Discard()), logr.Discard())
	res := r.Resolve(context.Background(), Subject{Namespace: "team"})
	if !reflect.DeepEqual(res.NamespaceLabels, ns.Labels) || len(res.Locations) != 1 || res.Locations[0].Location != "eastus" {
		t.Errorf("Resolve from the trimmed namespace: %+v", res)
	}
}

func TestStripManagedFields(t *testing.T) {
	u := unstr(capi("cluster.x-k8s.io/v1beta2", "Cluster", "c", map[string]any{}))
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "m"}})
	if out, _ := StripManagedFields(u); out.(*unstructured.Unstructured).GetManagedFields() != nil {
		t.Error("unstructured: managed fields kept")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "n", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}}
	if out, _ := StripManagedFields(ns); out.(*corev1.Namespace).ManagedFields != nil {
		t.Error("typed: managed fields kept")
	}
}
