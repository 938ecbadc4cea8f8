// Package decisionlog writes the audit trail of admission: one structured JSON log line per request
// (zap via zapr), never sampled. A decision is never dropped: Record has no error path and logs even
// when the policy failed. The admission chain (internal/admission) calls it once per request; the
// matching apiserver audit annotations and the metrics are written by their own wrappers there.
package decisionlog

import (
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/zap/zapcore"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Outcomes of an admission request, as logged, counted and written into audit annotations.
const (
	OutcomeAllowed = "allowed"
	OutcomeDenied  = "denied"
	OutcomePatched = "patched"
	OutcomeError   = "error"
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
	// Outcome is what the webhook answered: one of the Outcome constants.
	Outcome string
	Latency time.Duration
	// CatalogAge is how old the VM-size data behind the decision was (0 when unknown).
	CatalogAge time.Duration
	// Rules is RulesSummary(Decision) when the caller has computed it already (empty: Record does).
	Rules string
}

// Recorder writes entries to a logger.
type Recorder struct{ log logr.Logger }

// NewRecorder returns a Recorder that writes to log.
func NewRecorder(log logr.Logger) *Recorder { return &Recorder{log: log} }

// Record writes the entry's log line.
func (r *Recorder) Record(e *Entry) {
	kv := []any{
		"webhook", e.Webhook, "uid", e.UID, "user", e.User, "operation", e.Operation,
		"kind", e.Kind, "namespace", e.Namespace, "name", e.Name, "dryRun", e.DryRun,
		"outcome", e.Outcome, "latencyMs", float64(e.Latency.Microseconds()) / 1000,
	}
	if d := e.Decision; d != nil {
		findings := make(loggedFindings, len(d.Findings))
		for i, f := range d.Findings {
			// Field and rule, not the message: messages repeat object values the log does not need.
			findings[i] = loggedFinding{Rule: string(f.Rule), Action: string(f.Action), Field: f.Field}
		}
		rules := e.Rules
		if rules == "" {
			rules = RulesSummary(d)
		}
		kv = append(kv,
			"allowed", d.Allowed, "rules", rules, "findings", findings,
			"patchOps", len(d.Patch), "injected", d.Injected, "default", d.DefaultName,
			"region", d.Region, "regionSource", d.RegionSource, "binding", d.Binding,
			"catalogSource", d.Catalog.Name, "catalogAgeSeconds", int64(e.CatalogAge.Seconds()),
		)
		if len(d.Evidence) > 0 {
			// Which capture of Azure's data answered, and when it was made: a verdict from a
			// years-old capture must be visible as such in the audit trail.
			kv = append(kv, "catalogEvidence", d.Evidence)
		}
		if d.Exempt != "" {
			kv = append(kv, "exempt", d.Exempt)
		}
		if d.WarnOnly {
			kv = append(kv, "policyWarnOnly", true)
		}
	}
	if e.Err != nil {
		r.log.Error(e.Err, "admission decision", kv...)
		return
	}
	r.log.Info("admission decision", kv...)
}

// loggedFinding is what the log keeps of a finding.
type loggedFinding struct {
	Rule   string `json:"rule"`
	Action string `json:"action"`
	Field  string `json:"field"`
}

// loggedFindings encodes itself for zap without reflection: the line is written for every admission
// request, and encoding a slice of maps through encoding/json was a measurable part of its cost.
// Other logr sinks see the struct's JSON tags.
type loggedFindings []loggedFinding

func (fs loggedFindings) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for i := range fs {
		if err := enc.AppendObject(fs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (f loggedFinding) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("rule", f.Rule)
	enc.AddString("action", f.Action)
	enc.AddString("field", f.Field)
	return nil
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
