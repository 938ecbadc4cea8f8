package capiref

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kcpv1beta1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta1" //nolint:staticcheck // deprecated, and what CAPZ's flavors write: the contract covers it
	kcpv1 "sigs.k8s.io/cluster-api/api/controlplane/kubeadm/v1beta2"
	clusterv1beta1 "sigs.k8s.io/cluster-api/api/core/v1beta1" //nolint:staticcheck // deprecated, and what CAPZ's flavors write: the contract covers it
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
)

// The contract with CAPI's Go types: objects built with the real types of both API versions and
// serialised as CAPI serialises them must yield their references at the paths the table names. A
// renamed JSON tag in a CAPI upgrade fails here, not in a cluster.

func decoded(t *testing.T, o any) map[string]any {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	amt     = corev1.ObjectReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureMachineTemplate", Name: "amt"}
	amtV2   = clusterv1.ContractVersionedObjectReference{APIGroup: GroupInfra, Kind: "AzureMachineTemplate", Name: "amt"}
	wantAMT = func(field string) Ref {
		return Ref{Group: GroupInfra, Kind: "AzureMachineTemplate", Name: "amt", Field: field}
	}
)

func TestContractWithCAPITypes(t *testing.T) {
	cases := []struct {
		name string
		kind string
		obj  any
		want []Ref
	}{
		{"MachineDeployment v1beta1", "MachineDeployment", &clusterv1beta1.MachineDeployment{Spec: clusterv1beta1.MachineDeploymentSpec{ClusterName: "c",
			Template: clusterv1beta1.MachineTemplateSpec{Spec: clusterv1beta1.MachineSpec{InfrastructureRef: amt}}}},
			[]Ref{wantAMT("spec.template.spec.infrastructureRef")}},
		{"MachineDeployment v1beta2", "MachineDeployment", &clusterv1.MachineDeployment{Spec: clusterv1.MachineDeploymentSpec{ClusterName: "c",
			Template: clusterv1.MachineTemplateSpec{Spec: clusterv1.MachineSpec{InfrastructureRef: amtV2}}}},
			[]Ref{wantAMT("spec.template.spec.infrastructureRef")}},
		{"MachineSet v1beta1", "MachineSet", &clusterv1beta1.MachineSet{Spec: clusterv1beta1.MachineSetSpec{ClusterName: "c",
			Template: clusterv1beta1.MachineTemplateSpec{Spec: clusterv1beta1.MachineSpec{InfrastructureRef: amt}}}},
			[]Ref{wantAMT("spec.template.spec.infrastructureRef")}},
		{"MachineSet v1beta2", "MachineSet", &clusterv1.MachineSet{Spec: clusterv1.MachineSetSpec{ClusterName: "c",
			Template: clusterv1.MachineTemplateSpec{Spec: clusterv1.MachineSpec{InfrastructureRef: amtV2}}}},
			[]Ref{wantAMT("spec.template.spec.infrastructureRef")}},
		{"KubeadmControlPlane v1beta1", "KubeadmControlPlane", &kcpv1beta1.KubeadmControlPlane{Spec: kcpv1beta1.KubeadmControlPlaneSpec{
			MachineTemplate: kcpv1beta1.KubeadmControlPlaneMachineTemplate{InfrastructureRef: amt}}},
			[]Ref{wantAMT("spec.machineTemplate.infrastructureRef")}},
		{"KubeadmControlPlane v1beta2", "KubeadmControlPlane", &kcpv1.KubeadmControlPlane{Spec: kcpv1.KubeadmControlPlaneSpec{
			MachineTemplate: kcpv1.KubeadmControlPlaneMachineTemplate{Spec: kcpv1.KubeadmControlPlaneMachineTemplateSpec{InfrastructureRef: amtV2}}}},
			[]Ref{wantAMT("spec.machineTemplate.spec.infrastructureRef")}},
		{"MachinePool v1beta1", "MachinePool", &clusterv1beta1.MachinePool{Spec: clusterv1beta1.MachinePoolSpec{ClusterName: "c",
			Template: clusterv1beta1.MachineTemplateSpec{Spec: clusterv1beta1.MachineSpec{InfrastructureRef: corev1.ObjectReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureMachinePool", Name: "amp"}}}}},
			[]Ref{{Group: GroupInfra, Kind: "AzureMachinePool", Name: "amp", Field: "spec.template.spec.infrastructureRef"}}},
		{"MachinePool v1beta2", "MachinePool", &clusterv1.MachinePool{Spec: clusterv1.MachinePoolSpec{ClusterName: "c",
			Template: clusterv1.MachineTemplateSpec{Spec: clusterv1.MachineSpec{InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: GroupInfra, Kind: "AzureMachinePool", Name: "amp"}}}}},
			[]Ref{{Group: GroupInfra, Kind: "AzureMachinePool", Name: "amp", Field: "spec.template.spec.infrastructureRef"}}},
		{"Machine v1beta1", "Machine", &clusterv1beta1.Machine{Spec: clusterv1beta1.MachineSpec{ClusterName: "c",
			InfrastructureRef: corev1.ObjectReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureMachine", Name: "am"}}},
			[]Ref{{Group: GroupInfra, Kind: "AzureMachine", Name: "am", Field: "spec.infrastructureRef"}}},
		{"Machine v1beta2", "Machine", &clusterv1.Machine{Spec: clusterv1.MachineSpec{ClusterName: "c",
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: GroupInfra, Kind: "AzureMachine", Name: "am"}}},
			[]Ref{{Group: GroupInfra, Kind: "AzureMachine", Name: "am", Field: "spec.infrastructureRef"}}},
		{"Cluster v1beta1", "Cluster", &clusterv1beta1.Cluster{Spec: clusterv1beta1.ClusterSpec{
			InfrastructureRef: &corev1.ObjectReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureManagedCluster", Name: "c"},
			ControlPlaneRef:   &corev1.ObjectReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureManagedControlPlane", Name: "c"}}},
			[]Ref{{Group: GroupInfra, Kind: "AzureManagedCluster", Name: "c", Field: "spec.infrastructureRef"},
				{Group: GroupInfra, Kind: "AzureManagedControlPlane", Name: "c", Field: "spec.controlPlaneRef"}}},
		{"Cluster v1beta2", "Cluster", &clusterv1.Cluster{Spec: clusterv1.ClusterSpec{
			InfrastructureRef: clusterv1.ContractVersionedObjectReference{APIGroup: GroupInfra, Kind: "AzureCluster", Name: "c"},
			ControlPlaneRef:   clusterv1.ContractVersionedObjectReference{APIGroup: GroupControlPlane, Kind: "KubeadmControlPlane", Name: "c"}}},
			[]Ref{{Group: GroupInfra, Kind: "AzureCluster", Name: "c", Field: "spec.infrastructureRef"},
				{Group: GroupControlPlane, Kind: "KubeadmControlPlane", Name: "c", Field: "spec.controlPlaneRef"}}},
		{"ClusterClass v1beta1", "ClusterClass", &clusterv1beta1.ClusterClass{Spec: clusterv1beta1.ClusterClassSpec{
			Infrastructure: clusterv1beta1.LocalObjectTemplate{Ref: &corev1.ObjectReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureClusterTemplate", Name: "act"}},
			ControlPlane: clusterv1beta1.ControlPlaneClass{
				LocalObjectTemplate:   clusterv1beta1.LocalObjectTemplate{Ref: &corev1.ObjectReference{APIVersion: GroupControlPlane + "/v1beta1", Kind: "KubeadmControlPlaneTemplate", Name: "kcpt"}},
				MachineInfrastructure: &clusterv1beta1.LocalObjectTemplate{Ref: &corev1.ObjectReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureMachineTemplate", Name: "cp"}}},
			Workers: clusterv1beta1.WorkersClass{
				MachineDeployments: []clusterv1beta1.MachineDeploymentClass{{Class: "w", Template: clusterv1beta1.MachineDeploymentClassTemplate{
					Infrastructure: clusterv1beta1.LocalObjectTemplate{Ref: &corev1.ObjectReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureMachineTemplate", Name: "md"}}}}},
				MachinePools: []clusterv1beta1.MachinePoolClass{{Class: "p", Template: clusterv1beta1.MachinePoolClassTemplate{
					Infrastructure: clusterv1beta1.LocalObjectTemplate{Ref: &corev1.ObjectReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureManagedMachinePoolTemplate", Name: "mp"}}}}}}}},
			[]Ref{{Group: GroupInfra, Kind: "AzureClusterTemplate", Name: "act", Field: "spec.infrastructure.ref"},
				{Group: GroupControlPlane, Kind: "KubeadmControlPlaneTemplate", Name: "kcpt", Field: "spec.controlPlane.ref"},
				{Group: GroupInfra, Kind: "AzureMachineTemplate", Name: "cp", Field: "spec.controlPlane.machineInfrastructure.ref"},
				{Group: GroupInfra, Kind: "AzureMachineTemplate", Name: "md", Field: "spec.workers.machineDeployments[0].template.infrastructure.ref"},
				{Group: GroupInfra, Kind: "AzureManagedMachinePoolTemplate", Name: "mp", Field: "spec.workers.machinePools[0].template.infrastructure.ref"}}},
		{"ClusterClass v1beta2", "ClusterClass", &clusterv1.ClusterClass{Spec: clusterv1.ClusterClassSpec{
			Infrastructure: clusterv1.InfrastructureClass{TemplateRef: clusterv1.ClusterClassTemplateReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureClusterTemplate", Name: "act"}},
			ControlPlane: clusterv1.ControlPlaneClass{
				TemplateRef:           clusterv1.ClusterClassTemplateReference{APIVersion: GroupControlPlane + "/v1beta2", Kind: "KubeadmControlPlaneTemplate", Name: "kcpt"},
				MachineInfrastructure: clusterv1.ControlPlaneClassMachineInfrastructureTemplate{TemplateRef: clusterv1.ClusterClassTemplateReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureMachineTemplate", Name: "cp"}}},
			Workers: clusterv1.WorkersClass{
				MachineDeployments: []clusterv1.MachineDeploymentClass{{Class: "w", Infrastructure: clusterv1.MachineDeploymentClassInfrastructureTemplate{
					TemplateRef: clusterv1.ClusterClassTemplateReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureMachineTemplate", Name: "md"}}}},
				MachinePools: []clusterv1.MachinePoolClass{{Class: "p", Infrastructure: clusterv1.MachinePoolClassInfrastructureTemplate{
					TemplateRef: clusterv1.ClusterClassTemplateReference{APIVersion: GroupInfra + "/v1beta1", Kind: "AzureManagedMachinePoolTemplate", Name: "mp"}}}}}}},
			[]Ref{{Group: GroupInfra, Kind: "AzureClusterTemplate", Name: "act", Field: "spec.infrastructure.templateRef"},
				{Group: GroupControlPlane, Kind: "KubeadmControlPlaneTemplate", Name: "kcpt", Field: "spec.controlPlane.templateRef"},
				{Group: GroupInfra, Kind: "AzureMachineTemplate", Name: "cp", Field: "spec.controlPlane.machineInfrastructure.templateRef"},
				{Group: GroupInfra, Kind: "AzureMachineTemplate", Name: "md", Field: "spec.workers.machineDeployments[0].infrastructure.templateRef"},
				{Group: GroupInfra, Kind: "AzureManagedMachinePoolTemplate", Name: "mp", Field: "spec.workers.machinePools[0].infrastructure.templateRef"}}},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, ok := Lookup("", tc.kind)
			if !ok {
				t.Fatalf("%s not in the table", tc.kind)
			}
			seen[tc.kind] = true
			obj := decoded(t, tc.obj)
			if got := k.Refs(obj); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Refs:\n got %+v\nwant %+v", got, tc.want)
			}
			// The cache keeps trimmed copies: everything the webhook reads must survive the trim.
			trimmed := k.Trim(obj)
			if got := k.Refs(trimmed); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Refs of the trimmed object:\n got %+v\nwant %+v", got, tc.want)
			}
			if ClusterName(trimmed) != ClusterName(obj) {
				t.Errorf("ClusterName after Trim = %q, want %q", ClusterName(trimmed), ClusterName(obj))
			}
		})
	}
	for _, k := range kinds {
		if !seen[k.Kind] {
			t.Errorf("%s has no contract case", k.Kind)
		}
	}
}

// A v1beta1 object relabelled v1beta2 by an apiserver without CAPI's conversion webhook keeps its
// v1beta1 shape: the references must still be found, and a reference that lost its apiVersion still
// names kind and name.
func TestRefsIgnoreTheAPIVersionLabel(t *testing.T) {
	kcp := map[string]any{"apiVersion": GroupControlPlane + "/v1beta2", "kind": "KubeadmControlPlane",
		"spec": map[string]any{"machineTemplate": map[string]any{"infrastructureRef": map[string]any{"kind": "AzureMachineTemplate", "name": "cp"}}}}
	k, _ := Lookup(GroupControlPlane, "KubeadmControlPlane")
	ref, ok := k.InfrastructureRef(kcp)
	if !ok || !ref.Matches(GroupInfra, "AzureMachineTemplate", "cp") || ref.Group != "" {
		t.Errorf("InfrastructureRef = %+v, %v", ref, ok)
	}
	if ref.Matches(GroupInfra, "AzureMachineTemplate", "other") || ref.Matches(GroupInfra, "AzureMachine", "cp") {
		t.Error("Matches must compare kind and name")
	}
	grouped := Ref{Group: "example.com", Kind: "AzureMachineTemplate", Name: "cp"}
	if grouped.Matches(GroupInfra, "AzureMachineTemplate", "cp") {
		t.Error("a reference into another group must not match")
	}
}

func TestReferrerKinds(t *testing.T) {
	names := func(ks []Kind) []string {
		var out []string
		for _, k := range ks {
			out = append(out, k.Kind)
		}
		return out
	}
	for kind, want := range map[string][]string{
		"AzureMachineTemplate":                {"MachineDeployment", "MachineSet", "KubeadmControlPlane", "ClusterClass"},
		"AzureManagedMachinePoolTemplate":     {"ClusterClass"},
		"AzureASOManagedControlPlaneTemplate": {"ClusterClass"},
		"AzureMachine":                        {"Machine"},
		"AzureMachinePool":                    {"MachinePool"},
		"AzureManagedMachinePool":             {"MachinePool"},
		"AzureASOManagedMachinePool":          {"MachinePool"},
		"AzureManagedControlPlane":            {"Cluster"},
		"AzureASOManagedControlPlane":         {"Cluster"},
		"KubeadmControlPlane":                 {"Cluster"},
		"AzureCluster":                        {"Cluster"},
	} {
		if got := names(ReferrerKinds(kind)); !slices.Equal(got, want) {
			t.Errorf("ReferrerKinds(%s) = %v, want %v", kind, got, want)
		}
	}
}

func TestBindingKinds(t *testing.T) {
	var got []string
	for _, k := range BindingKinds() {
		got = append(got, k.Group+"/"+k.Resource)
	}
	want := []string{GroupCore + "/machinedeployments", GroupControlPlane + "/kubeadmcontrolplanes", GroupCore + "/machinepools"}
	if !slices.Equal(got, want) {
		t.Errorf("BindingKinds = %v, want %v", got, want)
	}
}

func TestClusterNameAndReplicas(t *testing.T) {
	md := decoded(t, &clusterv1.MachineDeployment{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelClusterName: "from-label"}},
		Spec:       clusterv1.MachineDeploymentSpec{ClusterName: "from-spec", Replicas: ptr.To[int32](3)},
		Status:     clusterv1.MachineDeploymentStatus{Replicas: ptr.To[int32](2)},
	})
	if c := ClusterName(md); c != "from-spec" {
		t.Errorf("ClusterName = %q, want spec.clusterName first", c)
	}
	if n, ok := Replicas(md); !ok || n != 2 {
		t.Errorf("Replicas = %d %v, want the status's 2 (the machines that exist)", n, ok)
	}
	kcp := decoded(t, &kcpv1.KubeadmControlPlane{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{LabelClusterName: "from-label"}},
		Spec:       kcpv1.KubeadmControlPlaneSpec{Replicas: ptr.To[int32](3)},
	})
	if c := ClusterName(kcp); c != "from-label" {
		t.Errorf("ClusterName of a KCP = %q, want the label", c)
	}
	if n, ok := Replicas(kcp); !ok || n != 3 {
		t.Errorf("Replicas without status = %d %v, want spec's 3", n, ok)
	}
	if _, ok := Replicas(map[string]any{}); ok {
		t.Error("Replicas of an object without replicas must be unknown")
	}
	// Replicas are read of the object being admitted, never of the cache's trimmed copies.
	trimmed := mustLookup(t, "MachineDeployment").Trim(md)
	if _, ok := trimmed["status"]; ok {
		t.Errorf("Trim kept the status: %v", trimmed)
	}
}

func mustLookup(t *testing.T, kind string) Kind {
	t.Helper()
	k, ok := Lookup("", kind)
	if !ok {
		t.Fatal(kind)
	}
	return k
}
