// Package clusterinfo finds what the policy needs to know about an object's surroundings — its
// Cluster, whether that Cluster is AKS, its region, and its namespace's labels — from the
// controller-runtime cache, so that no request waits on an API call.
package clusterinfo

import (
	"context"
	"strings"

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
	ClusterV1Beta2 = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta2", Kind: "Cluster"}
	ClusterV1Beta1 = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta1", Kind: "Cluster"}
	AzureCluster   = schema.GroupVersionKind{Group: policy.Group, Version: "v1beta1", Kind: "AzureCluster"}
)

// WatchedKind is a kind the resolver reads from the informer cache.
type WatchedKind struct {
	GVK schema.GroupVersionKind
	// Resource is the plural the chart's RBAC grants get, list and watch on.
	Resource string
}

// WatchedKinds lists what the resolver reads, with the Cluster at clusterGVK (left out when the CAPI
// CRD is not installed: an empty GVK). `serve` registers an informer for each, and test/chart checks
// that the chart's ClusterRole lets the webhook list and watch every one of them.
func WatchedKinds(clusterGVK schema.GroupVersionKind) []WatchedKind {
	out := []WatchedKind{{GVK: corev1.SchemeGroupVersion.WithKind("Namespace"), Resource: "namespaces"}}
	if clusterGVK.Kind != "" {
		out = append(out, WatchedKind{GVK: clusterGVK, Resource: "clusters"})
	}
	return append(out, WatchedKind{GVK: AzureCluster, Resource: "azureclusters"})
}

// Result is what the resolver found; missing pieces are simply absent.
type Result struct {
	Cluster         policy.ClusterInfo
	Locations       []policy.LocationCandidate
	NamespaceLabels map[string]string
}

// Environment is the policy's view of this result, with the VM-size catalog and the Disk Encryption
// Set data the caller holds. The webhook and `check` build their environments here, so that they
// cannot disagree on what the policy gets to see.
func (r Result) Environment(catalog skus.Catalog, des policy.DESCatalog) policy.Environment {
	return policy.Environment{Locations: r.Locations, Cluster: r.Cluster, Catalog: catalog, DES: des}
}

// Resolver reads from a cache-backed client.Reader.
type Resolver struct {
	reader     client.Reader
	clusterGVK schema.GroupVersionKind
	log        logr.Logger
}

// New returns a resolver that reads Clusters at clusterGVK (v1beta2 where the CRD serves it).
func New(reader client.Reader, clusterGVK schema.GroupVersionKind, log logr.Logger) *Resolver {
	return &Resolver{reader: reader, clusterGVK: clusterGVK, log: log}
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

// Resolve looks up the namespace and, through the cluster-name label, the Cluster and its
// AzureCluster. Failures degrade to "unknown" (logged): the policy then uses its fallbacks.
func (r *Resolver) Resolve(ctx context.Context, namespace string, objLabels map[string]string) Result {
	var res Result
	var nsLocation string
	if namespace != "" {
		var ns corev1.Namespace
		if err := r.reader.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err == nil {
			res.NamespaceLabels = ns.Labels
			nsLocation = ns.Annotations[policy.AnnotationLocation]
		} else if !apierrors.IsNotFound(err) {
			r.log.V(1).Info("namespace lookup failed", "namespace", namespace, "error", err.Error())
		}
	}
	name := objLabels[policy.LabelClusterName]
	res.Cluster.Name = name
	if name != "" && r.clusterGVK.Kind != "" {
		r.resolveCluster(ctx, namespace, name, &res)
	}
	if nsLocation != "" {
		res.Locations = append(res.Locations, policy.LocationCandidate{Location: nsLocation, Source: "namespace-annotation"})
	}
	return res
}

func (r *Resolver) resolveCluster(ctx context.Context, namespace, name string, res *Result) {
	get := func(gvk schema.GroupVersionKind, name string) (map[string]any, bool) {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		if err := r.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, u); err != nil {
			if !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
				r.log.V(1).Info("lookup failed", "kind", gvk.Kind, "namespace", namespace, "name", name, "error", err.Error())
			}
			return nil, false
		}
		return u.Object, true
	}
	info, locations := ResolveCluster(name, func(kind, name string) (map[string]any, bool) {
		if kind == "Cluster" {
			return get(r.clusterGVK, name)
		}
		return get(AzureCluster, name)
	})
	res.Cluster = info
	res.Locations = append(res.Locations, locations...)
}

// Lookup returns the content of the object of kind ("Cluster" or "AzureCluster") and name in the
// namespace being resolved, from wherever the caller keeps objects.
type Lookup func(kind, name string) (map[string]any, bool)

// ResolveCluster is the one place that reads a Cluster: its infrastructure and control-plane refs
// (v1beta2 and v1beta1 spell the kind and name alike), whether they make it AKS, and the region of
// its AzureCluster. The webhook feeds it from the informer cache, `check` from the input manifests.
// A Cluster that does not exist yet (templates often come first) leaves Found false.
func ResolveCluster(name string, get Lookup) (policy.ClusterInfo, []policy.LocationCandidate) {
	info := policy.ClusterInfo{Name: name}
	cluster, ok := get("Cluster", name)
	if !ok {
		return info, nil
	}
	info.Found = true
	infraKind, _, _ := unstructured.NestedString(cluster, "spec", "infrastructureRef", "kind")
	infraName, _, _ := unstructured.NestedString(cluster, "spec", "infrastructureRef", "name")
	cpKind, _, _ := unstructured.NestedString(cluster, "spec", "controlPlaneRef", "kind")
	info.InfrastructureKind, info.ControlPlaneKind = infraKind, cpKind
	info.AKS = policy.IsAKSKind(infraKind) || policy.IsAKSKind(cpKind)
	if infraKind != AzureCluster.Kind || infraName == "" {
		return info, nil
	}
	az, ok := get(AzureCluster.Kind, infraName)
	if !ok {
		return info, nil
	}
	if loc, _, _ := unstructured.NestedString(az, "spec", "location"); strings.TrimSpace(loc) != "" {
		return info, []policy.LocationCandidate{{Location: strings.TrimSpace(loc), Source: "cluster", Cluster: true}}
	}
	return info, nil
}
