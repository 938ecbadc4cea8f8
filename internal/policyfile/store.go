// Package policyfile keeps the policy in force: read from a file (the chart's ConfigMap), reloaded
// when the file changes, and never replaced by a file that does not parse. When the file on disk is
// not the policy in force, it says so (capz_encryption_webhook_policy_stale), so that an alert fires
// long before a restart would make the bad file matter.
package policyfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Metrics are the policy store's Prometheus metrics (see admission.NewMetrics for the style).
type Metrics struct {
	reloads     *prometheus.CounterVec
	policyInfo  *prometheus.GaugeVec
	stale       prometheus.Gauge
	lastSuccess prometheus.Gauge
	// warnOnly is for an alert on warnOnly left on: policy_info names the source only.
	warnOnly prometheus.Gauge
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
			Help: "The policy in force (1 for the current source), with the SHA-256 (first 12 hex digits) of its file, or built-in.",
		}, []string{"source", "sha256"}),
		stale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_policy_stale",
			Help: "1 while the policy file on disk is not the policy in force (it does not parse or cannot be read): the next restart would not serve what this replica serves. Alert on it.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_policy_last_reload_success_timestamp_seconds",
			Help: "When the policy file was last read and put in force (Unix time).",
		}),
		warnOnly: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_policy_warn_only",
			Help: "1 when the policy in force has warnOnly (formerly dryRun) on, or is the warn-only fallback of a bad file at start: every deny is only a warning.",
		}),
	}
	reg.MustRegister(m.reloads, m.policyInfo, m.stale, m.lastSuccess, m.warnOnly)
	return m
}

// Store holds the policy in force. Requests read it without locks; the file watcher swaps it.
type Store struct {
	cur  atomic.Pointer[policy.Policy]
	path string
	last []byte
	// lastInForce says whether last is the policy in force: after a read error, the same file back
	// means the disk and the policy agree again.
	lastInForce bool
	lastGood    string
	fallback    bool
	curHash     string
	stale       atomic.Bool
	log         logr.Logger
	metrics     *Metrics
}

// Option changes what New does with a bad file.
type Option func(*Store)

// WithFallback makes New start even when the file does not parse, rather than fail: with the last
// good policy this replica wrote to lastGood (a path on a volume that outlives the container, such
// as an emptyDir: a container restart finds it, a new pod does not), else with the built-in policy
// in warn-only mode. Either way the store reports itself stale until a good file arrives. lastGood
// "" keeps no copy.
//
// Why: under failurePolicy Fail, a replica that exits on a bad file crash-loops, and once every
// replica has restarted (a node drain, an upgrade) every CAPZ write is refused — a bad edit becomes
// a delayed outage. Warn-only enforces nothing the file did not ask for (every finding is still
// returned to the client as a warning, logged and counted), and the stale metric makes the gap an
// alert rather than a surprise.
func WithFallback(lastGood string) Option {
	return func(s *Store) { s.lastGood = lastGood; s.fallback = true }
}

// New loads path (or the built-in policy for ""). A bad file at start is an error unless WithFallback
// is given.
func New(path string, m *Metrics, log logr.Logger, opts ...Option) (*Store, error) {
	s := &Store{path: path, log: log, metrics: m}
	for _, o := range opts {
		o(s)
	}
	if path == "" {
		s.set(policy.DefaultPolicy(), nil)
		return s, nil
	}
	data, err := os.ReadFile(path)
	if err == nil {
		var p *policy.Policy
		if p, err = policy.Parse(path, data); err == nil {
			s.last = data
			s.set(p, data)
			s.success()
			return s, nil
		}
	}
	if !s.fallback {
		return nil, err
	}
	s.last = data
	s.startDegraded(err)
	return s, nil
}

// startDegraded puts the last good copy, or the built-in policy in warn-only mode, in force after the
// file failed with err.
func (s *Store) startDegraded(err error) {
	s.metrics.reloads.WithLabelValues("error").Inc()
	s.metrics.stale.Set(1)
	s.stale.Store(true)
	if s.lastGood != "" {
		if data, rerr := os.ReadFile(s.lastGood); rerr == nil {
			if p, perr := policy.Parse(s.path, data); perr == nil {
				p.Source = s.path + " (last good copy)"
				s.set(p, data)
				s.log.Error(err, "policy file rejected at start; serving the last good policy this replica loaded, until the file is fixed", "path", s.path, "lastGood", s.lastGood)
				return
			}
		}
	}
	p := policy.DefaultPolicy()
	p.WarnOnly = true
	p.Source = "built-in (warn-only: " + s.path + " rejected)"
	s.set(p, nil)
	s.log.Error(err, "policy file rejected at start and no last good copy: serving the built-in policy in warn-only mode (nothing is denied) until the file is fixed", "path", s.path)
}

// Get returns the policy in force.
func (s *Store) Get() *policy.Policy { return s.cur.Load() }

// Stale reports whether the file on disk is not the policy in force.
func (s *Store) Stale() bool { return s.stale.Load() }

func (s *Store) set(p *policy.Policy, data []byte) {
	hash := "built-in"
	if data != nil {
		sum := sha256.Sum256(data)
		hash = hex.EncodeToString(sum[:])[:12]
	}
	if old := s.cur.Swap(p); old != nil {
		s.metrics.policyInfo.DeleteLabelValues(old.Source, s.curHash)
	}
	s.curHash = hash
	s.metrics.policyInfo.WithLabelValues(p.Source, hash).Set(1)
	warnOnly := 0.0
	if p.WarnOnly {
		warnOnly = 1
	}
	s.metrics.warnOnly.Set(warnOnly)
	for _, w := range p.Warnings {
		s.log.Info("policy file warning: "+w, "path", s.path)
	}
}

// success records that the file on disk is the policy in force, and keeps a copy of it.
func (s *Store) success() {
	s.lastInForce = true
	s.stale.Store(false)
	s.metrics.stale.Set(0)
	s.metrics.lastSuccess.SetToCurrentTime()
	if s.lastGood == "" {
		return
	}
	if err := writeAtomically(s.lastGood, s.last); err != nil {
		s.log.Error(err, "keeping a copy of the policy failed; a restart with a bad file will fall back to the built-in policy", "lastGood", s.lastGood)
	}
}

func (s *Store) failure() {
	s.stale.Store(true)
	s.metrics.stale.Set(1)
	s.metrics.reloads.WithLabelValues("error").Inc()
}

func writeAtomically(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	return os.Rename(tmp.Name(), path)
}

// Watch re-reads the file every interval until ctx ends. It compares contents rather than watching
// inotify events because ConfigMap volumes update by swapping a symlink, which event watchers handle
// unevenly; a read every few seconds costs nothing. A file that does not parse is logged and counted,
// and the last good policy keeps serving.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	if s.path == "" {
		return
	}
	wait.UntilWithContext(ctx, func(context.Context) { s.reload() }, interval)
}

func (s *Store) reload() {
	data, err := os.ReadFile(s.path)
	if err != nil {
		s.failure()
		s.log.Error(err, "policy file unreadable; keeping the policy in force", "path", s.path, "source", s.Get().Source)
		return
	}
	if bytes.Equal(data, s.last) {
		if s.lastInForce && s.stale.Load() {
			s.stale.Store(false)
			s.metrics.stale.Set(0)
		}
		return
	}
	s.last = data
	p, err := policy.Parse(s.path, data)
	if err != nil {
		s.lastInForce = false
		s.failure()
		s.log.Error(err, "policy file rejected; keeping the policy in force", "path", s.path, "source", s.Get().Source)
		return
	}
	s.set(p, data)
	s.success()
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.log.Info("policy reloaded", "path", s.path, "defaults", len(p.Defaults), "warnOnly", p.WarnOnly)
}
