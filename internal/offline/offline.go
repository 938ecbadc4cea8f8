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
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

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
	ns := obj.Namespace
	if ns == "" {
		ns = e.opts.Namespace
	}
	info, err := e.store.resolve(obj.Object, ns)
	if err != nil {
		return nil, policy.ClusterInfo{}, err
	}
	loc := obj.Location
	if loc == "" {
		loc = e.opts.Location
	}
	if loc != "" {
		info.Locations = append(info.Locations, policy.LocationCandidate{Location: loc, Source: "flag"})
	}
	env := info.Environment(e.catalog, nil)
	env.Now = e.now
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
type inputStore struct{ store *clusterinfo.ObjectStore }

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

func (st *inputStore) resolve(obj manifest.Object, ns string) (clusterinfo.Result, error) {
	meta, err := objmeta.Decode(obj.JSON)
	if err != nil {
		return clusterinfo.Result{}, fmt.Errorf("%s:%d: %w", obj.File, obj.Line, err)
	}
	subject := clusterinfo.SubjectOf(meta, ns, nil)
	self := st.store.Excluding(schema.GroupKind{Group: subject.Group, Kind: subject.Kind}, ns, subject.Name)
	cluster, locations := clusterinfo.Resolve(context.Background(), self, subject)
	return clusterinfo.Result{Cluster: cluster, Locations: locations}, nil
}
