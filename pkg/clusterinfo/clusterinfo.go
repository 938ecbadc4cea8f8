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

	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/policy"
)

// GVKs the resolver reads.
var (
	ClusterV1Beta2 = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta2", Kind: "Cluster"}
	ClusterV1Beta1 = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta1", Kind: "Cluster"}
	AzureCluster   = schema.GroupVersionKind{Group: policy.Group, Version: "v1beta1", Kind: "AzureCluster"}
)

// Result is what the resolver found; missing pieces are simply absent.
type Result struct {
	Cluster         policy.ClusterInfo
	Locations       []policy.LocationCandidate
	NamespaceLabels map[string]string
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
	cluster := &unstructured.Unstructured{}
	cluster.SetGroupVersionKind(r.clusterGVK)
	if err := r.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cluster); err != nil {
		if !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
			r.log.V(1).Info("cluster lookup failed", "namespace", namespace, "cluster", name, "error", err.Error())
		}
		// Templates are often created before their Cluster; the policy falls back.
		return
	}
	res.Cluster.Found = true
	infraKind, _, _ := unstructured.NestedString(cluster.Object, "spec", "infrastructureRef", "kind")
	infraName, _, _ := unstructured.NestedString(cluster.Object, "spec", "infrastructureRef", "name")
	cpKind, _, _ := unstructured.NestedString(cluster.Object, "spec", "controlPlaneRef", "kind")
	res.Cluster.InfrastructureKind, res.Cluster.ControlPlaneKind = infraKind, cpKind
	res.Cluster.AKS = policy.IsAKSKind(infraKind) || policy.IsAKSKind(cpKind)
	if infraKind != AzureCluster.Kind || infraName == "" {
		return
	}
	az := &unstructured.Unstructured{}
	az.SetGroupVersionKind(AzureCluster)
	if err := r.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: infraName}, az); err != nil {
		if !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
			r.log.V(1).Info("AzureCluster lookup failed", "namespace", namespace, "name", infraName, "error", err.Error())
		}
		return
	}
	if loc, _, _ := unstructured.NestedString(az.Object, "spec", "location"); strings.TrimSpace(loc) != "" {
		res.Locations = append(res.Locations, policy.LocationCandidate{Location: loc, Source: "cluster"})
	}
}
