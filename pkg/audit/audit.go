// Package audit records every admission decision: one structured JSON log line per request (zap via
// zapr), the audit annotations the apiserver copies into its audit log, and Prometheus metrics. A
// decision is never dropped: Record has no error path and logs even when the policy failed.
package audit

import (
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/policy"
)

// Entry is one request's outcome.
type Entry struct {
	Webhook   string // "mutate" or "validate"
	UID       string
	User      string
	Operation string
	Kind      string
	Namespace string
	Name      string
	DryRun    bool
	// Decision is nil when the policy could not decide (Err is then set) or the kind is not ours.
	Decision *policy.Decision
	Err      error
	// Outcome is what the webhook answered: allowed, denied, patched, error, ignored.
	Outcome string
	Latency time.Duration
	// CatalogAge is how old the VM-size data behind the decision was (0 when unknown).
	CatalogAge time.Duration
}

// Metrics are registered once on controller-runtime's registry, which its metrics server serves.
var (
	decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "capz_encryption_webhook_decisions_total",
		Help: "Rule hits by webhook, rule and effective action; rule=\"none\" counts requests with no finding.",
	}, []string{"webhook", "rule", "action"})
	requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "capz_encryption_webhook_requests_total",
		Help: "Admission requests by webhook, operation and outcome (allowed, denied, patched, error, ignored).",
	}, []string{"webhook", "operation", "outcome"})
	latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "capz_encryption_webhook_request_duration_seconds",
		Help:    "Time to decide on an admission request, from decode to response, by webhook.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"webhook"})
	catalogAge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "capz_encryption_webhook_catalog_age_seconds",
		Help: "Age of the VM-size data used by the last decision, by region and source.",
	}, []string{"region", "source"})
)

func init() {
	metrics.Registry.MustRegister(decisions, requests, latency, catalogAge)
}

// Recorder writes entries to a logger and the metrics.
type Recorder struct{ log logr.Logger }

func NewRecorder(log logr.Logger) *Recorder { return &Recorder{log: log} }

// Record writes the entry's log line and metrics.
func (r *Recorder) Record(e Entry) {
	requests.WithLabelValues(e.Webhook, e.Operation, e.Outcome).Inc()
	latency.WithLabelValues(e.Webhook).Observe(e.Latency.Seconds())
	kv := []any{
		"webhook", e.Webhook, "uid", e.UID, "user", e.User, "operation", e.Operation,
		"kind", e.Kind, "namespace", e.Namespace, "name", e.Name, "dryRun", e.DryRun,
		"outcome", e.Outcome, "latencyMs", float64(e.Latency.Microseconds()) / 1000,
	}
	if d := e.Decision; d != nil {
		if len(d.Findings) == 0 {
			decisions.WithLabelValues(e.Webhook, "none", "none").Inc()
		}
		findings := make([]map[string]string, 0, len(d.Findings))
		for _, f := range d.Findings {
			decisions.WithLabelValues(e.Webhook, string(f.Rule), string(f.Action)).Inc()
			// Field and rule, not the message: messages repeat object values the log does not need.
			findings = append(findings, map[string]string{"rule": string(f.Rule), "action": string(f.Action), "field": f.Field})
		}
		kv = append(kv,
			"allowed", d.Allowed, "rules", RulesSummary(d), "findings", findings,
			"patchOps", len(d.Patch), "injected", d.Injected, "default", d.DefaultName,
			"region", d.Region, "regionSource", d.RegionSource,
			"catalogSource", d.Catalog.Name, "catalogAgeSeconds", int64(e.CatalogAge.Seconds()),
		)
		if d.Exempt != "" {
			kv = append(kv, "exempt", d.Exempt)
		}
		if d.DryRun {
			kv = append(kv, "policyDryRun", true)
		}
		if d.Region != "" && e.CatalogAge > 0 {
			catalogAge.WithLabelValues(d.Region, d.Catalog.Name).Set(e.CatalogAge.Seconds())
		}
	}
	if e.Err != nil {
		r.log.Error(e.Err, "admission decision", kv...)
		return
	}
	r.log.Info("admission decision", kv...)
}

// RulesSummary is "rule:action,rule:action" in a stable order, or "none".
func RulesSummary(d *policy.Decision) string {
	if d == nil || len(d.Findings) == 0 {
		return "none"
	}
	seen := map[string]bool{}
	var parts []string
	for _, f := range d.Findings {
		p := string(f.Rule) + ":" + string(f.Action)
		if !seen[p] {
			seen[p] = true
			parts = append(parts, p)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
