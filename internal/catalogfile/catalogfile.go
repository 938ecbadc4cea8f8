// Package catalogfile keeps the VM-size catalog file in force (--sku-catalog, the chart's
// skuCatalog ConfigMap): a skus.Catalog whose data is reloaded when the file changes, and never
// replaced by a file that does not parse — like the policy file (internal/policyfile).
package catalogfile

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// Metrics are the catalog file's Prometheus metrics (see admission.NewMetrics for the style).
type Metrics struct {
	reloads *prometheus.CounterVec
	stale   prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_sku_catalog_reloads_total",
			Help: "VM-size catalog file reloads by result (success, error).",
		}, []string{"result"}),
		stale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_sku_catalog_stale",
			Help: "1 while the VM-size catalog file on disk is not the catalog in force (it does not parse or cannot be read).",
		}),
	}
	reg.MustRegister(m.reloads, m.stale)
	return m
}

// Store is the catalog file in force. Requests read it without locks; Watch swaps it.
type Store struct {
	cur  atomic.Pointer[skus.Static]
	path string
	last []byte
	// lastInForce says whether last is the catalog in force: after a read error, the same file
	// back means the disk and the catalog agree again (as in policyfile).
	lastInForce bool
	log         logr.Logger
	metrics     *Metrics
}

var _ skus.Catalog = (*Store)(nil)

// New loads path; a bad file at start is an error (the catalog is data, not policy: there is no
// safer default to fall back on than refusing to start with a catalog that was asked for and is
// unreadable — the embedded one answers only three regions).
func New(path string, m *Metrics, log logr.Logger) (*Store, error) {
	s := &Store{path: path, log: log, metrics: m}
	data, modTime, err := read(path)
	if err != nil {
		return nil, err
	}
	c, err := skucatalog.ParseFile(path, data, modTime)
	if err != nil {
		return nil, err
	}
	s.last, s.lastInForce = data, true
	s.cur.Store(c)
	return s, nil
}

// read returns the file's bytes and the modification time of those bytes: one read serves both the
// comparison with the last file and the parse, so the two cannot see different versions while a
// ConfigMap volume swaps its symlink.
func read(path string) ([]byte, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	data, err := io.ReadAll(f)
	return data, st.ModTime(), err
}

// Watch re-reads the file every interval until ctx ends (content comparison, as policyfile.Watch
// does, for the same reason: ConfigMap volumes swap symlinks).
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	wait.UntilWithContext(ctx, func(context.Context) { s.reload() }, interval)
}

func (s *Store) reload() {
	data, modTime, err := read(s.path)
	if err != nil {
		s.failed(err, "VM-size catalog file unreadable; keeping the catalog in force")
		return
	}
	if bytes.Equal(data, s.last) {
		if s.lastInForce {
			s.metrics.stale.Set(0)
		}
		return
	}
	s.last = data
	c, err := skucatalog.ParseFile(s.path, data, modTime)
	if err != nil {
		s.lastInForce = false
		s.failed(err, "VM-size catalog file rejected; keeping the catalog in force")
		return
	}
	s.lastInForce = true
	s.cur.Store(c)
	s.metrics.stale.Set(0)
	s.metrics.reloads.WithLabelValues("success").Inc()
	s.log.Info("VM-size catalog reloaded", "path", s.path, "regions", c.Regions())
}

func (s *Store) failed(err error, msg string) {
	s.metrics.stale.Set(1)
	s.metrics.reloads.WithLabelValues("error").Inc()
	s.log.Error(err, msg, "path", s.path)
}

func (s *Store) Lookup(region, size string) (skus.SKU, bool) {
	return s.cur.Load().Lookup(region, size)
}
func (s *Store) LookupAll(size string) []skus.SKU     { return s.cur.Load().LookupAll(size) }
func (s *Store) HasRegion(region string) bool         { return s.cur.Load().HasRegion(region) }
func (s *Store) Regions() []string                    { return s.cur.Load().Regions() }
func (s *Store) SKUs(region string) []skus.SKU        { return s.cur.Load().SKUs(region) }
func (s *Store) Source(region string) skus.SourceInfo { return s.cur.Load().Source(region) }
