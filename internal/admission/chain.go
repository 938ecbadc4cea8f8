package admission

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
)

// HandlerFunc answers one request and describes the answer in e, which every layer of the chain
// shares: the innermost fills the decision, the outer ones add timing, the outcome and the record.
type HandlerFunc func(ctx context.Context, req admission.Request, e *decisionlog.Entry) admission.Response

// Middleware wraps a HandlerFunc with one cross-cutting concern.
type Middleware func(HandlerFunc) HandlerFunc

// chain applies the middlewares, outermost first, around h, and adapts the result to
// controller-runtime for the webhook named mode.
func chain(mode Mode, h HandlerFunc, mw ...Middleware) admission.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return &adapter{webhook: string(mode), h: h}
}

// adapter starts the entry every layer fills, from what the request itself says.
type adapter struct {
	webhook string
	h       HandlerFunc
}

var _ admission.Handler = (*adapter)(nil)

func (a *adapter) Handle(ctx context.Context, req admission.Request) admission.Response {
	e := &decisionlog.Entry{
		Webhook: a.webhook, UID: string(req.UID), User: req.UserInfo.Username, Operation: string(req.Operation),
		Kind: req.Kind.Kind, Namespace: req.Namespace, Name: req.Name, DryRun: req.DryRun != nil && *req.DryRun,
	}
	return a.h(ctx, req, e)
}

// WithRecovery answers a request whose decision panicked. The policy is pure and fuzzed, but a
// crash would take every in-flight request with it. The apiserver treats an errored answer as a
// rejection, not as a failed call, so this fails closed whatever the failurePolicy: an internal
// error must not let an unchecked object through.
func WithRecovery() Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, req admission.Request, e *decisionlog.Entry) (resp admission.Response) {
			defer func() {
				if r := recover(); r != nil {
					e.Err = fmt.Errorf("panic: %v", r)
					resp = admission.Errored(http.StatusInternalServerError,
						fmt.Errorf("capz-encryption-webhook: internal error deciding on %s %s/%s", req.Kind.Kind, req.Namespace, req.Name))
				}
			}()
			return next(ctx, req, e)
		}
	}
}

// WithAuditRecord times the request, sets its outcome, writes the audit annotations the apiserver
// copies into its audit log, and records the decision's log line: exactly once per request, on
// every path, errors included.
func WithAuditRecord(rec *decisionlog.Recorder, now func() time.Time) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, req admission.Request, e *decisionlog.Entry) admission.Response {
			start := now()
			resp := next(ctx, req, e)
			e.Outcome = outcome(resp, e.Err)
			e.Latency = now().Sub(start)
			// Every answer carries uid, decision and rules, so that the apiserver's audit log can be
			// filtered on them and joined with our log line (the apiserver makes a new UID per webhook
			// call; its auditID is not the admission UID).
			resp.AuditAnnotations = mergeAnnotations(resp.AuditAnnotations, map[string]string{
				"uid": string(req.UID), "decision": e.Outcome, "rules": decisionlog.RulesSummary(e.Decision),
			})
			rec.Record(e)
			return resp
		}
	}
}

// WithMetrics counts the request, its findings and its latency once the inner layers are done.
func WithMetrics(m *Metrics) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		return func(ctx context.Context, req admission.Request, e *decisionlog.Entry) admission.Response {
			resp := next(ctx, req, e)
			m.observe(e)
			return resp
		}
	}
}

func outcome(resp admission.Response, err error) string {
	switch {
	case err != nil || resp.Result != nil && resp.Result.Code >= 500 || resp.Result != nil && resp.Result.Code == http.StatusBadRequest:
		return decisionlog.OutcomeError
	case !resp.Allowed:
		return decisionlog.OutcomeDenied
	case len(resp.Patches) > 0:
		return decisionlog.OutcomePatched
	default:
		return decisionlog.OutcomeAllowed
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
