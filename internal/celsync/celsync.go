// Package celsync keeps the admission policies that package celpolicy compiles in the cluster, in
// step with the policy in force and the VM-size catalog: it applies them by server-side apply (field
// manager FieldManager) and deletes the ones it owns that the current compilation no longer makes.
// It owns exactly the objects labelled as celpolicy labels them (celpolicy.OwnedSelector) and never
// writes an object of the same name that lacks that label.
//
// It is one manager.Runnable that needs leadership: on every replica the webhook serves, and only the
// leader writes.
package celsync

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// FieldManager is the server-side apply field manager of every write.
const FieldManager = "capz-encryption-webhook"

// Kinds are the kinds the syncer writes, in the order it deletes them (bindings before their
// policies); it applies in the reverse order. All are cluster-scoped.
var Kinds = []schema.GroupVersionKind{
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingAdmissionPolicyBinding"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingAdmissionPolicy"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicyBinding"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicy"},
}

// Metrics are the syncer's Prometheus metrics.
type Metrics struct {
	syncs    *prometheus.CounterVec
	objects  *prometheus.GaugeVec
	lastSync prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_cel_syncs_total",
			Help: "Syncs of the compiled admission policies by result: applied (something was written or deleted), unchanged, error.",
		}, []string{"result"}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_cel_objects",
			Help: "Compiled admission objects in the cluster after the last successful sync, by kind.",
		}, []string{"kind"}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_cel_last_sync_timestamp_seconds",
			Help: "When the compiled admission policies last matched the policy and catalog in force (Unix time).",
		}),
	}
	reg.MustRegister(m.syncs, m.objects, m.lastSync)
	return m
}

// Syncer is the runnable. Every Interval it compiles the policy in force against the catalog and, when
// the result differs from what it last applied, or Resync has passed since (to repair objects that
// someone else edited or deleted), applies it and prunes.
type Syncer struct {
	// Client writes (server-side apply, delete); Reader lists and gets, uncached (the manager's
	// client would start informers on every kind for a few writes a day).
	Client client.Client
	Reader client.Reader
	// Policy returns the policy in force (policyfile.Store.Get).
	Policy  func() *policy.Policy
	Catalog skus.Catalog
	// Options for celpolicy.Compile; Now is set at every sync from Clock.
	Options  celpolicy.Options
	Interval time.Duration
	Resync   time.Duration
	Clock    func() time.Time
	Log      logr.Logger
	Metrics  *Metrics

	last     [sha256.Size]byte
	lastFull time.Time
	// absent remembers the kinds the apiserver does not serve (MutatingAdmissionPolicy before 1.36),
	// so that it is said once.
	absent map[schema.GroupVersionKind]bool
}

// NeedLeaderElection is true: only the leader writes; the webhook keeps serving on every replica.
func (s *Syncer) NeedLeaderElection() bool { return true }

// Start syncs until ctx ends. A failed sync is logged, counted and retried at the next tick.
func (s *Syncer) Start(ctx context.Context) error {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.Log.Error(err, "syncing the compiled admission policies; retrying", "in", s.Interval.String())
		}
	}, s.Interval)
	return nil
}

// Sync compiles and, if needed, applies and prunes once.
func (s *Syncer) Sync(ctx context.Context) error {
	opts := s.Options
	opts.Now = s.Clock()
	res, err := celpolicy.Compile(s.Policy(), s.Catalog, opts)
	if err != nil {
		s.Metrics.syncs.WithLabelValues("error").Inc()
		return err
	}
	compiled := res.Objects()
	objs := make([]*unstructured.Unstructured, 0, len(compiled))
	for _, o := range compiled {
		m, err := celpolicy.Applied(o)
		if err != nil {
			return err
		}
		// The typed objects also carry a null creationTimestamp, which belongs to the apiserver;
		// applying it would claim the field. (`cel`'s printed output keeps it, as kubectl would.)
		unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	sum, err := digest(objs)
	if err != nil {
		return err
	}
	if sum == s.last && opts.Now.Sub(s.lastFull) < s.Resync {
		s.Metrics.syncs.WithLabelValues("unchanged").Inc()
		s.Metrics.lastSync.Set(float64(opts.Now.Unix()))
		return nil
	}
	applied, pruned, err := s.write(ctx, objs)
	if err != nil {
		s.Metrics.syncs.WithLabelValues("error").Inc()
		return err
	}
	s.last, s.lastFull = sum, opts.Now
	s.Metrics.syncs.WithLabelValues("applied").Inc()
	s.Metrics.lastSync.Set(float64(opts.Now.Unix()))
	s.Log.Info("compiled admission policies in sync", "policy", res.PolicySource, "applied", applied, "deleted", pruned,
		"notCompiled", len(res.NotCompiled))
	return nil
}

// write applies objs (in order) and deletes the owned objects not among them. It goes on past a
// failed object, so that one bad object does not hold back the others, and returns the errors.
func (s *Syncer) write(ctx context.Context, objs []*unstructured.Unstructured) (applied, pruned int, _ error) {
	var errs []error
	want := map[schema.GroupVersionKind]map[string]bool{}
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		if s.absent[gvk] {
			continue
		}
		if want[gvk] == nil {
			want[gvk] = map[string]bool{}
		}
		want[gvk][u.GetName()] = true
		if err := s.apply(ctx, u); err != nil {
			if meta.IsNoMatchError(err) {
				s.markAbsent(gvk)
				continue
			}
			errs = append(errs, err)
			continue
		}
		applied++
	}
	for _, gvk := range Kinds {
		if s.absent[gvk] {
			continue
		}
		n, count, err := s.prune(ctx, gvk, want[gvk])
		pruned += n
		switch {
		case meta.IsNoMatchError(err):
			s.markAbsent(gvk)
		case err != nil:
			errs = append(errs, err)
		default:
			s.Metrics.objects.WithLabelValues(gvk.Kind).Set(float64(count))
		}
	}
	return applied, pruned, errors.Join(errs...)
}

func (s *Syncer) markAbsent(gvk schema.GroupVersionKind) {
	if s.absent == nil {
		s.absent = map[schema.GroupVersionKind]bool{}
	}
	s.absent[gvk] = true
	s.Log.Info("the apiserver does not serve this kind; its compiled objects are left out (the webhook still enforces what they would)", "kind", gvk.String())
}

// apply server-side-applies u, unless an object of that name exists that this syncer does not own.
func (s *Syncer) apply(ctx context.Context, u *unstructured.Unstructured) error {
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(u.GroupVersionKind())
	err := s.Reader.Get(ctx, client.ObjectKeyFromObject(u), cur)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	case !celpolicy.OwnedSelector().Matches(labels.Set(cur.GetLabels())):
		return fmt.Errorf("%s %s exists without the label %s=%s: not ours, left alone", u.GetKind(), u.GetName(), celpolicy.LabelManagedBy, celpolicy.ManagedBy)
	}
	if err := s.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// prune deletes the owned objects of one kind that are not in keep, and returns how many it deleted
// and how many owned objects remain.
func (s *Syncer) prune(ctx context.Context, gvk schema.GroupVersionKind, keep map[string]bool) (deleted, remaining int, _ error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := s.Reader.List(ctx, list, client.MatchingLabelsSelector{Selector: celpolicy.OwnedSelector()}); err != nil {
		return 0, 0, err
	}
	var errs []error
	for i := range list.Items {
		o := &list.Items[i]
		if keep[o.GetName()] {
			remaining++
			continue
		}
		// Only the version this syncer listed: an object re-created meanwhile is someone's new one.
		uid, rv := o.GetUID(), o.GetResourceVersion()
		err := s.Client.Delete(ctx, o, client.Preconditions{UID: &uid, ResourceVersion: &rv})
		switch {
		case err == nil:
			deleted++
			s.Log.Info("deleted a compiled admission object the policy no longer makes", "kind", gvk.Kind, "name", o.GetName())
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		default:
			errs = append(errs, fmt.Errorf("deleting %s %s: %w", gvk.Kind, o.GetName(), err))
		}
	}
	return deleted, remaining, errors.Join(errs...)
}

// digest identifies a compilation; celpolicy's output is deterministic, and JSON sorts map keys.
func digest(objs []*unstructured.Unstructured) ([sha256.Size]byte, error) {
	raw, err := json.Marshal(slices.Clone(objs))
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(raw), nil
}
