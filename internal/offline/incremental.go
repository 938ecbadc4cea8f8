package offline

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// incrementalStore is a clusterinfo.Store fed one object at a time (streaming `check`). After the
// same objects were added in the same order it answers every query exactly as
// clusterinfo.NewObjectStore over them does (the last object of a name wins Get; Referrers and
// Labelled list matches in input order), but it keeps only what resolution reads: the kinds it
// asks for, trimmed to their identity, references and region, and indexes them, so that a query
// costs a map lookup rather than a scan of every object of the kind.
type incrementalStore struct {
	defaultNS string
	byKey     map[string]map[string]any
	referrers map[string][]map[string]any // by referrer kind, namespace and referenced kind/name
	labelled  map[string][]map[string]any // by group/kind, namespace and cluster-name label
	stored    int
}

func newIncrementalStore(defaultNS string) *incrementalStore {
	return &incrementalStore{defaultNS: defaultNS, byKey: map[string]map[string]any{},
		referrers: map[string][]map[string]any{}, labelled: map[string][]map[string]any{}}
}

// resolverKinds are the kinds resolution reads of the infrastructure group besides the CAPI kinds:
// what clusterinfo.ResolveCluster reads a region from.
var resolverKinds = map[string]bool{"AzureCluster": true, "AzureManagedControlPlane": true, "AzureASOManagedControlPlane": true}

// add stores obj (decoded JSON) if resolution can ever read it.
func (s *incrementalStore) add(obj map[string]any) {
	m := objmeta.FromMap(obj)
	group := ""
	if g, _, found := strings.Cut(m.APIVersion, "/"); found {
		group = g
	}
	gk := schema.GroupKind{Group: group, Kind: m.Kind}
	ns := m.Namespace
	if ns == "" {
		ns = s.defaultNS
	}
	var kept map[string]any
	k, isCAPI := capiref.Lookup(group, m.Kind)
	switch {
	case isCAPI && k.Group == group:
		kept = k.Trim(obj)
		seen := map[string]bool{}
		for _, r := range k.Refs(obj) {
			if key := refKey(r.Kind, r.Name); !seen[key] {
				seen[key] = true
				rk := referrersKey(gk, ns, key)
				s.referrers[rk] = append(s.referrers[rk], kept)
			}
		}
	case group == policy.Group && resolverKinds[m.Kind]:
		kept = trimInfra(obj)
	default:
		return
	}
	s.stored++
	s.byKey[objectKey(gk, ns, m.Name)] = kept
	if c := m.Labels[capiref.LabelClusterName]; c != "" {
		lk := objectKey(gk, ns, c)
		s.labelled[lk] = append(s.labelled[lk], kept)
	}
}

// trimInfra keeps of an AzureCluster or AKS control plane its identity, cluster-name label and
// location; an AzureASOManagedControlPlane keeps its spec (the location is inside an embedded ASO
// resource).
func trimInfra(obj map[string]any) map[string]any {
	out := map[string]any{"apiVersion": obj["apiVersion"], "kind": obj["kind"]}
	if md, ok := obj["metadata"].(map[string]any); ok {
		m := map[string]any{}
		for _, f := range []string{"name", "namespace"} {
			if v, ok := md[f]; ok {
				m[f] = v
			}
		}
		if labels, ok := md["labels"].(map[string]any); ok {
			if c, ok := labels[capiref.LabelClusterName]; ok {
				m["labels"] = map[string]any{capiref.LabelClusterName: c}
			}
		}
		out["metadata"] = m
	}
	spec, _ := obj["spec"].(map[string]any)
	switch {
	case obj["kind"] == "AzureASOManagedControlPlane":
		if spec != nil {
			out["spec"] = spec
		}
	case spec != nil:
		if loc, ok := spec["location"]; ok {
			out["spec"] = map[string]any{"location": loc}
		}
	}
	return out
}

func objectKey(gk schema.GroupKind, namespace, name string) string {
	return gk.String() + "\x00" + namespace + "\x00" + name
}

// refKey is capiref.Key with a separator no kind or name can hold.
func refKey(kind, name string) string { return kind + "\x00" + name }

func referrersKey(gk schema.GroupKind, namespace, refKey string) string {
	return gk.String() + "\x00" + namespace + "\x00" + refKey
}

var _ clusterinfo.Store = (*incrementalStore)(nil)

func (s *incrementalStore) Get(_ context.Context, gk schema.GroupKind, namespace, name string) (map[string]any, bool) {
	o, ok := s.byKey[objectKey(gk, namespace, name)]
	return o, ok
}

func (s *incrementalStore) Referrers(_ context.Context, k capiref.Kind, namespace, refKind, refName string) []map[string]any {
	return s.referrers[referrersKey(schema.GroupKind{Group: k.Group, Kind: k.Kind}, namespace, refKey(refKind, refName))]
}

func (s *incrementalStore) Labelled(_ context.Context, gk schema.GroupKind, namespace, cluster string) []map[string]any {
	return s.labelled[objectKey(gk, namespace, cluster)]
}

// Excluding is the store without the object being judged (see clusterinfo.ObjectStore.Excluding).
func (s *incrementalStore) Excluding(gk schema.GroupKind, namespace, name string) clusterinfo.Store {
	return clusterinfo.Excluding(s, gk, namespace, name)
}
