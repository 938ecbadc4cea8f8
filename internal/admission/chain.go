package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
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

// Limiter bounds the admission work done at once, across both webhooks: at most Max requests are
// decided concurrently, and of those at most MaxLarge whose objects together exceed LargeBytes. A
// request beyond the bound waits at most Wait for a slot.
//
// The decision's memory grows with the objects (each is decoded, the stored one too on UPDATE), and
// controller-runtime reads bodies of up to 7 MiB: a few requests near that size cost more than a
// thousand real CAPZ objects, which are kilobytes. Giving them a lane of their own means they wait
// for each other, never for a normal request's slot, and normal requests never wait behind them.
type Limiter struct {
	Max, MaxLarge int
	LargeBytes    int
	Wait          time.Duration

	once         sync.Once
	slots, large chan struct{}
}

// errOverloaded is the answer when no slot frees up within Wait.
var errOverloaded = errors.New("capz-encryption-webhook: too many requests in flight; retry")

func (l *Limiter) init() {
	l.once.Do(func() {
		l.slots = make(chan struct{}, max(l.Max, 1))
		l.large = make(chan struct{}, max(l.MaxLarge, 1))
	})
}

// acquire takes the slots req needs, waiting until Wait has passed or ctx ends; release gives them
// back. It reports false when it got none.
func (l *Limiter) acquire(ctx context.Context, size int) (release func(), ok bool) {
	l.init()
	// The timer is made only when a slot is not free at once: the common case allocates none.
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	take := func(ch chan struct{}) bool {
		select {
		case ch <- struct{}{}:
			return true
		default:
		}
		if timer == nil {
			timer = time.NewTimer(l.Wait)
		}
		select {
		case ch <- struct{}{}:
			return true
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	isLarge := size > l.LargeBytes
	if isLarge && !take(l.large) {
		return nil, false
	}
	if !take(l.slots) {
		if isLarge {
			<-l.large
		}
		return nil, false
	}
	return func() {
		<-l.slots
		if isLarge {
			<-l.large
		}
	}, true
}

// inFlight is the number of requests holding a slot.
func (l *Limiter) inFlight() int {
	l.init()
	return len(l.slots)
}

// WithInFlightLimit answers a request that finds no slot within the limiter's Wait with an error:
// the apiserver takes an errored answer as a rejection, whatever the failurePolicy, like every other
// answer that is not a decision (see WithRecovery), so load cannot be used to get objects admitted
// unchecked where failurePolicy is Ignore. Waiting briefly rather than answering at once absorbs a
// burst (a MachineDeployment scaling out creates its machines together); waiting far less than the
// webhook timeout makes sure the apiserver gets this answer, and the client a message to retry,
// instead of a timeout. A nil limiter limits nothing.
func WithInFlightLimit(l *Limiter, m *Metrics) Middleware {
	return func(next HandlerFunc) HandlerFunc {
		if l == nil {
			return next
		}
		return func(ctx context.Context, req admission.Request, e *decisionlog.Entry) admission.Response {
			release, ok := l.acquire(ctx, len(req.Object.Raw)+len(req.OldObject.Raw))
			if !ok {
				e.Err = errOverloaded
				m.overloaded(e.Webhook)
				return admission.Errored(http.StatusTooManyRequests, errOverloaded)
			}
			m.setInFlight(l.inFlight())
			defer func() {
				release()
				m.setInFlight(l.inFlight()) // or the gauge would show a burst's peak until the next request
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
			e.Rules = decisionlog.RulesSummary(e.Decision) // once, for the annotation and the log line
			if resp.AuditAnnotations == nil {
				resp.AuditAnnotations = make(map[string]string, 3)
			}
			resp.AuditAnnotations["uid"], resp.AuditAnnotations["decision"], resp.AuditAnnotations["rules"] = string(req.UID), e.Outcome, e.Rules
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
