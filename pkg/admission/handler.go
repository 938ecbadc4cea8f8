// Package admission serves the policy as two raw controller-runtime admission handlers. Raw, not
// typed: a typed Validator cannot return audit annotations, and decoding into Go types could drop
// fields that a newer CRD has and our types lack.
package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/audit"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/skus"
)

// Mode selects what a handler answers with.
type Mode string

const (
	Mutate   Mode = "mutate"
	Validate Mode = "validate"
)

// Resolver finds an object's surroundings (clusterinfo.Resolver in production).
type Resolver interface {
	Resolve(ctx context.Context, namespace string, objLabels map[string]string) clusterinfo.Result
}

// Handler is one webhook endpoint.
type Handler struct {
	Mode     Mode
	Policies *PolicyStore
	Resolver Resolver
	Catalog  skus.Catalog
	// DES is optional live Disk Encryption Set data (nil: rules that need it skip).
	DES      policy.DESCatalog
	Recorder *audit.Recorder
	// Now is the clock (tests pin it); nil means time.Now.
	Now func() time.Time
}

var _ admission.Handler = (*Handler)(nil)

// Handle decodes, resolves the context, asks the policy and answers. Every path through it records
// exactly one audit entry.
func (h *Handler) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	start := now()
	entry := audit.Entry{
		Webhook: string(h.Mode), UID: string(req.UID), User: req.UserInfo.Username, Operation: string(req.Operation),
		Kind: req.Kind.Kind, Namespace: req.Namespace, Name: req.Name, DryRun: req.DryRun != nil && *req.DryRun,
	}
	defer func() {
		if r := recover(); r != nil {
			// The policy is pure and fuzzed, but a crash here would take every in-flight request with
			// it. Answer and keep serving. The apiserver treats an errored answer as a rejection, not
			// as a failed call, so this fails closed whatever the failurePolicy: an internal error must
			// not let an unchecked object through.
			entry.Err = fmt.Errorf("panic: %v", r)
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("capz-encryption-webhook: internal error deciding on %s %s/%s", req.Kind.Kind, req.Namespace, req.Name))
		}
		entry.Outcome = outcome(resp, entry.Err)
		entry.Latency = now().Sub(start)
		// Every answer carries uid, decision and rules, so that the apiserver's audit log can be
		// filtered on them and joined with our log line (the apiserver makes a new UID per webhook
		// call; its auditID is not the admission UID).
		resp.AuditAnnotations = mergeAnnotations(resp.AuditAnnotations, map[string]string{
			"uid": string(req.UID), "decision": entry.Outcome, "rules": audit.RulesSummary(entry.Decision),
		})
		h.Recorder.Record(entry)
	}()

	if !policy.Handles(req.Kind.Group+"/"+req.Kind.Version, req.Kind.Kind) {
		// The webhook configuration should never send these; allow rather than break other kinds.
		return admission.Allowed("not a kind capz-encryption-webhook decides on")
	}
	raw := req.Object.Raw
	if req.Operation == admissionv1.Delete {
		raw = req.OldObject.Raw
	}
	meta, err := decodeMeta(raw)
	if err != nil {
		entry.Err = err
		return admission.Errored(http.StatusBadRequest, err)
	}
	if entry.Name == "" {
		entry.Name = meta.Name
	}
	ns := req.Namespace
	if ns == "" {
		ns = meta.Namespace
	}
	info := h.Resolver.Resolve(ctx, ns, meta.Labels)
	env := policy.Environment{Locations: info.Locations, Cluster: info.Cluster, Catalog: h.Catalog, DES: h.DES}
	// The mutating webhook computes the patch (and records what the result would be judged); the
	// validating webhook judges the object exactly as it arrives, after every mutation, because our
	// own mutation may be disabled, may have failed open, or may have been undone by a later webhook.
	stage := policy.StageAdmit
	if h.Mode == Validate {
		stage = policy.StageValidate
	}
	d, err := policy.Evaluate(h.Policies.Get(), policy.Request{
		Operation: policy.Operation(req.Operation), Stage: stage, Object: raw, OldObject: req.OldObject.Raw,
		Namespace: ns, NamespaceLabels: info.NamespaceLabels, DryRun: entry.DryRun,
	}, env)
	if err != nil {
		entry.Err = err
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("capz-encryption-webhook: %w", err))
	}
	entry.Decision = d
	if !d.Catalog.AsOf.IsZero() {
		entry.CatalogAge = now().Sub(d.Catalog.AsOf)
	}
	if h.Mode == Mutate {
		return mutateResponse(d)
	}
	return validateResponse(d)
}

// mutateResponse only patches: denials and warnings come from the validating webhook, which sees the
// patched object and computes the same findings, so the client gets each message once.
func mutateResponse(d *policy.Decision) admission.Response {
	resp := admission.Allowed("")
	if len(d.Patch) > 0 {
		resp.Patches = d.Patch
		pt := admissionv1.PatchTypeJSONPatch
		resp.PatchType = &pt
	}
	resp.AuditAnnotations = map[string]string{"region": regionNote(d)}
	if len(d.Injected) > 0 {
		resp.AuditAnnotations["injected"] = strings.Join(d.Injected, ",")
		resp.AuditAnnotations["default"] = d.DefaultName
	}
	return resp
}

func validateResponse(d *policy.Decision) admission.Response {
	var resp admission.Response
	if d.Allowed {
		resp = admission.Allowed("")
	} else {
		var b strings.Builder
		fmt.Fprintf(&b, "capz-encryption-webhook denied %s %s/%s:", d.Kind, d.Namespace, d.Name)
		for _, f := range d.Violations() {
			fmt.Fprintf(&b, " [%s] %s: %s;", f.Rule, f.Field, f.Message)
		}
		resp = admission.Denied(strings.TrimSuffix(b.String(), ";"))
		resp.Result.Code = http.StatusForbidden
		resp.Result.Reason = metav1.StatusReasonForbidden
	}
	for _, f := range d.Warnings() {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("capz-encryption-webhook [%s] %s: %s", f.Rule, f.Field, f.Message))
	}
	resp.AuditAnnotations = map[string]string{"region": regionNote(d)}
	if d.Exempt != "" {
		resp.AuditAnnotations["exempt"] = d.Exempt
	}
	return resp
}

func regionNote(d *policy.Decision) string {
	if d.Region == "" {
		return "unknown"
	}
	return d.Region + " (" + d.RegionSource + ")"
}

func outcome(resp admission.Response, err error) string {
	switch {
	case err != nil || resp.Result != nil && resp.Result.Code >= 500 || resp.Result != nil && resp.Result.Code == http.StatusBadRequest:
		return "error"
	case !resp.Allowed:
		return "denied"
	case len(resp.Patches) > 0:
		return "patched"
	default:
		return "allowed"
	}
}

func mergeAnnotations(a, b map[string]string) map[string]string {
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}

type objectMeta struct {
	Name      string
	Namespace string
	Labels    map[string]string
}

// decodeMeta reads only metadata: the policy decodes the object itself, losslessly.
func decodeMeta(raw []byte) (objectMeta, error) {
	var o struct {
		Metadata struct {
			Name         string            `json:"name"`
			GenerateName string            `json:"generateName"`
			Namespace    string            `json:"namespace"`
			Labels       map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if len(raw) == 0 {
		return objectMeta{}, fmt.Errorf("capz-encryption-webhook: the request carries no object")
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return objectMeta{}, fmt.Errorf("capz-encryption-webhook: the object is not valid JSON: %w", err)
	}
	name := o.Metadata.Name
	if name == "" {
		name = o.Metadata.GenerateName
	}
	return objectMeta{Name: name, Namespace: o.Metadata.Namespace, Labels: o.Metadata.Labels}, nil
}
