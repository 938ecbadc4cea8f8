package clusterinfo

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
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

func unstr(o map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: o} }

// served is what ServedVersions returns against CAPI v1.14 and CAPZ v1.27.
func served() Served {
	s := Served{}
	for _, w := range append(WatchedKinds(nil), OnDemandKinds(nil)...) {
		s[w.GVK.GroupKind()] = w.GVK.Version
	}
	return s
}

// fakeCache is a fake client with the IndexRef index on every CAPI kind, as `serve` registers it.
func fakeCache(sv Served, objs ...client.Object) client.WithWatch {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...)
	for _, w := range WatchedKinds(sv) {
		if w.Refs != nil {
			b = b.WithIndex(w.Object(), IndexRef, IndexRefs(*w.Refs))
		}
	}
	return b.Build()
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
		unstr(capi("cluster.x-k8s.io/v1beta2", "MachineDeployment", "iaas-md-0", map[string]any{"clusterName": "iaas",
			"template": infra(ref2("AzureMachineTemplate", "iaas-md-0"))})),
	}
	c := fakeCache(served(), objs...)
	r := New(c, NewCacheStore(c, c, served(), time.Second, nil, logr.Discard()), logr.Discard())
	ctx := context.Background()
	labelled := func(cluster string) Subject {
		s := amt("t")
		s.Labels = map[string]string{policy.LabelClusterName: cluster}
		return s
	}

	got := r.Resolve(ctx, labelled("iaas"))
	if !got.Cluster.Found || got.Cluster.AKS || got.Cluster.BoundBy != "label" || len(got.Locations) != 2 ||
		got.Locations[0] != (policy.LocationCandidate{Location: "East US", Source: "cluster", Cluster: true}) ||
		got.Locations[1] != (policy.LocationCandidate{Location: "westus2", Source: "namespace-annotation"}) ||
		got.NamespaceLabels["env"] != "prod" {
		t.Errorf("iaas: %+v", got)
	}
	// No label: the MachineDeployment that references the template binds it.
	if got := r.Resolve(ctx, amt("iaas-md-0")); got.Cluster.Name != "iaas" || got.Cluster.BoundBy != "MachineDeployment iaas-md-0" ||
		len(got.Locations) != 2 || got.Locations[0].Location != "East US" {
		t.Errorf("bound by reference: %+v", got)
	}
	if got := r.Resolve(ctx, labelled("aks")); !got.Cluster.AKS || got.Cluster.InfrastructureKind != "AzureManagedCluster" {
		t.Errorf("aks: %+v", got)
	}
	// The Cluster exists but its AzureCluster does not (yet): only the namespace annotation is left.
	if got := r.Resolve(ctx, labelled("no-azurecluster")); !got.Cluster.Found || len(got.Locations) != 1 {
		t.Errorf("no-azurecluster: %+v", got)
	}
	// Templates are often created before their Cluster.
	if got := r.Resolve(ctx, labelled("later")); got.Cluster.Found || got.Cluster.Name != "later" {
		t.Errorf("later: %+v", got)
	}
	if got := r.Resolve(ctx, Subject{Namespace: "other"}); got.NamespaceLabels != nil || len(got.Locations) != 0 || got.Cluster.Name != "" {
		t.Errorf("unknown namespace: %+v", got)
	}
}

func TestResolveV1Beta1(t *testing.T) {
	sv := served()
	sv[ClusterV1Beta1.GroupKind()] = "v1beta1"
	c := fakeCache(sv,
		cluster(ClusterV1Beta1, "old", map[string]any{"apiVersion": policy.Group + "/v1beta1", "kind": "AzureCluster", "name": "old-az"}, nil),
		azureCluster("old-az", "southcentralus"),
	)
	s := amt("t")
	s.Labels = map[string]string{policy.LabelClusterName: "old"}
	got := New(c, NewCacheStore(c, c, sv, time.Second, nil, logr.Discard()), logr.Discard()).Resolve(context.Background(), s)
	if len(got.Locations) != 1 || got.Locations[0].Location != "southcentralus" {
		t.Errorf("v1beta1: %+v", got)
	}
}

// failing is a reader that must not be called.
type failing struct {
	client.Reader
	t *testing.T
}

func (f failing) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	f.t.Error("the apiserver was asked although the cache could answer")
	return errors.New("unexpected")
}

func (f failing) List(context.Context, client.ObjectList, ...client.ListOption) error {
	f.t.Error("the apiserver was asked although the cache could answer")
	return errors.New("unexpected")
}

// TestLiveFallback is the race of CAPZ's flavors: the KubeadmControlPlane, MachineDeployment and
// Cluster were created a moment before the template, and the informer cache has none of them yet.
// The apiserver has them; the store asks it, and only when the cache binds the template to nothing.
func TestLiveFallback(t *testing.T) {
	flavor := []client.Object{
		unstr(capi("cluster.x-k8s.io/v1beta1", "Cluster", "flavor", map[string]any{
			"infrastructureRef": ref1("AzureCluster", "flavor"),
			"controlPlaneRef":   map[string]any{"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlane", "name": "flavor-cp"}})),
		azureCluster("flavor", "southcentralus"),
		unstr(capi("controlplane.cluster.x-k8s.io/v1beta1", "KubeadmControlPlane", "flavor-cp", map[string]any{
			"machineTemplate": map[string]any{"infrastructureRef": ref1("AzureMachineTemplate", "flavor-cp")}})),
		unstr(capi("cluster.x-k8s.io/v1beta1", "MachineDeployment", "flavor-md-0", map[string]any{"clusterName": "flavor",
			"template": infra(ref1("AzureMachineTemplate", "flavor-md-0"))})),
	}
	// The test's objects are v1beta1; the store reads what is served.
	sv := served()
	for _, k := range capiref.Kinds() {
		sv[schema.GroupKind{Group: k.Group, Kind: k.Kind}] = "v1beta1"
	}
	empty := fakeCache(sv)
	apiserver := fakeCache(sv, flavor...)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	r := New(empty, NewCacheStore(empty, apiserver, sv, time.Second, m, logr.Discard()), logr.Discard())
	for _, name := range []string{"flavor-cp", "flavor-md-0"} {
		got := r.Resolve(context.Background(), amt(name))
		if got.Cluster.Name != "flavor" || !got.Cluster.Found || len(got.Locations) != 1 || got.Locations[0].Location != "southcentralus" {
			t.Errorf("%s: %+v", name, got)
		}
	}
	if got := r.Resolve(context.Background(), amt("alone")); got.Cluster.Name != "" {
		t.Errorf("alone: %+v", got)
	}
	if n := testutil.ToFloat64(m.resolutions.WithLabelValues("live", "bound")); n != 2 {
		t.Errorf("live bound = %v, want 2", n)
	}
	if n := testutil.ToFloat64(m.resolutions.WithLabelValues("live", "unbound")); n != 1 {
		t.Errorf("live unbound = %v, want 1", n)
	}

	// The validating call of a CREATE reuses what its mutating call looked up live.
	counting := &countingReader{Reader: apiserver}
	r = New(empty, NewCacheStore(empty, counting, sv, time.Second, NewMetrics(prometheus.NewRegistry()), logr.Discard()), logr.Discard())
	for _, name := range []string{"alone", "flavor-md-0"} {
		r.Resolve(context.Background(), amt(name))
		first := counting.lists.Load()
		if first == 0 {
			t.Fatalf("%s: no live List at all", name)
		}
		if got := r.Resolve(context.Background(), amt(name)); name == "flavor-md-0" && got.Cluster.Name != "flavor" {
			t.Errorf("%s, reused: %+v", name, got)
		}
		if n := counting.lists.Load(); n != first {
			t.Errorf("%s: the second resolution listed again (%d Lists, then %d)", name, first, n)
		}
		counting.lists.Store(0)
	}

	// With the cache caught up, the apiserver is not asked.
	full := fakeCache(sv, flavor...)
	r = New(full, NewCacheStore(full, failing{t: t}, sv, time.Second, NewMetrics(prometheus.NewRegistry()), logr.Discard()), logr.Discard())
	if got := r.Resolve(context.Background(), amt("flavor-md-0")); got.Cluster.Name != "flavor" || len(got.Locations) != 1 {
		t.Errorf("from the cache: %+v", got)
	}
}

func TestTransforms(t *testing.T) {
	for _, w := range WatchedKinds(nil) {
		switch w.GVK.Kind {
		case "MachineDeployment":
			md := unstr(capi("cluster.x-k8s.io/v1beta2", "MachineDeployment", "md", map[string]any{"clusterName": "c",
				"template": map[string]any{"spec": map[string]any{"infrastructureRef": ref2("AzureMachineTemplate", "t"), "bootstrap": map[string]any{"x": "y"}}}}))
			md.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl"}})
			out, err := w.Transform(md)
			if err != nil {
				t.Fatal(err)
			}
			u := out.(*unstructured.Unstructured)
			if u.GetManagedFields() != nil || u.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["bootstrap"] != nil {
				t.Errorf("MachineDeployment not trimmed: %v", u.Object)
			}
			if keys := IndexRefs(*w.Refs)(u); len(keys) != 1 || keys[0] != "AzureMachineTemplate/t" {
				t.Errorf("index keys after the trim: %v", keys)
			}
		case "AzureManagedControlPlane":
			amcp := unstr(map[string]any{"apiVersion": policy.Group + "/v1beta1", "kind": "AzureManagedControlPlane", "metadata": map[string]any{"name": "p"},
				"spec": map[string]any{"location": "eastus", "version": "v1.33.4"}, "status": map[string]any{"ready": true}})
			out, _ := w.Transform(amcp)
			if got := out.(*unstructured.Unstructured).Object; got["status"] != nil || len(got["spec"].(map[string]any)) != 1 {
				t.Errorf("AzureManagedControlPlane: kept more than its location: %v", got)
			}
		}
		// TestTrimmedCacheResolvesAlike: what each trimmed kind keeps is enough to resolve alike.
		if w.Transform == nil {
			t.Errorf("%s is cached whole", w.GVK.Kind)
		}
	}
}

// countingReader counts the Lists that reach the apiserver.
type countingReader struct {
	client.Reader
	lists atomic.Int64
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.lists.Add(1)
	return c.Reader.List(ctx, list, opts...)
}

// barrierReader holds every List until n Lists are under way at once: a store that lists one kind
// after the other never gets there, and its first List ends with the context's deadline.
type barrierReader struct {
	client.Reader
	n       int64
	started atomic.Int64
	all     chan struct{}
}

func (b *barrierReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if b.started.Add(1) == b.n {
		close(b.all)
	}
	select {
	case <-b.all:
		return b.Reader.List(ctx, list, opts...)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestLiveReferrersListedTogether: an unbound template's live pass lists its referrer kinds side by
// side, so that it costs one round trip through the apiserver, not one per kind.
func TestLiveReferrersListedTogether(t *testing.T) {
	sv := served()
	for _, k := range capiref.Kinds() {
		sv[schema.GroupKind{Group: k.Group, Kind: k.Kind}] = "v1beta1"
	}
	empty := fakeCache(sv)
	apiserver := fakeCache(sv,
		unstr(capi("cluster.x-k8s.io/v1beta1", "MachineDeployment", "md-0", map[string]any{"clusterName": "flavor",
			"template": infra(ref1("AzureMachineTemplate", "md-0"))})))
	kinds := capiref.ReferrerKinds("AzureMachineTemplate")
	if len(kinds) < 2 {
		t.Fatalf("referrer kinds of a template: %v", kinds)
	}
	barrier := &barrierReader{Reader: apiserver, n: int64(len(kinds)), all: make(chan struct{})}
	r := New(empty, NewCacheStore(empty, barrier, sv, 2*time.Second, NewMetrics(prometheus.NewRegistry()), logr.Discard()), logr.Discard())
	if got := r.Resolve(context.Background(), amt("md-0")); got.Cluster.Name != "flavor" {
		t.Errorf("the %d referrer kinds were not listed together: %+v", len(kinds), got.Cluster)
	}
}
