// Package admission serves the policy as two raw controller-runtime admission handlers, mutate and
// validate. Raw, not typed: a typed Validator cannot return audit annotations, and decoding into Go
// types could drop fields that a newer CRD has and our types lack.
//
// A handler is a chain (see chain.go): metrics, then the audit record, then panic recovery, around
// the decision itself (review, below), which only decodes, resolves the object's surroundings, asks
// the policy and builds the response.
package admission

import (
	"context"
	"fmt"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// Mode selects what a handler answers with.
type Mode string

const (
	Mutate   Mode = "mutate"
	Validate Mode = "validate"
	// Binding is the binding-time check of MachineDeployments, KubeadmControlPlanes and
	// MachinePools (binding.go).
	Binding Mode = "validate-binding"
)

// Resolver finds an object's surroundings (clusterinfo.Resolver in production).
type Resolver interface {
	Resolve(ctx context.Context, s clusterinfo.Subject) clusterinfo.Result
}

// ObjectReader reads the object a binding references (clusterinfo.Resolver in production: the
// informer cache, then the apiserver).
type ObjectReader interface {
	Object(ctx context.Context, gk schema.GroupKind, namespace, name string) (map[string]any, bool)
}

// PolicySource returns the policy in force (policyfile.Store in production).
type PolicySource interface {
	Get() *policy.Policy
}

var (
	_ Resolver     = (*clusterinfo.Resolver)(nil)
	_ ObjectReader = (*clusterinfo.Resolver)(nil)
)

// Config is what a handler needs.
type Config struct {
	Mode     Mode
	Policies PolicySource
	Resolver Resolver
	// Objects is needed by the Binding mode only.
	Objects ObjectReader
	Catalog skus.Catalog
	// DES is optional live Disk Encryption Set data (nil: rules that need it skip).
	DES      policy.DESCatalog
	Recorder *decisionlog.Recorder
	Metrics  *Metrics
	// Limiter bounds the work in flight; share one between the webhooks. Nil limits nothing.
	Limiter *Limiter
	// Now is the clock (tests pin it); nil means time.Now.
	Now func() time.Time
}

// New returns the handler for cfg.Mode: the decision wrapped in panic recovery, the in-flight
// limit, the audit record and the metrics, in that order from the inside out (so that a request
// refused for overload is recorded and counted like any other).
func New(cfg Config) admission.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &decider{cfg: cfg}
	decide := d.review
	if cfg.Mode == Binding {
		decide = d.reviewBinding
	}
	return chain(cfg.Mode, decide, WithMetrics(cfg.Metrics), WithAuditRecord(cfg.Recorder, cfg.Now),
		WithInFlightLimit(cfg.Limiter, cfg.Metrics), WithRecovery())
}

type decider struct{ cfg Config }

// review decodes, resolves the context, asks the policy and answers. It fills e with what it found.
func (d *decider) review(ctx context.Context, req admission.Request, e *decisionlog.Entry) admission.Response {
	if !policy.Handles(req.Kind.Group+"/"+req.Kind.Version, req.Kind.Kind) {
		// The webhook configuration should never send these; allow rather than break other kinds.
		return admission.Allowed("not a kind capz-encryption-webhook decides on")
	}
	pol := d.cfg.Policies.Get()
	if d.cfg.Mode == Mutate && len(pol.Defaults) == 0 {
		// Nothing can be injected, and judging is the validating webhook's: answer before decoding.
		e.Decision = &policy.Decision{Kind: req.Kind.Kind, Namespace: req.Namespace, Name: req.Name, Allowed: true,
			Exempt: "nothing to inject: the policy has no defaults", Findings: []policy.Finding{}}
		return mutateResponse(e.Decision)
	}
	raw := req.Object.Raw
	if req.Operation == admissionv1.Delete {
		raw = req.OldObject.Raw
	}
	// One decoding serves both the object's identity (to find its cluster) and the policy.
	obj, err := policy.DecodeObject(raw)
	if err != nil {
		e.Err = fmt.Errorf("capz-encryption-webhook: %w", err)
		return admission.Errored(http.StatusBadRequest, e.Err)
	}
	meta := obj.Meta
	if e.Name == "" {
		e.Name = meta.DisplayName()
	}
	ns := req.Namespace
	if ns == "" {
		ns = meta.Namespace
	}
	info := d.cfg.Resolver.Resolve(ctx, clusterinfo.SubjectOf(meta, ns, nil))
	// The mutating webhook computes the patch; the validating webhook judges the object exactly as
	// it arrives, after every mutation, because our own mutation may be disabled, may have failed
	// open, or may have been undone by a later webhook.
	stage := policy.StageMutate
	if d.cfg.Mode == Validate {
		stage = policy.StageValidate
	}
	env := info.Environment(d.cfg.Catalog, d.cfg.DES, d.cfg.Now())
	dec, err := policy.Evaluate(pol, policy.Request{
		Operation: policy.Operation(req.Operation), Stage: stage, Object: raw, Decoded: obj, OldObject: req.OldObject.Raw,
		Namespace: ns, NamespaceLabels: info.NamespaceLabels, DryRun: e.DryRun,
	}, env)
	if err != nil {
		e.Err = fmt.Errorf("capz-encryption-webhook: %w", err)
		return admission.Errored(http.StatusBadRequest, e.Err)
	}
	e.Decision = dec
	if !dec.Catalog.AsOf.IsZero() {
		e.CatalogAge = env.Now.Sub(dec.Catalog.AsOf)
	}
	if d.cfg.Mode == Mutate {
		return mutateResponse(dec)
	}
	return validateResponse(dec, req.Kind.Group)
}
