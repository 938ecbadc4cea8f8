package offline

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
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

// trims are what the webhook's cache keeps of each kind resolution reads (clusterinfo.Trims): the
// CAPI kinds, AzureClusters and the AKS control planes.
var trims = clusterinfo.Trims()

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
	trim, ok := trims[gk]
	if !ok {
		return
	}
	kept := trim(obj)
	if k, isCAPI := capiref.Lookup(group, m.Kind); isCAPI && k.Group == group {
		seen := map[string]bool{}
		for _, r := range k.Refs(obj) {
			if key := refKey(r.Kind, r.Name); !seen[key] {
				seen[key] = true
				rk := referrersKey(gk, ns, key)
				s.referrers[rk] = append(s.referrers[rk], kept)
			}
		}
	}
	s.stored++
	s.byKey[objectKey(gk, ns, m.Name)] = kept
	if c := m.Labels[capiref.LabelClusterName]; c != "" {
		lk := objectKey(gk, ns, c)
		s.labelled[lk] = append(s.labelled[lk], kept)
	}
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
