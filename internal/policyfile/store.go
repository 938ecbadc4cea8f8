// Package policyfile keeps the policy in force: read from a file (the chart's ConfigMap), reloaded
// when the file changes, and never replaced by a file that does not parse.
package policyfile

import (
	"bytes"
	"context"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Metrics are the policy store's Prometheus metrics (see admission.NewMetrics for the style).
type Metrics struct {
	reloads    *prometheus.CounterVec
	policyInfo *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_policy_reloads_total",
			Help: "Policy file reloads by result (success, error).",
		}, []string{"result"}),
		policyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_policy_info",
			Help: "The policy in force (1 for the current source).",
		}, []string{"source"}),
	}
	reg.MustRegister(m.reloads, m.policyInfo)
	return m
}

// Store holds the policy in force. Requests read it without locks; the file watcher swaps it.
type Store struct {
	cur     atomic.Pointer[policy.Policy]
	path    string
	last    []byte
	log     logr.Logger
	metrics *Metrics
}

// New loads path (or the built-in policy for ""). A bad file at start is an error: the webhook must
// not come up enforcing something other than what was asked.
func New(path string, m *Metrics, log logr.Logger) (*Store, error) {
	s := &Store{path: path, log: log, metrics: m}
	if path == "" {
		s.set(policy.DefaultPolicy())
		return s, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := policy.Parse(path, data)
	if err != nil {
		return nil, err
	}
	s.last = data
	s.set(p)
	return s, nil
}

// Get returns the policy in force.
func (s *Store) Get() *policy.Policy { return s.cur.Load() }

func (s *Store) set(p *policy.Policy) {
	if old := s.cur.Swap(p); old != nil {
		s.metrics.policyInfo.DeleteLabelValues(old.Source)
	}
	s.metrics.policyInfo.WithLabelValues(p.Source).Set(1)
	for _, w := range p.Warnings {
		s.log.Info("policy file warning: "+w, "path", s.path)
	}
}

// Watch re-reads the file every interval until ctx ends. It compares contents rather than watching
// inotify events because ConfigMap volumes update by swapping a symlink, which event watchers handle
// unevenly; a read every few seconds costs nothing. A file that does not parse is logged and counted,
// and the last good policy keeps serving.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	if s.path == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reload()
		}
	}
}

func (s *Store) reload() {
	data, err := os.ReadFile(s.path)
	if err != nil {
		s.metrics.reloads.WithLabelValues("error").Inc()
		s.log.Error(err, "policy file unreadable; keeping the last good policy", "path", s.path)
		return
	}
	if bytes.Equal(data, s.last) {
		return
	}
	s.last = data
	p, err := policy.Parse(s.path, data)
	if err != nil {
		s.metrics.reloads.WithLabelValues("error").Inc()
		s.log.Error(err, "policy file rejected; keeping the last good policy", "path", s.path)
		return
	}
	s.set(p)
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.log.Info("policy reloaded", "path", s.path, "defaults", len(p.Defaults), "warnOnly", p.WarnOnly)
}
