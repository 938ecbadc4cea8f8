package admission

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
)

// Metrics are the admission path's Prometheus metrics. Like every package of this project that has
// metrics, the package builds them in a constructor that registers them on the registry it is given
// (controller-runtime's in `serve`, a fresh one in tests); no package registers in init().
type Metrics struct {
	decisions  *prometheus.CounterVec
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	catalogAge *prometheus.GaugeVec
	inFlight   prometheus.Gauge
	overload   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_decisions_total",
			Help: "Rule hits by webhook, rule and effective action; rule=\"none\" counts requests with no finding.",
		}, []string{"webhook", "rule", "action"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_requests_total",
			Help: "Admission requests by webhook, operation and outcome (allowed, denied, patched, error).",
		}, []string{"webhook", "operation", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capz_encryption_webhook_request_duration_seconds",
			Help:    "Time to decide on an admission request, from decode to response, by webhook.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"webhook"}),
		catalogAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_catalog_age_seconds",
			Help: "Age of the VM-size data used by the last decision, by region and source.",
		}, []string{"region", "source"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_requests_in_flight",
			Help: "Admission requests being decided, updated as each starts and ends (bounded by --max-in-flight).",
		}),
		overload: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_overloaded_total",
			Help: "Admission requests refused because no slot freed up in time (--max-in-flight), by webhook.",
		}, []string{"webhook"}),
	}
	reg.MustRegister(m.decisions, m.requests, m.latency, m.catalogAge, m.inFlight, m.overload)
	return m
}

func (m *Metrics) setInFlight(n int) {
	if m != nil {
		m.inFlight.Set(float64(n))
	}
}

func (m *Metrics) overloaded(webhook string) {
	if m != nil {
		m.overload.WithLabelValues(webhook).Inc()
	}
}

func (m *Metrics) observe(e *decisionlog.Entry) {
	m.requests.WithLabelValues(e.Webhook, e.Operation, e.Outcome).Inc()
	m.latency.WithLabelValues(e.Webhook).Observe(e.Latency.Seconds())
	d := e.Decision
	if d == nil {
		return
	}
	if len(d.Findings) == 0 {
		m.decisions.WithLabelValues(e.Webhook, "none", "none").Inc()
	}
	for _, f := range d.Findings {
		// Two findings of one rule count twice: the counter is rule hits, not requests.
		m.decisions.WithLabelValues(e.Webhook, string(f.Rule), string(f.Action)).Inc()
	}
	// Only a region some catalog has data for becomes a label: region names come from objects, and
	// an arbitrary string must not make a new series (the live catalog only holds the subscription's
	// locations, the file and embedded catalogs what the platform team gave them).
	if d.Region != "" && e.CatalogAge > 0 && d.Catalog.Name != "" && d.Catalog.Name != "none" {
		m.catalogAge.WithLabelValues(d.Region, d.Catalog.Name).Set(e.CatalogAge.Seconds())
	}
}
