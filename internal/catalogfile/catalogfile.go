// Package catalogfile keeps the VM-size catalog file in force (--sku-catalog, the chart's
// skuCatalog ConfigMap): a skus.Catalog whose data is reloaded when the file changes, and never
// replaced by a file that does not parse — like the policy file (internal/policyfile).
package catalogfile

import (
	"bytes"
	"context"
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
	cur     atomic.Pointer[skus.Static]
	path    string
	last    []byte
	log     logr.Logger
	metrics *Metrics
}

var _ skus.Catalog = (*Store)(nil)

// New loads path; a bad file at start is an error (the catalog is data, not policy: there is no
// safer default to fall back on than refusing to start with a catalog that was asked for and is
// unreadable — the embedded one answers only three regions).
func New(path string, m *Metrics, log logr.Logger) (*Store, error) {
	s := &Store{path: path, log: log, metrics: m}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := skucatalog.LoadFile(path)
	if err != nil {
		return nil, err
	}
	s.last = data
	s.cur.Store(c)
	return s, nil
}

// Watch re-reads the file every interval until ctx ends (content comparison, as policyfile.Watch
// does, for the same reason: ConfigMap volumes swap symlinks).
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	wait.UntilWithContext(ctx, func(context.Context) { s.reload() }, interval)
}

func (s *Store) reload() {
	data, err := os.ReadFile(s.path)
	if err != nil {
		s.failed(err, "VM-size catalog file unreadable; keeping the catalog in force")
		return
	}
	if bytes.Equal(data, s.last) {
		return
	}
	s.last = data
	c, err := skucatalog.LoadFile(s.path)
	if err != nil {
		s.failed(err, "VM-size catalog file rejected; keeping the catalog in force")
		return
	}
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
