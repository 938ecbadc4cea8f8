// Package clusterinfo finds what the policy needs to know about an object's surroundings — its
// Cluster, whether that Cluster is AKS, its region, and its namespace's labels — from the
// controller-runtime cache, so that no request waits on an API call.
package clusterinfo

import (
	"context"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// GVKs the resolver reads.
var (
	ClusterV1Beta2 = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta2", Kind: kindCluster}
	ClusterV1Beta1 = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: v1beta1, Kind: kindCluster}
	AzureCluster   = schema.GroupVersionKind{Group: policy.Group, Version: v1beta1, Kind: "AzureCluster"}
)

const (
	kindCluster = "Cluster"
	v1beta1     = "v1beta1"
)

// Result is what the resolver found; missing pieces are simply absent.
type Result struct {
	Cluster         policy.ClusterInfo
	Locations       []policy.LocationCandidate
	NamespaceLabels map[string]string
}

// Environment is the policy's view of this result, with the VM-size catalog and the Disk Encryption
// Set data the caller holds, judged at now (catalog evidence ages and Key Vault key expiry,
// des-key-expiry, are judged against it; a zero time judges neither). The webhook, the audit and
// `check` build their environments here, so that they cannot disagree on what the policy gets to see.
func (r Result) Environment(catalog skus.Catalog, des policy.DESCatalog, now time.Time) policy.Environment {
	return policy.Environment{Locations: r.Locations, Cluster: r.Cluster, Catalog: catalog, DES: des, Now: now}
}

// Resolver finds an object's surroundings for the webhook: namespaces from reader, everything else
// from a CacheStore (the informer cache, and the apiserver when the cache has not caught up).
type Resolver struct {
	reader client.Reader
	store  *CacheStore
	log    logr.Logger
}

// New returns a resolver that reads namespaces from reader and CAPI and CAPZ objects from store.
func New(reader client.Reader, store *CacheStore, log logr.Logger) *Resolver {
	return &Resolver{reader: reader, store: store, log: log}
}

// PreferredClusterGVK picks the newest Cluster version the apiserver serves, or false when the CAPI
// CRD is not installed (then no object has a Cluster to find).
func PreferredClusterGVK(mapper meta.RESTMapper) (schema.GroupVersionKind, bool) {
	for _, gvk := range []schema.GroupVersionKind{ClusterV1Beta2, ClusterV1Beta1} {
		if _, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
			return gvk, true
		}
	}
	return schema.GroupVersionKind{}, false
}

// Resolve looks up the namespace and the object's cluster (Bind: label, spec.clusterName, owners,
// referrers), then that Cluster and its AzureCluster. When the cache binds the object to nothing,
// the apiserver is asked (CacheStore.Live): in a CAPZ flavor the MachineDeployment that references
// a template is created milliseconds before it, and the informer may not have seen it yet. Failures
// degrade to "unknown" (logged): the policy then uses its fallbacks.
func (r *Resolver) Resolve(ctx context.Context, s Subject) Result {
	var res Result
	var nsLocation string
	if s.Namespace != "" {
		var ns corev1.Namespace
		if err := r.reader.Get(ctx, client.ObjectKey{Name: s.Namespace}, &ns); err == nil {
			res.NamespaceLabels = ns.Labels
			nsLocation = ns.Annotations[policy.AnnotationLocation]
		} else if !apierrors.IsNotFound(err) {
			r.log.V(1).Info("namespace lookup failed", "namespace", s.Namespace, "error", err.Error())
		}
	}
	b := r.store.Bind(ctx, s)
	res.Cluster, res.Locations = resolveBound(ctx, r.store, s, b)
	if nsLocation != "" {
		res.Locations = append(res.Locations, policy.LocationCandidate{Location: nsLocation, Source: "namespace-annotation"})
	}
	return res
}

// ResolveIn is Resolve for a caller that holds the namespace and a Store of its objects (the audit,
// which lists each namespace once): the same binding, cluster and region, and the namespace's labels
// and location annotation, in the same order.
func ResolveIn(ctx context.Context, st Store, ns *corev1.Namespace, s Subject) Result {
	var res Result
	res.Cluster, res.Locations = Resolve(ctx, st, s)
	if ns != nil {
		res.NamespaceLabels = ns.Labels
		if loc := ns.Annotations[policy.AnnotationLocation]; loc != "" {
			res.Locations = append(res.Locations, policy.LocationCandidate{Location: loc, Source: "namespace-annotation"})
		}
	}
	return res
}

// Object reads an object of group and kind from the store (cache, then the apiserver): the binding
// check reads the template a MachineDeployment references with it.
func (r *Resolver) Object(ctx context.Context, gk schema.GroupKind, namespace, name string) (map[string]any, bool) {
	return r.store.Get(ctx, gk, namespace, name)
}

// Lookup returns the content of the object of kind ("Cluster", "AzureCluster",
// "AzureManagedControlPlane" or "AzureASOManagedControlPlane") and name in the namespace being
// resolved, from wherever the caller keeps objects.
type Lookup func(kind, name string) (map[string]any, bool)

// ResolveCluster is the one place that reads a Cluster: its infrastructure and control-plane refs
// (v1beta2 and v1beta1 spell the kind and name alike), whether they make it AKS, and its region:
// its AzureCluster's, or for AKS its AzureManagedControlPlane's (or the ASO ManagedCluster's that an
// AzureASOManagedControlPlane embeds). The webhook feeds it from the informer cache, `check` from the
// input manifests. A Cluster that does not exist yet (templates often come first) leaves Found false.
func ResolveCluster(name string, get Lookup) (policy.ClusterInfo, []policy.LocationCandidate) {
	info := policy.ClusterInfo{Name: name}
	cluster, ok := get(kindCluster, name)
	if !ok {
		return info, nil
	}
	info.Found = true
	infraKind, _, _ := unstructured.NestedString(cluster, "spec", "infrastructureRef", "kind")
	infraName, _, _ := unstructured.NestedString(cluster, "spec", "infrastructureRef", "name")
	cpKind, _, _ := unstructured.NestedString(cluster, "spec", "controlPlaneRef", "kind")
	cpName, _, _ := unstructured.NestedString(cluster, "spec", "controlPlaneRef", "name")
	info.InfrastructureKind, info.ControlPlaneKind = infraKind, cpKind
	info.AKS = policy.IsAKSKind(infraKind) || policy.IsAKSKind(cpKind)
	var loc string
	switch {
	case infraKind == AzureCluster.Kind && infraName != "":
		if az, ok := get(AzureCluster.Kind, infraName); ok {
			loc, _, _ = unstructured.NestedString(az, "spec", "location")
		}
	case cpKind == "AzureManagedControlPlane" && cpName != "":
		if cp, ok := get(cpKind, cpName); ok {
			loc, _, _ = unstructured.NestedString(cp, "spec", "location")
		}
	case cpKind == "AzureASOManagedControlPlane" && cpName != "":
		if cp, ok := get(cpKind, cpName); ok {
			loc = asoManagedClusterLocation(cp)
		}
	}
	if strings.TrimSpace(loc) != "" {
		return info, []policy.LocationCandidate{{Location: strings.TrimSpace(loc), Source: "cluster", Cluster: true}}
	}
	return info, nil
}

// asoManagedClusterLocation is the location of the ASO ManagedCluster an AzureASOManagedControlPlane
// embeds in spec.resources[].
func asoManagedClusterLocation(cp map[string]any) string {
	resources, _, _ := unstructured.NestedSlice(cp, "spec", "resources")
	for _, r := range resources {
		m, _ := r.(map[string]any)
		if kind, _ := m["kind"].(string); kind == "ManagedCluster" {
			loc, _, _ := unstructured.NestedString(m, "spec", "location")
			return loc
		}
	}
	return ""
}
