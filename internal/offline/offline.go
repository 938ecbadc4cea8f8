// Package offline evaluates manifests without a cluster, as the webhook would on CREATE: the same
// policy, the same VM-size catalog layering (skucatalog.Build) and the same cluster resolution
// (clusterinfo.ResolveCluster), fed from the input instead of the informer cache. `check` and the
// policy test suites (`test`) both use it.
package offline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// Options configure an Evaluator.
type Options struct {
	// PolicyFile is an EncryptionPolicy or Palette pack-values file. Empty: an EncryptionPolicy
	// document among the context objects, else the built-in policy.
	PolicyFile string
	// Catalog is a VM-size catalog file layered over the embedded catalog; empty for none.
	Catalog string
	// Location is the region of objects whose region nothing else names.
	Location string
	// Namespace is the namespace of objects that name none.
	Namespace string
	// Now is the time the age of catalog evidence is judged against; zero means now (tests pin it).
	Now time.Time
}

// Evaluator decides on objects. Its Clusters and AzureClusters come from the context objects.
type Evaluator struct {
	Policy  *policy.Policy
	catalog skus.Catalog
	opts    Options
	store   *inputStore
	// inc is the store of a streaming evaluator (NewIncremental), fed by Add; nil for New's.
	inc *incrementalStore
	// now is when the run started: the age of catalog evidence is judged against it, as the webhook
	// judges it against the request's time, and one run judges every object at the same time.
	now time.Time
}

// New loads the policy and the catalog. Errors are the caller's input errors (a bad policy or catalog
// file).
func New(opts Options, context []manifest.Object) (*Evaluator, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	pol, err := LoadPolicy(opts.PolicyFile, context)
	if err != nil {
		return nil, err
	}
	catalog, err := skucatalog.Build(nil, opts.Catalog)
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	store, err := newInputStore(context, opts.Namespace)
	if err != nil {
		return nil, err
	}
	return &Evaluator{Policy: pol, catalog: catalog, opts: opts, store: store, now: now}, nil
}

// NewIncremental is New for a caller that reads its input one object at a time (streaming `check`):
// it starts with an empty store that Add feeds. policyDocs are the EncryptionPolicy documents of the
// input, found beforehand (the policy must be known before the first object is decided).
func NewIncremental(opts Options, policyDocs []manifest.Object) (*Evaluator, error) {
	ev, err := New(opts, policyDocs)
	if err != nil {
		return nil, err
	}
	ev.inc = newIncrementalStore(ev.opts.Namespace)
	ev.store = &inputStore{store: ev.inc}
	return ev, nil
}

// Add makes obj visible to the resolution of every object resolved after it (NewIncremental
// only): Clusters, AzureClusters, AKS control planes and the CAPI objects that reference templates
// are kept, trimmed to what resolution reads; anything else is not kept.
func (e *Evaluator) Add(obj manifest.Object) error {
	if e.inc == nil {
		return fmt.Errorf("offline: Add on an evaluator that holds its whole input")
	}
	if !mayResolve(obj) {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(obj.JSON, &m); err != nil {
		return fmt.Errorf("%s:%d: %w", obj.File, obj.Line, err)
	}
	e.inc.add(m)
	return nil
}

// Stored counts the objects Add kept for resolution (streaming `check`'s memory grows with these,
// not with the input).
func (e *Evaluator) Stored() int {
	if e.inc == nil {
		return 0
	}
	return e.inc.stored
}

// mayResolve says whether resolution can ever read obj, from its identity alone (so that the JSON
// of other objects is never decoded).
func mayResolve(obj manifest.Object) bool {
	group, _, found := strings.Cut(obj.APIVersion, "/")
	if !found {
		return false
	}
	_, ok := trims[schema.GroupKind{Group: group, Kind: obj.Kind}]
	return ok
}

// LoadPolicy reads policyFile; without it, an EncryptionPolicy document among objs is used (so a
// directory can carry its own policy), else the built-in policy.
func LoadPolicy(policyFile string, objs []manifest.Object) (*policy.Policy, error) {
	if policyFile != "" {
		data, err := os.ReadFile(policyFile)
		if err != nil {
			return nil, err
		}
		return policy.Parse(policyFile, data)
	}
	var found []manifest.Object
	for _, obj := range objs {
		if obj.APIVersion == policy.APIVersion && obj.Kind == policy.Kind {
			found = append(found, obj)
		}
	}
	switch len(found) {
	case 0:
		return policy.DefaultPolicy(), nil
	case 1:
		return policy.Parse(fmt.Sprintf("%s (document at line %d)", found[0].File, found[0].Line), found[0].JSON)
	default:
		return nil, fmt.Errorf("the input holds %d %s documents (%s:%d, %s:%d, ...); keep one, or choose with --policy",
			len(found), policy.Kind, found[0].File, found[0].Line, found[1].File, found[1].Line)
	}
}

// Namespace is the namespace of objects that name none.
func (e *Evaluator) Namespace() string { return e.opts.Namespace }

// Object is one object to decide on, with what a cluster would know about its surroundings.
type Object struct {
	manifest.Object
	// NamespaceLabels are the labels of the object's namespace (for defaults' namespace selectors);
	// nil means kubernetes.io/metadata.name only, as on every namespace.
	NamespaceLabels map[string]string
	// Location overrides Options.Location for this object.
	Location string
}

// Evaluate decides on obj as a CREATE, with defaults injected (the mutating webhook's view). It
// returns the decision and the Cluster the object was resolved to.
func (e *Evaluator) Evaluate(obj Object) (*policy.Decision, policy.ClusterInfo, error) {
	s, err := e.Subject(obj.Object)
	if err != nil {
		return nil, policy.ClusterInfo{}, err
	}
	return e.Decide(obj, e.Resolve(s))
}

// Subject is what resolution needs to know of obj: its identity, cluster-name label and owners.
func (e *Evaluator) Subject(obj manifest.Object) (clusterinfo.Subject, error) {
	meta, err := objmeta.Decode(obj.JSON)
	if err != nil {
		return clusterinfo.Subject{}, fmt.Errorf("%s:%d: %w", obj.File, obj.Line, err)
	}
	ns := obj.Namespace
	if ns == "" {
		ns = e.opts.Namespace
	}
	s := clusterinfo.SubjectOf(meta, ns, nil)
	// Binding reads one label; a streaming caller keeps subjects until the end of its input.
	if c, ok := s.Labels[capiref.LabelClusterName]; ok {
		s.Labels = map[string]string{capiref.LabelClusterName: c}
	} else {
		s.Labels = nil
	}
	return s, nil
}

// Resolve binds s to its cluster and reads the cluster's region from what the store holds now:
// for a streaming evaluator, what Add was given so far.
func (e *Evaluator) Resolve(s clusterinfo.Subject) clusterinfo.Result {
	return e.store.resolve(s)
}

// Settled says whether res is complete: the object is bound to a cluster (or a ClusterClass, or its
// referrers disagree), that Cluster was found, and it gave a region. Streaming `check` decides an
// object as soon as its resolution is settled and holds back the others (unbound, or bound to a
// Cluster or AzureCluster not read yet) until the end of its input.
func Settled(res clusterinfo.Result) bool {
	c := res.Cluster
	switch {
	case c.Name == "":
		return c.Class != "" || c.BoundBy != ""
	case !c.Found:
		return false
	}
	for _, l := range res.Locations {
		if l.Cluster {
			return true
		}
	}
	return false
}

// Decide evaluates obj under the resolution res (from Resolve).
func (e *Evaluator) Decide(obj Object, res clusterinfo.Result) (*policy.Decision, policy.ClusterInfo, error) {
	ns := obj.Namespace
	if ns == "" {
		ns = e.opts.Namespace
	}
	info := clusterinfo.Result{Cluster: res.Cluster, Locations: slices.Clone(res.Locations)}
	loc := obj.Location
	if loc == "" {
		loc = e.opts.Location
	}
	if loc != "" {
		info.Locations = append(info.Locations, policy.LocationCandidate{Location: loc, Source: "flag"})
	}
	env := info.Environment(e.catalog, nil, e.now)
	d, err := policy.Evaluate(e.Policy, policy.Request{
		Operation: policy.OperationCreate, Object: obj.JSON, Namespace: ns, NamespaceLabels: obj.NamespaceLabels,
	}, env)
	if err != nil {
		return nil, policy.ClusterInfo{}, fmt.Errorf("%s:%d: %s %s: %w", obj.File, obj.Line, obj.Kind, obj.Name, err)
	}
	return d, info.Cluster, nil
}

// inputStore holds the whole input, so that objects are bound to their clusters the way the webhook
// binds them from its cache: by label, by owner, and by whoever references them (a flavor's
// KubeadmControlPlane and MachineDeployments), then read the Cluster and its AzureCluster.
type inputStore struct{ store excluder }

// excluder is a store that can leave out the object being judged: clusterinfo.ObjectStore, or the
// incremental store of streaming `check`.
type excluder interface {
	Excluding(gk schema.GroupKind, namespace, name string) clusterinfo.Store
}

func newInputStore(objs []manifest.Object, defaultNS string) (*inputStore, error) {
	decoded := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		var m map[string]any
		if err := json.Unmarshal(o.JSON, &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", o.File, o.Line, err)
		}
		decoded = append(decoded, m)
	}
	return &inputStore{store: clusterinfo.NewObjectStore(decoded, defaultNS)}, nil
}

func (st *inputStore) resolve(subject clusterinfo.Subject) clusterinfo.Result {
	self := st.store.Excluding(schema.GroupKind{Group: subject.Group, Kind: subject.Kind}, subject.Namespace, subject.Name)
	cluster, locations := clusterinfo.Resolve(context.Background(), self, subject)
	return clusterinfo.Result{Cluster: cluster, Locations: locations}
}
