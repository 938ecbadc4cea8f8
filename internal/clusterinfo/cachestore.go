package clusterinfo

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// IndexRef is the field index of the informers of CAPI kinds: capiref.Key of every object an
// object references, so that "who references AzureMachineTemplate md-0" is one indexed List.
const IndexRef = "capz-encryption-webhook.io/references"

// WatchedKind is a kind the resolver reads from the informer cache.
type WatchedKind struct {
	GVK schema.GroupVersionKind
	// Resource is the plural the chart's RBAC grants get, list and watch on.
	Resource string
	// Refs is set for CAPI kinds whose references the resolver follows: their informer is indexed
	// by IndexRef.
	Refs *capiref.Kind
	// Transform is what the cache keeps of each object (nil: the manager's default, which drops
	// managed fields). Every watched kind is trimmed to what the resolver reads: CAPI objects to
	// their references, cluster name and replicas, CAPZ objects to their region, namespaces to
	// their labels and location annotation.
	Transform toolscache.TransformFunc
}

// Object returns an empty object of the kind, for the cache's informer and index registration.
func (w WatchedKind) Object() client.Object {
	if w.GVK.Group == "" {
		return &corev1.Namespace{}
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(w.GVK)
	return u
}

// watchable is every kind the resolver may read, with the versions it accepts, newest first.
type watchable struct {
	gk       schema.GroupKind
	resource string
	versions []string
	refs     bool // a CAPI kind whose references are followed; the cache keeps only what capiref reads
	// keep are the fields the resolver reads of a CAPZ object (dotted, "[]" for every item of a
	// list): the cache keeps these and the object's identity (capiref.TrimTo).
	keep []string
	// onDemand kinds are read with a GET when needed, never watched: the templates the binding
	// check reads. A management cluster keeps every template a topology change ever made, the
	// check runs only when a MachineDeployment or KubeadmControlPlane is created or re-pointed, and
	// caching them all would make the webhook's memory grow with the cluster's history.
	onDemand bool
}

func watchables() []watchable {
	out := make([]watchable, 0, 16)
	out = append(out,
		watchable{gk: schema.GroupKind{Kind: "Namespace"}, resource: "namespaces", versions: []string{"v1"}},
		// ResolveCluster and the topology fallback of resolveBound read spec.location (and the
		// cluster-name label, which the trim keeps).
		watchable{gk: AzureCluster.GroupKind(), resource: "azureclusters", versions: []string{v1beta1}, keep: []string{"spec.location"}},
	)
	for _, k := range capiref.Kinds() {
		// Only their references, cluster name and replicas matter (capiref.Kind.Trim): a
		// management cluster holds a Machine per node, and a Cluster's topology, variables and
		// status are most of its size.
		out = append(out, watchable{gk: schema.GroupKind{Group: k.Group, Kind: k.Kind}, resource: k.Resource,
			versions: []string{"v1beta2", v1beta1}, refs: true})
	}
	// What a binding object references, for the binding-time check (read on demand); AKS control
	// planes (watched: an AKS cluster's region is its control plane's, asked on every request).
	// The control planes are read for their region only (ResolveCluster): the ASO one embeds whole
	// ASO resources, of which the ManagedCluster's location matters.
	for _, t := range []struct {
		kind, resource string
		onDemand       bool
		keep           []string
	}{
		{"AzureMachineTemplate", "azuremachinetemplates", true, nil}, {"AzureMachinePool", "azuremachinepools", true, nil},
		{"AzureManagedMachinePool", "azuremanagedmachinepools", true, nil}, {"AzureASOManagedMachinePool", "azureasomanagedmachinepools", true, nil},
		{"AzureManagedControlPlane", "azuremanagedcontrolplanes", false, []string{"spec.location"}},
		{"AzureASOManagedControlPlane", "azureasomanagedcontrolplanes", false, []string{"spec.resources.[].kind", "spec.resources.[].spec.location"}},
	} {
		out = append(out, watchable{gk: schema.GroupKind{Group: policy.Group, Kind: t.kind}, resource: t.resource,
			versions: []string{v1beta1, "v1alpha1"}, onDemand: t.onDemand, keep: t.keep})
	}
	return out
}

// Served is the version of each kind the resolver reads, as the apiserver serves it.
type Served map[schema.GroupKind]string

// ClusterGVK is the Cluster version served, or the zero GVK when CAPI is not installed.
func (s Served) ClusterGVK() schema.GroupVersionKind {
	gk := ClusterV1Beta2.GroupKind()
	if v, ok := s[gk]; ok {
		return gk.WithVersion(v)
	}
	return schema.GroupVersionKind{}
}

// ServedVersions picks, for every kind the resolver reads, the newest version the apiserver serves
// (as PreferredClusterGVK does for Clusters). A kind whose CRD is not installed is left out: nothing
// can reference it, and the webhook does not watch it.
func ServedVersions(mapper meta.RESTMapper) Served {
	out := Served{}
	for _, w := range watchables() {
		for _, v := range w.versions {
			if _, err := mapper.RESTMapping(w.gk, v); err == nil {
				out[w.gk] = v
				break
			}
		}
	}
	return out
}

// WatchedKinds lists what the resolver reads, at the versions served names. `serve` registers an
// informer (and, for CAPI kinds, the IndexRef index and a trimming transform) for each, and
// test/chart checks that the chart's ClusterRole lets the webhook list and watch every one. A nil
// served lists every kind at its newest version.
func WatchedKinds(served Served) []WatchedKind { return kindsOf(served, false) }

// OnDemandKinds lists the kinds the resolver reads with a GET when it needs one, without watching
// them; the chart's RBAC grants get on each (test/chart/kindtable).
func OnDemandKinds(served Served) []WatchedKind { return kindsOf(served, true) }

func kindsOf(served Served, onDemand bool) []WatchedKind {
	var out []WatchedKind
	for _, w := range watchables() {
		if w.onDemand != onDemand {
			continue
		}
		v := w.versions[0]
		if served != nil {
			var ok bool
			if v, ok = served[w.gk]; !ok {
				continue
			}
		}
		wk := WatchedKind{GVK: w.gk.WithVersion(v), Resource: w.resource}
		switch {
		case w.refs:
			k, _ := capiref.Lookup(w.gk.Group, w.gk.Kind)
			wk.Refs = &k
			wk.Transform = trimTo(k)
		case len(w.keep) > 0:
			wk.Transform = keepOnly(w.keep)
		case w.gk.Group == "" && w.gk.Kind == "Namespace":
			wk.Transform = trimNamespace
		}
		out = append(out, wk)
	}
	return out
}

// Trims are what the webhook's cache keeps of each CAPI and CAPZ kind it watches (the transforms of
// WatchedKinds), as functions of decoded JSON, by group and kind: `check` keeps the same of its input,
// so that both resolve from the same fields.
func Trims() map[schema.GroupKind]func(map[string]any) map[string]any {
	out := map[schema.GroupKind]func(map[string]any) map[string]any{}
	for _, w := range WatchedKinds(nil) {
		if w.GVK.Group == "" || w.Transform == nil {
			continue // Namespace: a typed object, not the input's
		}
		transform := w.Transform
		out[w.GVK.GroupKind()] = func(obj map[string]any) map[string]any {
			u, _ := transform(&unstructured.Unstructured{Object: obj})
			return u.(*unstructured.Unstructured).Object
		}
	}
	return out
}

func trimTo(k capiref.Kind) toolscache.TransformFunc {
	return func(o any) (any, error) {
		if u, ok := o.(*unstructured.Unstructured); ok {
			u.Object = k.Trim(u.Object)
		}
		return o, nil
	}
}

// keepOnly keeps the identity of a CAPZ object and the fields at the dotted paths keep: what the
// resolver reads of it.
func keepOnly(keep []string) toolscache.TransformFunc {
	return func(o any) (any, error) {
		if u, ok := o.(*unstructured.Unstructured); ok {
			u.Object = capiref.TrimTo(u.Object, keep...)
		}
		return o, nil
	}
}

// trimNamespace keeps what the resolver reads of a namespace: its labels (the policy's namespace
// selectors) and the location annotation. Spec, status, managed fields and other annotations (a
// kubectl last-applied-configuration) go.
func trimNamespace(o any) (any, error) {
	ns, ok := o.(*corev1.Namespace)
	if !ok {
		return o, nil
	}
	out := &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Generation: ns.Generation,
		CreationTimestamp: ns.CreationTimestamp, DeletionTimestamp: ns.DeletionTimestamp, Labels: ns.Labels,
	}}
	if loc, ok := ns.Annotations[policy.AnnotationLocation]; ok {
		out.Annotations = map[string]string{policy.AnnotationLocation: loc}
	}
	return out, nil
}

// StripManagedFields is the cache's default transform: controller-runtime's
// TransformStripManagedFields, without its cost for unstructured objects (GetManagedFields
// converts every entry to the typed form only to find out whether there are any).
func StripManagedFields(o any) (any, error) {
	switch t := o.(type) {
	case *unstructured.Unstructured:
		if md, ok := t.Object["metadata"].(map[string]any); ok {
			delete(md, "managedFields")
		}
	case metav1.Object:
		if t.GetManagedFields() != nil {
			t.SetManagedFields(nil)
		}
	}
	return o, nil
}

// IndexRefs is the indexer of IndexRef for objects of kind k.
func IndexRefs(k capiref.Kind) client.IndexerFunc {
	return func(o client.Object) []string {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return nil
		}
		var keys []string
		for _, r := range k.Refs(u.Object) {
			keys = append(keys, r.Key())
		}
		return keys
	}
}

// CacheStore reads from the informer cache and, where the cache cannot answer yet, from the
// apiserver, each live call bounded by timeout.
type CacheStore struct {
	cache, live client.Reader
	// liveBinds remembers recent live bindings by object (see Bind); bounded, entries expire.
	liveBinds *utilcache.LRUExpireCache
	served    Served
	watched   map[schema.GroupKind]bool
	timeout   time.Duration
	metrics   *Metrics
	log       logr.Logger
}

// NewCacheStore returns a store over the manager's cache and its uncached API reader.
func NewCacheStore(cache, live client.Reader, served Served, timeout time.Duration, m *Metrics, log logr.Logger) *CacheStore {
	watched := map[schema.GroupKind]bool{}
	for _, w := range WatchedKinds(served) {
		watched[w.GVK.GroupKind()] = true
	}
	return &CacheStore{cache: cache, live: live, served: served, watched: watched, timeout: timeout, metrics: m, log: log,
		liveBinds: utilcache.NewLRUExpireCache(1024)}
}

var _ Store = (*CacheStore)(nil)

// Get reads from the cache, and from the apiserver when the cache does not have the object: a
// Cluster created just before the template that names it may not have reached the informer.
func (s *CacheStore) Get(ctx context.Context, gk schema.GroupKind, namespace, name string) (map[string]any, bool) {
	v, ok := s.served[gk]
	if !ok {
		return nil, false
	}
	if s.watched[gk] {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gk.WithVersion(v))
		err := s.cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, u)
		if err == nil {
			return u.Object, true
		}
		if !apierrors.IsNotFound(err) {
			s.log.V(1).Info("cache lookup failed", "kind", gk.Kind, "namespace", namespace, "name", name, "error", err.Error())
		}
	}
	return s.liveGet(ctx, gk.WithVersion(v), namespace, name)
}

func (s *CacheStore) liveGet(ctx context.Context, gvk schema.GroupVersionKind, namespace, name string) (map[string]any, bool) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	err := s.live.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, u)
	s.metrics.live("get", err, time.Since(start))
	if err != nil {
		if !apierrors.IsNotFound(err) {
			s.log.Info("live lookup failed", "kind", gvk.Kind, "namespace", namespace, "name", name, "error", err.Error())
		}
		return nil, false
	}
	return u.Object, true
}

// Referrers answers from the cache's IndexRef index.
func (s *CacheStore) Referrers(ctx context.Context, k capiref.Kind, namespace, refKind, refName string) []map[string]any {
	gk := schema.GroupKind{Group: k.Group, Kind: k.Kind}
	if !s.watched[gk] {
		return nil
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gk.WithVersion(s.served[gk]).GroupVersion().WithKind(k.Kind + "List"))
	if err := s.cache.List(ctx, list, client.InNamespace(namespace), client.MatchingFields{IndexRef: capiref.Key(refKind, refName)}); err != nil {
		s.log.V(1).Info("cache list failed", "kind", k.Kind, "namespace", namespace, "error", err.Error())
		return nil
	}
	out := make([]map[string]any, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, list.Items[i].Object)
	}
	return out
}

// Labelled lists from the cache, and from the apiserver when the cache has none (the AzureCluster
// CAPI's topology controller created a moment ago).
func (s *CacheStore) Labelled(ctx context.Context, gk schema.GroupKind, namespace, cluster string) []map[string]any {
	v, ok := s.served[gk]
	if !ok {
		return nil
	}
	opts := []client.ListOption{client.InNamespace(namespace), client.MatchingLabels{capiref.LabelClusterName: cluster}}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gk.WithVersion(v).GroupVersion().WithKind(gk.Kind + "List"))
	if s.watched[gk] {
		if err := s.cache.List(ctx, list, opts...); err == nil && len(list.Items) > 0 {
			return itemsOf(list)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	err := s.live.List(ctx, list, opts...)
	s.metrics.live("list", err, time.Since(start))
	if err != nil {
		s.log.Info("live list failed", "kind", gk.Kind, "namespace", namespace, "error", err.Error())
		return nil
	}
	return itemsOf(list)
}

func itemsOf(list *unstructured.UnstructuredList) []map[string]any {
	out := make([]map[string]any, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, list.Items[i].Object)
	}
	return out
}

// Bind binds s from the cache; when the cache binds it to nothing, from the apiserver. That second
// pass is the race CAPZ's flavors run: the MachineDeployment or KubeadmControlPlane that references
// a template is created milliseconds before it, and the informer may lag. An uncached List cannot be
// filtered by reference (no field selector reaches into spec), so it lists the referrer kinds in the
// namespace and filters here, bounded by the store's timeout; it only happens for objects the cache
// cannot bind, which is rare outside a cluster's creation.
//
// The answer of such a live pass is kept for a few seconds under the object's name, so that the
// validating call of a CREATE reuses what its mutating call looked up instead of listing again.
func (s *CacheStore) Bind(ctx context.Context, subj Subject) policy.ClusterInfo {
	b := Bind(ctx, s, subj)
	if b.Name != "" || b.Class != "" || b.BoundBy != "" {
		s.metrics.resolved("cache", b)
		return b
	}
	key := ""
	if subj.Name != "" { // an object named by generateName only has no name yet
		key = subj.Namespace + "/" + subj.Group + "/" + subj.Kind + "/" + subj.Name
		if v, ok := s.liveBinds.Get(key); ok {
			b = v.(policy.ClusterInfo)
			s.metrics.resolved("live-reused", b)
			return b
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	b = Bind(ctx, liveStore{s: s, lists: s.listReferrers(ctx, subj)}, subj)
	s.metrics.resolved("live", b)
	if key != "" && ctx.Err() == nil {
		s.liveBinds.Add(key, b, liveBindTTL)
	}
	return b
}

// liveBindTTL is how long a live binding answers again for the same object: long enough for the
// validating call that follows the mutating one, short enough that an object re-created later is
// looked up afresh.
const liveBindTTL = 5 * time.Second

// liveStore reads everything from the apiserver.
type liveStore struct {
	s *CacheStore
	// lists are the namespace's objects of the subject's referrer kinds, listed side by side before
	// the pass (see listReferrers); kinds it lacks are listed when asked.
	lists map[schema.GroupKind][]map[string]any
}

// listReferrers lists, concurrently, every kind that may reference subj in its namespace. Bind asks
// for them one after the other, and each uncached List is a consistent read that may wait for the
// apiserver's watch cache: side by side, the pass waits once rather than up to once per kind (on
// kube-apiserver 1.37 docs/performance.md measured no difference, the first wait bringing the other
// kinds' caches up to date too). They are listed before the pass, not when Bind first asks: an
// owner that binds the subject is found by the cache pass already (CacheStore.Get reads it live).
// A kind whose List fails is left out, and is listed again (and its failure logged) when Bind asks.
func (s *CacheStore) listReferrers(ctx context.Context, subj Subject) map[schema.GroupKind][]map[string]any {
	kinds := capiref.ReferrerKinds(subj.Kind)
	results := make([][]map[string]any, len(kinds))
	ok := make([]bool, len(kinds))
	var wg sync.WaitGroup
	for i, k := range kinds {
		gk := schema.GroupKind{Group: k.Group, Kind: k.Kind}
		if _, served := s.served[gk]; !served {
			continue
		}
		wg.Go(func() { results[i], ok[i] = s.listAll(ctx, gk, subj.Namespace) })
	}
	wg.Wait()
	out := make(map[schema.GroupKind][]map[string]any, len(kinds))
	for i, k := range kinds {
		if ok[i] {
			out[schema.GroupKind{Group: k.Group, Kind: k.Kind}] = results[i]
		}
	}
	return out
}

// listAll lists every object of gk in the namespace from the apiserver, page by page; false when a
// page fails.
func (s *CacheStore) listAll(ctx context.Context, gk schema.GroupKind, namespace string) ([]map[string]any, bool) {
	var out []map[string]any
	opts := &client.ListOptions{Namespace: namespace, Limit: listPage}
	for {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gk.WithVersion(s.served[gk]).GroupVersion().WithKind(gk.Kind + "List"))
		start := time.Now()
		err := s.live.List(ctx, list, opts)
		s.metrics.live("list", err, time.Since(start))
		if err != nil {
			s.log.Info("live list failed", "kind", gk.Kind, "namespace", namespace, "error", err.Error())
			return nil, false
		}
		out = append(out, itemsOf(list)...)
		if list.GetContinue() == "" {
			return out, true
		}
		opts.Continue = list.GetContinue()
	}
}

func (l liveStore) Labelled(ctx context.Context, gk schema.GroupKind, namespace, cluster string) []map[string]any {
	return l.s.Labelled(ctx, gk, namespace, cluster)
}

func (l liveStore) Get(ctx context.Context, gk schema.GroupKind, namespace, name string) (map[string]any, bool) {
	v, ok := l.s.served[gk]
	if !ok {
		return nil, false
	}
	return l.s.liveGet(ctx, gk.WithVersion(v), namespace, name)
}

// listPage bounds one page of a live List: a namespace with more referrers is read in pages.
const listPage = 500

func (l liveStore) Referrers(ctx context.Context, k capiref.Kind, namespace, refKind, refName string) []map[string]any {
	gk := schema.GroupKind{Group: k.Group, Kind: k.Kind}
	if _, ok := l.s.served[gk]; !ok {
		return nil
	}
	items, ok := l.lists[gk]
	if !ok {
		if items, ok = l.s.listAll(ctx, gk, namespace); !ok {
			return nil
		}
	}
	var out []map[string]any
	for _, item := range items {
		for _, r := range k.Refs(item) {
			if r.Kind == refKind && r.Name == refName {
				out = append(out, item)
				break
			}
		}
	}
	return out
}

// Metrics of resolution. NewMetrics registers them.
type Metrics struct {
	resolutions *prometheus.CounterVec
	liveCalls   *prometheus.CounterVec
	liveLatency *prometheus.HistogramVec
}

// NewMetrics creates the resolver's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		resolutions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_binding_resolutions_total",
			Help: "Objects bound to a cluster by phase (cache; live after the cache found nothing; live-reused, a live answer of a few seconds ago for the same object) and result (bound, class, ambiguous, unbound).",
		}, []string{"phase", "result"}),
		liveCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_live_lookups_total",
			Help: "Calls to the apiserver when the informer cache could not answer, by operation (get, list) and result (found, not_found, error).",
		}, []string{"op", "result"}),
		liveLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capz_encryption_webhook_live_lookup_duration_seconds",
			Help:    "Duration of the apiserver calls made when the informer cache could not answer.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
	}
	reg.MustRegister(m.resolutions, m.liveCalls, m.liveLatency)
	return m
}

func (m *Metrics) resolved(phase string, b policy.ClusterInfo) {
	if m == nil {
		return
	}
	result := "unbound"
	switch {
	case b.Name != "":
		result = "bound"
	case b.Class != "":
		result = "class"
	case b.BoundBy != "":
		result = "ambiguous"
	}
	m.resolutions.WithLabelValues(phase, result).Inc()
}

func (m *Metrics) live(op string, err error, d time.Duration) {
	if m == nil {
		return
	}
	result := "found"
	switch {
	case apierrors.IsNotFound(err):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	m.liveCalls.WithLabelValues(op, result).Inc()
	m.liveLatency.WithLabelValues(op).Observe(d.Seconds())
}
