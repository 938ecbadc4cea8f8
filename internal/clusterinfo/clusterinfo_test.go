package clusterinfo

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

func cluster(gvk schema.GroupVersionKind, name string, infra, cp map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": name, "namespace": "team"},
		"spec": map[string]any{"infrastructureRef": infra, "controlPlaneRef": cp}}}
	u.SetGroupVersionKind(gvk)
	return u
}

func azureCluster(name, location string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": name, "namespace": "team"},
		"spec": map[string]any{"location": location}}}
	u.SetGroupVersionKind(AzureCluster)
	return u
}

func TestResolve(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team", Labels: map[string]string{"env": "prod"},
		Annotations: map[string]string{policy.AnnotationLocation: "westus2"}}}
	objs := []client.Object{
		ns,
		cluster(ClusterV1Beta2, "iaas", map[string]any{"apiGroup": policy.Group, "kind": "AzureCluster", "name": "iaas-az"},
			map[string]any{"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "cp"}),
		azureCluster("iaas-az", "East US"),
		cluster(ClusterV1Beta2, "aks", map[string]any{"apiGroup": policy.Group, "kind": "AzureManagedCluster", "name": "aks"},
			map[string]any{"apiGroup": policy.Group, "kind": "AzureManagedControlPlane", "name": "aks"}),
		cluster(ClusterV1Beta2, "no-azurecluster", map[string]any{"kind": "AzureCluster", "name": "missing"}, nil),
	}
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	r := New(c, ClusterV1Beta2, logr.Discard())
	ctx := context.Background()

	got := r.Resolve(ctx, "team", map[string]string{policy.LabelClusterName: "iaas"})
	if !got.Cluster.Found || got.Cluster.AKS || len(got.Locations) != 2 ||
		got.Locations[0] != (policy.LocationCandidate{Location: "East US", Source: "cluster", Cluster: true}) ||
		got.Locations[1] != (policy.LocationCandidate{Location: "westus2", Source: "namespace-annotation"}) ||
		got.NamespaceLabels["env"] != "prod" {
		t.Errorf("iaas: %+v", got)
	}
	if got := r.Resolve(ctx, "team", map[string]string{policy.LabelClusterName: "aks"}); !got.Cluster.AKS || got.Cluster.InfrastructureKind != "AzureManagedCluster" {
		t.Errorf("aks: %+v", got)
	}
	// The Cluster exists but its AzureCluster does not (yet): only the namespace annotation is left.
	if got := r.Resolve(ctx, "team", map[string]string{policy.LabelClusterName: "no-azurecluster"}); !got.Cluster.Found || len(got.Locations) != 1 {
		t.Errorf("no-azurecluster: %+v", got)
	}
	// Templates are often created before their Cluster.
	if got := r.Resolve(ctx, "team", map[string]string{policy.LabelClusterName: "later"}); got.Cluster.Found || got.Cluster.Name != "later" {
		t.Errorf("later: %+v", got)
	}
	if got := r.Resolve(ctx, "other", nil); got.NamespaceLabels != nil || len(got.Locations) != 0 {
		t.Errorf("unknown namespace: %+v", got)
	}
}

func TestResolveV1Beta1(t *testing.T) {
	objs := []client.Object{
		cluster(ClusterV1Beta1, "old", map[string]any{"apiVersion": policy.Group + "/v1beta1", "kind": "AzureCluster", "name": "old-az"}, nil),
		azureCluster("old-az", "southcentralus"),
	}
	c := fake.NewClientBuilder().WithObjects(objs...).Build()
	got := New(c, ClusterV1Beta1, logr.Discard()).Resolve(context.Background(), "team", map[string]string{policy.LabelClusterName: "old"})
	if len(got.Locations) != 1 || got.Locations[0].Location != "southcentralus" {
		t.Errorf("v1beta1: %+v", got)
	}
}
