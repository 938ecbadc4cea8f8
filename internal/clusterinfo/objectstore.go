package clusterinfo

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
)

// ObjectStore is a Store over objects at hand: the manifests `check` reads. It answers as the
// webhook's cache would once every object of the input had been created, whatever their order in
// the files (the webhook sees objects that come earlier; CAPZ's flavors put whoever references a
// template before it, so both see the same bindings).
type ObjectStore struct {
	byKey  map[string]map[string]any
	byKind map[schema.GroupKind][]stored
}

type stored struct {
	namespace string
	obj       map[string]any
}

// NewObjectStore indexes objs (decoded JSON); objects that name no namespace are in defaultNamespace.
func NewObjectStore(objs []map[string]any, defaultNamespace string) *ObjectStore {
	st := &ObjectStore{byKey: map[string]map[string]any{}, byKind: map[schema.GroupKind][]stored{}}
	for _, o := range objs {
		m := objmeta.FromMap(o)
		group, _, _ := strings.Cut(m.APIVersion, "/")
		if !strings.Contains(m.APIVersion, "/") {
			group = ""
		}
		ns := m.Namespace
		if ns == "" {
			ns = defaultNamespace
		}
		gk := schema.GroupKind{Group: group, Kind: m.Kind}
		st.byKey[storeKey(gk, ns, m.Name)] = o
		st.byKind[gk] = append(st.byKind[gk], stored{ns, o})
	}
	return st
}

func storeKey(gk schema.GroupKind, namespace, name string) string {
	return gk.String() + "/" + namespace + "/" + name
}

var _ Store = (*ObjectStore)(nil)

// Get returns the object of that group, kind, namespace and name, in whatever version it was written.
func (s *ObjectStore) Get(_ context.Context, gk schema.GroupKind, namespace, name string) (map[string]any, bool) {
	o, ok := s.byKey[storeKey(gk, namespace, name)]
	return o, ok
}

// Referrers returns the objects of kind k in the namespace that reference refKind/refName.
func (s *ObjectStore) Referrers(_ context.Context, k capiref.Kind, namespace, refKind, refName string) []map[string]any {
	var out []map[string]any
	for _, o := range s.byKind[schema.GroupKind{Group: k.Group, Kind: k.Kind}] {
		if o.namespace != namespace {
			continue
		}
		for _, r := range k.Refs(o.obj) {
			if r.Kind == refKind && r.Name == refName {
				out = append(out, o.obj)
				break
			}
		}
	}
	return out
}

// Labelled returns the objects of group and kind in the namespace with the cluster-name label.
func (s *ObjectStore) Labelled(_ context.Context, gk schema.GroupKind, namespace, cluster string) []map[string]any {
	var out []map[string]any
	for _, o := range s.byKind[gk] {
		if o.namespace == namespace && objmeta.FromMap(o.obj).Labels[capiref.LabelClusterName] == cluster {
			out = append(out, o.obj)
		}
	}
	return out
}

// Excluding returns a view of the store without one object: the object being judged. The webhook
// never finds an object it is asked to admit on CREATE (it is not stored yet), so neither may
// `check`, or the two would resolve, say, an AzureASOManagedControlPlane's region differently.
func (s *ObjectStore) Excluding(gk schema.GroupKind, namespace, name string) Store {
	return Excluding(s, gk, namespace, name)
}

// Excluding returns st without the object of group, kind, namespace and name (see
// ObjectStore.Excluding), for any Store over objects at hand.
func Excluding(st Store, gk schema.GroupKind, namespace, name string) Store {
	return excluding{Store: st, gk: gk, namespace: namespace, name: name}
}

type excluding struct {
	Store
	gk              schema.GroupKind
	namespace, name string
}

func (e excluding) Get(ctx context.Context, gk schema.GroupKind, namespace, name string) (map[string]any, bool) {
	if gk == e.gk && namespace == e.namespace && name == e.name {
		return nil, false
	}
	return e.Store.Get(ctx, gk, namespace, name)
}
