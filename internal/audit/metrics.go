package audit

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the background audit's Prometheus metrics (see admission.NewMetrics for the style).
type Metrics struct {
	violations *prometheus.GaugeVec
	lastRun    prometheus.Gauge
	duration   prometheus.Gauge
	runs       *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		violations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_violations",
			Help: "Findings of the last background audit of stored objects, by rule, effective action (deny, warn, audit) and namespace; reset by every run.",
		}, []string{"rule", "action", "namespace"}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_audit_last_run_timestamp_seconds",
			Help: "When the last successful background audit finished, as a Unix time.",
		}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_audit_last_run_duration_seconds",
			Help: "How long the last successful background audit took.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_audit_runs_total",
			Help: "Background audit runs by outcome (success, error).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.violations, m.lastRun, m.duration, m.runs)
	return m
}

// Publish replaces the violation counts with this run's.
func (m *Metrics) Publish(_ context.Context, run *Run) error {
	m.violations.Reset()
	for _, r := range run.Results {
		if r.Decision == nil {
			continue
		}
		for _, f := range r.Decision.Findings {
			m.violations.WithLabelValues(string(f.Rule), string(f.Action), r.Namespace).Inc()
		}
	}
	return nil
}

// Name names the sink in logs.
func (m *Metrics) Name() string { return "metrics" }

func (m *Metrics) succeeded(run *Run) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues("success").Inc()
	m.lastRun.Set(float64(run.Finished.UnixNano()) / 1e9)
	m.duration.Set(run.Finished.Sub(run.Started).Seconds())
}

func (m *Metrics) failed() {
	if m == nil {
		return
	}
	m.runs.WithLabelValues("error").Inc()
}
