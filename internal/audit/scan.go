// Package audit judges what already exists: it lists every object kind the webhook guards, page by
// page, evaluates each stored object with the policy in force (policy.EvaluateStored), with the same
// cluster and region resolution as admission and, when asked, against what Azure actually built for
// the machine. `capz-encryption-webhook audit` prints the results; `serve` runs the scan in the
// background on the elected replica and publishes them (Reports, Events, metrics) through Sinks.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/azure"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// DefaultPageSize is how many objects one list call returns: a page is evaluated and dropped before
// the next is read, so memory stays bounded however many machines the cluster holds.
const DefaultPageSize = 250

// Result is one stored object and the policy's verdict on it.
type Result struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Namespace  string    `json:"namespace"`
	Name       string    `json:"name"`
	UID        types.UID `json:"uid"`
	// Decision is the stored-state verdict (nil when the object could not be evaluated: Error).
	Decision *policy.Decision   `json:"decision,omitempty"`
	Cluster  policy.ClusterInfo `json:"cluster"`
	Error    string             `json:"error,omitempty"`
	// Azure is what was read from Azure for a machine (nil when nothing was read).
	Azure *AzureRead `json:"azure,omitempty"`
}

// AzureRead says which Azure resource the audit compared the object with, or why it could not.
type AzureRead struct {
	Resource string `json:"resource,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Violations are the findings the policy denies.
func (r Result) Violations() []policy.Finding {
	if r.Decision == nil {
		return nil
	}
	return r.Decision.Violations()
}

// Summary counts a scan.
type Summary struct {
	Objects int `json:"objects"`
	// Denied objects have at least one finding whose action is deny.
	Denied int `json:"denied"`
	// Warned objects have warnings but no denial.
	Warned int `json:"warned"`
	// Errors counts objects that could not be evaluated, or whose Azure resources could not be read.
	Errors int `json:"errors"`
	// Skipped names the kinds the apiserver does not serve (their CRD is not installed).
	Skipped []string `json:"skipped,omitempty"`
	Policy  string   `json:"policy"`
}

// MachineReader reads what Azure built for a machine (azure.Machines).
type MachineReader interface {
	VM(ctx context.Context, providerID string) (*policy.ActualVM, error)
	ScaleSet(ctx context.Context, subscription, resourceGroup, name string) (*policy.ActualVM, error)
}

var _ MachineReader = (*azure.Machines)(nil)

// Warmer loads live data that a one-shot scan needs now: VM sizes of regions and Disk Encryption
// Sets (with their keys) not loaded yet. It reports whether anything new was loaded. `serve` has
// none: its caches load in the background, and a refresh that brings new data runs the audit again.
type Warmer interface {
	Warm(ctx context.Context, regions, desIDs []string) bool
}

// Scanner lists and judges the guarded kinds.
type Scanner struct {
	// Reader lists objects straight from the apiserver (not an informer cache): mgr.GetAPIReader()
	// or a plain client.
	Reader client.Reader
	// ClusterGVK is the Cluster version the apiserver serves (empty without CAPI).
	ClusterGVK schema.GroupVersionKind
	// Served are the versions of the CAPI kinds that bind objects to clusters (MachineDeployments,
	// KubeadmControlPlanes, ..., clusterinfo.ServedVersions): each namespace's are listed with its
	// Clusters, so that objects nothing labels (CAPZ's flavors) are bound as admission binds them.
	// Nil: Clusters and AzureClusters only.
	Served clusterinfo.Served
	// Policy returns the policy in force.
	Policy  func() *policy.Policy
	Catalog skus.Catalog
	DES     policy.DESCatalog
	// Machines, when set, reads the VM of every AzureMachine with a providerID and the scale set of
	// every AzureMachinePool; DefaultSubscription is where a scale set is looked for when neither the
	// pool's providerIDList nor its AzureCluster names a subscription.
	Machines            MachineReader
	DefaultSubscription string
	Warm                Warmer
	// Namespace limits the scan to one namespace; empty scans all.
	Namespace string
	Now       func() time.Time
	PageSize  int64
	Log       logr.Logger
}

// Run judges every guarded object and hands each result to emit, in list order (kind by kind, then
// namespace and name). An error of emit, or of a list call, ends the scan.
func (s *Scanner) Run(ctx context.Context, emit func(Result) error) (Summary, error) {
	pol := s.Policy()
	sum := Summary{Policy: pol.Source}
	env := &scanEnv{s: s, namespaces: map[string]*namespaceIndex{}, now: s.now()}
	for _, k := range policy.Kinds() {
		served, err := s.list(ctx, k, func(item *unstructured.Unstructured) error {
			r := env.judge(ctx, pol, item)
			sum.Objects++
			if r.Error != "" || (r.Azure != nil && r.Azure.Error != "") {
				sum.Errors++
			}
			if r.Decision != nil {
				if !r.Decision.Allowed {
					sum.Denied++
				} else if len(r.Decision.Warnings()) > 0 {
					sum.Warned++
				}
			}
			return emit(r)
		})
		if err != nil {
			return sum, err
		}
		if !served {
			sum.Skipped = append(sum.Skipped, k.Kind)
		}
	}
	return sum, nil
}

func (s *Scanner) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Scanner) pageSize() int64 {
	if s.PageSize > 0 {
		return s.PageSize
	}
	return DefaultPageSize
}

// list pages through one kind (the first of its versions the apiserver serves) and calls each item.
// It reports false when no version is served.
func (s *Scanner) list(ctx context.Context, k policy.KindInfo, each func(*unstructured.Unstructured) error) (bool, error) {
	for _, v := range k.Versions {
		gvk := schema.GroupVersionKind{Group: k.Group, Version: v, Kind: k.Kind + "List"}
		err := pages(ctx, s.Reader, gvk, s.Namespace, s.pageSize(), each)
		if isNotServed(err) {
			continue
		}
		if err != nil {
			return true, fmt.Errorf("listing %s.%s/%s: %w", k.Resource, k.Group, v, err)
		}
		return true, nil
	}
	return false, nil
}

// pages lists gvk (a List kind) in namespace ("" for all) page by page.
func pages(ctx context.Context, r client.Reader, gvk schema.GroupVersionKind, namespace string, limit int64, each func(*unstructured.Unstructured) error) error {
	cont := ""
	for {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk)
		opts := []client.ListOption{client.Limit(limit), client.Continue(cont)}
		if namespace != "" {
			opts = append(opts, client.InNamespace(namespace))
		}
		if err := r.List(ctx, list, opts...); err != nil {
			return err
		}
		for i := range list.Items {
			if err := each(&list.Items[i]); err != nil {
				return err
			}
		}
		if cont = list.GetContinue(); cont == "" {
			return nil
		}
	}
}

func isNotServed(err error) bool {
	return err != nil && (meta.IsNoMatchError(err) || apierrors.IsNotFound(err))
}

// scanEnv is the state of one scan: the namespaces seen so far, each read once.
type scanEnv struct {
	s          *Scanner
	namespaces map[string]*namespaceIndex
	now        time.Time
}

func (e *scanEnv) judge(ctx context.Context, pol *policy.Policy, item *unstructured.Unstructured) Result {
	r := Result{APIVersion: item.GetAPIVersion(), Kind: item.GetKind(), Namespace: item.GetNamespace(), Name: item.GetName(), UID: item.GetUID()}
	item.SetManagedFields(nil)
	raw, err := json.Marshal(item.Object)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	ns, err := e.namespace(ctx, r.Namespace)
	if err != nil {
		r.Error = fmt.Sprintf("reading namespace %s and its clusters: %v", r.Namespace, err)
		return r
	}
	// The same resolution as admission (clusterinfo.Resolve), from this namespace's objects.
	res := clusterinfo.ResolveIn(ctx, ns.store, ns.ns, clusterinfo.Subject{Namespace: r.Namespace, Group: item.GroupVersionKind().Group,
		Kind: r.Kind, Name: r.Name, Labels: item.GetLabels(), Owners: owners(item)})
	r.Cluster = res.Cluster
	env := res.Environment(e.s.Catalog, e.s.DES, e.now)
	if e.s.Machines != nil && !res.Cluster.AKS {
		r.Azure, env.Actual = e.actual(ctx, item, ns, res.Cluster.Name)
	}
	req := policy.Request{Object: raw, Namespace: r.Namespace, NamespaceLabels: res.NamespaceLabels}
	rec := &recordingDES{inner: env.DES}
	if e.s.Warm != nil && env.DES != nil {
		env.DES = rec
	}
	d, err := policy.EvaluateStored(pol, req, env)
	if err == nil && e.s.Warm != nil && e.s.Warm.Warm(ctx, []string{d.Region}, rec.ids) {
		d, err = policy.EvaluateStored(pol, req, env)
	}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Decision = d
	return r
}

// actual reads what Azure built for an AzureMachine (its VM, from spec.providerID) or an
// AzureMachinePool (its scale set, named after the pool, in the resource group of its providerIDList
// or else of its AzureCluster). Nothing is read for other kinds or machines not provisioned yet.
func (e *scanEnv) actual(ctx context.Context, item *unstructured.Unstructured, ns *namespaceIndex, cluster string) (*AzureRead, *policy.ActualVM) {
	var vm *policy.ActualVM
	var err error
	switch item.GetKind() {
	case "AzureMachine":
		pid, _, _ := unstructured.NestedString(item.Object, "spec", "providerID")
		if pid == "" {
			return nil, nil
		}
		vm, err = e.s.Machines.VM(ctx, pid)
	case "AzureMachinePool":
		sub, rg := e.scaleSetPlace(ctx, item, ns, cluster)
		if rg == "" {
			return nil, nil
		}
		vm, err = e.s.Machines.ScaleSet(ctx, sub, rg, item.GetName())
	default:
		return nil, nil
	}
	if err != nil {
		msg := err.Error()
		if errors.Is(err, azure.ErrNotFound) {
			msg += " (deleted outside Cluster API, or not created yet)"
		}
		return &AzureRead{Error: msg}, nil
	}
	return &AzureRead{Resource: vm.Resource}, vm
}

// scaleSetPlace finds the subscription and resource group of an AzureMachinePool's scale set: from
// its providerIDList, else from the AzureCluster of the cluster it was resolved to (however it was
// bound: label, owner or referrer).
func (e *scanEnv) scaleSetPlace(ctx context.Context, item *unstructured.Unstructured, ns *namespaceIndex, cluster string) (string, string) {
	ids, _, _ := unstructured.NestedStringSlice(item.Object, "spec", "providerIDList")
	for _, pid := range ids {
		if id, err := azure.ParseProviderID(pid); err == nil {
			return id.SubscriptionID, id.ResourceGroupName
		}
	}
	var azureCluster map[string]any
	name := cluster
	if name == "" {
		return "", ""
	}
	clusterinfo.ResolveCluster(name, func(kind, n string) (map[string]any, bool) {
		gk := schema.GroupKind{Group: policy.Group, Kind: kind}
		if kind == clusterinfo.ClusterV1Beta2.Kind {
			gk.Group = clusterinfo.ClusterV1Beta2.Group
		}
		o, ok := ns.store.Get(ctx, gk, ns.name, n)
		if ok && kind == clusterinfo.AzureCluster.Kind {
			azureCluster = o
		}
		return o, ok
	})
	if azureCluster == nil {
		return "", ""
	}
	rg, _, _ := unstructured.NestedString(azureCluster, "spec", "resourceGroup")
	sub, _, _ := unstructured.NestedString(azureCluster, "spec", "subscriptionID")
	if rg == "" {
		rg = name // CAPZ's default: the resource group is named after the cluster
	}
	if sub == "" {
		sub = e.s.DefaultSubscription
	}
	if sub == "" {
		return "", ""
	}
	return sub, rg
}

func (e *scanEnv) namespace(ctx context.Context, name string) (*namespaceIndex, error) {
	if ns, ok := e.namespaces[name]; ok {
		return ns, nil
	}
	ns, err := readNamespace(ctx, e.s.Reader, e.s.ClusterGVK, e.s.Served, name, e.s.pageSize())
	if err != nil {
		return nil, err
	}
	e.namespaces[name] = ns
	return ns, nil
}

// namespaceIndex holds one namespace, its Clusters, AzureClusters and AKS control planes, and the CAPI
// objects that bind objects to clusters (Scanner.Served), listed once per scan and trimmed to metadata and spec. Its
// store is what clusterinfo resolves from, so the audit binds objects and finds regions exactly as
// admission does from its informer cache.
type namespaceIndex struct {
	name  string
	ns    *corev1.Namespace
	store *clusterinfo.ObjectStore
}

func readNamespace(ctx context.Context, r client.Reader, clusterGVK schema.GroupVersionKind, served clusterinfo.Served, name string, limit int64) (*namespaceIndex, error) {
	ix := &namespaceIndex{name: name}
	ns := &corev1.Namespace{}
	switch err := r.Get(ctx, client.ObjectKey{Name: name}, ns); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, err
	default:
		ix.ns = ns
	}
	// What admission's informers watch (clusterinfo.WatchedKinds: Clusters and what binds objects to
	// them, AzureClusters and AKS control planes for the region), so that both resolve alike.
	kinds := []schema.GroupVersionKind{}
	if clusterGVK.Kind != "" {
		kinds = append(kinds, clusterGVK)
	}
	for _, w := range clusterinfo.WatchedKinds(served) {
		if gk := w.GVK.GroupKind(); gk != clusterGVK.GroupKind() && gk != (schema.GroupKind{Kind: "Namespace"}) {
			if served == nil && w.Refs != nil {
				continue // without served versions, the referrer kinds are not known to be installed
			}
			kinds = append(kinds, w.GVK)
		}
	}
	var all []map[string]any
	for _, gvk := range kinds {
		err := pages(ctx, r, gvk.GroupVersion().WithKind(gvk.Kind+"List"), name, limit, func(u *unstructured.Unstructured) error {
			spec, _, _ := unstructured.NestedMap(u.Object, "spec")
			md := map[string]any{"name": u.GetName(), "namespace": name}
			if l := u.GetLabels(); l != nil {
				md["labels"] = map[string]any{capiref.LabelClusterName: l[capiref.LabelClusterName]}
			}
			if refs, ok, _ := unstructured.NestedSlice(u.Object, "metadata", "ownerReferences"); ok {
				md["ownerReferences"] = refs
			}
			o := map[string]any{"apiVersion": gvk.GroupVersion().String(), "kind": gvk.Kind, "metadata": md, "spec": spec}
			all = append(all, o)
			return nil
		})
		if err != nil && !isNotServed(err) {
			return nil, err
		}
	}
	ix.store = clusterinfo.NewObjectStore(all, name)
	return ix, nil
}

func owners(u *unstructured.Unstructured) []objmeta.OwnerReference {
	refs := u.GetOwnerReferences()
	out := make([]objmeta.OwnerReference, 0, len(refs))
	for _, o := range refs {
		out = append(out, objmeta.OwnerReference{APIVersion: o.APIVersion, Kind: o.Kind, Name: o.Name, Controller: o.Controller})
	}
	return out
}

// recordingDES passes lookups through and remembers the IDs asked for, so that a one-shot scan can
// load the sets it did not know and judge the object again.
type recordingDES struct {
	inner policy.DESCatalog
	ids   []string
}

func (r *recordingDES) LookupDES(id string) (policy.DESInfo, policy.DESState) {
	info, state := r.inner.LookupDES(id)
	if state == policy.DESUnknown && !slices.Contains(r.ids, id) {
		r.ids = append(r.ids, id)
	}
	return info, state
}
