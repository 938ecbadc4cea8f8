package clusterinfo

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Subject is the object whose surroundings are resolved.
type Subject struct {
	Namespace   string
	Group, Kind string
	Name        string
	Labels      map[string]string
	Owners      []objmeta.OwnerReference
	// ClusterName is the cluster the object names itself: spec.clusterName of a CAPI
	// MachineDeployment, MachinePool, ...; empty for CAPZ objects, which name none.
	ClusterName string
}

// SubjectOf reads the subject from a decoded object's identity; obj (may be nil) supplies
// spec.clusterName.
func SubjectOf(meta objmeta.Meta, namespace string, obj map[string]any) Subject {
	group, _, _ := strings.Cut(meta.APIVersion, "/")
	s := Subject{Namespace: namespace, Group: group, Kind: meta.Kind, Name: meta.Name, Labels: meta.Labels, Owners: meta.OwnerReferences}
	if obj != nil {
		spec, _ := obj["spec"].(map[string]any)
		s.ClusterName, _ = spec["clusterName"].(string)
	}
	return s
}

// Store is where resolution reads objects: the informer cache (with a live fallback) in `serve`,
// the input manifests in `check`.
type Store interface {
	// Get returns the object of group and kind (at whichever version the store reads it) in the
	// namespace.
	Get(ctx context.Context, gk schema.GroupKind, namespace, name string) (map[string]any, bool)
	// Referrers returns the objects of kind k in the namespace that reference an object of kind
	// refKind named refName (capiref.Kind.Refs, in either API shape).
	Referrers(ctx context.Context, k capiref.Kind, namespace, refKind, refName string) []map[string]any
	// Labelled returns the objects of group and kind in the namespace labelled with
	// cluster.x-k8s.io/cluster-name=cluster.
	Labelled(ctx context.Context, gk schema.GroupKind, namespace, cluster string) []map[string]any
}

// maxDepth bounds the chain from an object to its cluster: template ← KubeadmControlPlane ← Cluster
// is the longest CAPI has; a cycle of owner references must not loop.
const maxDepth = 4

// Bind finds the cluster of s, in CAPI's order of authority: the cluster it names itself
// (spec.clusterName), its cluster-name label, its owners (an AzureMachine is owned by its MachineSet
// or KubeadmControlPlane when CAPI creates it), and whoever references it (a MachineDeployment,
// MachineSet, KubeadmControlPlane, MachinePool or Machine, whose own cluster is found the same way;
// the Cluster whose controlPlaneRef names a KubeadmControlPlane or AKS control plane). A template only
// a ClusterClass references is a class template (Class set). Referrers that disagree leave it
// unbound, with BoundBy saying why.
func Bind(ctx context.Context, st Store, s Subject) policy.ClusterInfo {
	return bind(ctx, st, s, 0)
}

func bind(ctx context.Context, st Store, s Subject, depth int) policy.ClusterInfo {
	if s.ClusterName != "" {
		return policy.ClusterInfo{Name: s.ClusterName, BoundBy: "spec.clusterName"}
	}
	if c := s.Labels[capiref.LabelClusterName]; c != "" {
		return policy.ClusterInfo{Name: c, BoundBy: "label"}
	}
	if depth >= maxDepth {
		return policy.ClusterInfo{}
	}
	for _, o := range s.Owners {
		group, _, _ := strings.Cut(o.APIVersion, "/")
		if group == capiref.GroupCore && o.Kind == kindCluster {
			return policy.ClusterInfo{Name: o.Name, BoundBy: "owner Cluster " + o.Name}
		}
		k, ok := capiref.Lookup(group, o.Kind)
		if !ok {
			continue
		}
		owner, found := st.Get(ctx, schema.GroupKind{Group: k.Group, Kind: k.Kind}, s.Namespace, o.Name)
		if !found {
			continue
		}
		if c := clusterOf(ctx, st, k, owner, s.Namespace, depth); c != "" {
			return policy.ClusterInfo{Name: c, BoundBy: "owner " + o.Kind + " " + o.Name}
		}
	}
	type via struct{ cluster, by string }
	var bound []via
	var classes []string
	for _, k := range capiref.ReferrerKinds(s.Kind) {
		for _, r := range st.Referrers(ctx, k, s.Namespace, s.Kind, s.Name) {
			if !referencesSubject(k, r, s) {
				continue
			}
			name := objmeta.FromMap(r).Name
			switch k.Kind {
			case "ClusterClass":
				classes = append(classes, name)
			case kindCluster:
				bound = append(bound, via{name, "Cluster " + name})
			default:
				if c := clusterOf(ctx, st, k, r, s.Namespace, depth); c != "" {
					bound = append(bound, via{c, k.Kind + " " + name})
				}
			}
		}
	}
	clusters := map[string]bool{}
	for _, b := range bound {
		clusters[b.cluster] = true
	}
	switch {
	case len(clusters) == 1:
		return policy.ClusterInfo{Name: bound[0].cluster, BoundBy: bound[0].by}
	case len(clusters) > 1:
		var parts []string
		for _, b := range bound {
			parts = append(parts, fmt.Sprintf("%s (cluster %s)", b.by, b.cluster))
		}
		return policy.ClusterInfo{BoundBy: "ambiguous: referenced by " + strings.Join(parts, ", ")}
	case len(classes) > 0:
		slices.Sort(classes)
		return policy.ClusterInfo{Class: classes[0]}
	}
	return policy.ClusterInfo{}
}

// referencesSubject checks what the store's index promised: r (of kind k) references s, with a
// group that fits when the reference carries one.
func referencesSubject(k capiref.Kind, r map[string]any, s Subject) bool {
	for _, ref := range k.Refs(r) {
		if ref.Matches(s.Group, s.Kind, s.Name) {
			return true
		}
	}
	return false
}

// clusterOf is the cluster of a CAPI object of kind k: the one it names, or (a
// KubeadmControlPlane names none) whoever binds it in turn.
func clusterOf(ctx context.Context, st Store, k capiref.Kind, obj map[string]any, namespace string, depth int) string {
	if c := capiref.ClusterName(obj); c != "" {
		return c
	}
	meta := objmeta.FromMap(obj)
	return bind(ctx, st, Subject{Namespace: namespace, Group: k.Group, Kind: k.Kind, Name: meta.Name, Labels: meta.Labels, Owners: meta.OwnerReferences}, depth+1).Name
}

// Resolve binds s to its cluster and reads that cluster (ResolveCluster): what `check` and the
// webhook both do, from their own stores.
func Resolve(ctx context.Context, st Store, s Subject) (policy.ClusterInfo, []policy.LocationCandidate) {
	return resolveBound(ctx, st, s, Bind(ctx, st, s))
}

func resolveBound(ctx context.Context, st Store, s Subject, b policy.ClusterInfo) (policy.ClusterInfo, []policy.LocationCandidate) {
	if b.Name == "" {
		return b, nil
	}
	info, locations := ResolveCluster(b.Name, func(kind, name string) (map[string]any, bool) {
		gk := schema.GroupKind{Group: policy.Group, Kind: kind}
		if kind == kindCluster {
			gk.Group = capiref.GroupCore
		}
		return st.Get(ctx, gk, s.Namespace, name)
	})
	if info.Found && info.InfrastructureKind == "" && info.ControlPlaneKind == "" {
		// CAPI's topology controller creates a new Cluster's AzureCluster, then its control plane
		// (the control plane's AzureMachineTemplate first), and only then writes their references
		// into the Cluster. Meanwhile the AzureCluster it created is found by its cluster-name label.
		if azs := st.Labelled(ctx, AzureCluster.GroupKind(), s.Namespace, b.Name); len(azs) == 1 {
			if loc, _, _ := unstructured.NestedString(azs[0], "spec", "location"); strings.TrimSpace(loc) != "" {
				locations = []policy.LocationCandidate{{Location: strings.TrimSpace(loc), Source: "cluster", Cluster: true}}
			}
		}
	}
	info.BoundBy, info.Class = b.BoundBy, b.Class
	return info, locations
}
