// Package metricnames lists the Prometheus metrics the binary exports, taken from the code itself:
// it runs every metrics constructor `serve` runs against a registry of its own and reads back the
// descriptors. Tests use it to hold what names metrics (the README, the chart's PrometheusRule and
// Grafana dashboard) to what the code registers.
package metricnames

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/admission"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/audit"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/azure"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/catalogfile"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celsync"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policyfile"
)

// Prefix starts the name of every metric of this project.
const Prefix = "capz_encryption_webhook_"

// Metric is one exported metric.
type Metric struct {
	Name string
	Help string
	// Labels are the metric's variable labels.
	Labels []string
	// Histogram is true for histograms, whose series are Name_bucket, Name_sum and Name_count.
	Histogram bool
}

// Exported returns the metrics `serve` registers, by name. It registers them as serve does (see
// cmd/capz-encryption-webhook: serve.go, azure.go, background_audit.go and celsync.go), so two packages claiming
// one name fail here as they would at start.
func Exported() (map[string]Metric, error) {
	rec := &recorder{reg: prometheus.NewPedanticRegistry()}
	var err error
	func() {
		// MustRegister panics on a conflict; report it as an error.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("registering the metrics: %v", r)
			}
		}()
		admission.NewMetrics(rec)
		policyfile.NewMetrics(rec)
		audit.NewMetrics(rec)
		catalogfile.NewMetrics(rec)
		clusterinfo.NewMetrics(rec)
		celsync.NewMetrics(rec) // with --cel-sync
		azureMetrics := azure.NewMetrics(rec)
		clients, cerr := azure.NewClients(azure.Config{SubscriptionID: "00000000-0000-0000-0000-000000000000",
			Credential: &azfake.TokenCredential{}, Metrics: azureMetrics})
		if cerr != nil {
			err = cerr
			return
		}
		for _, c := range []prometheus.Collector{
			azure.NewSKUCache(clients, time.Hour, time.Minute, logr.Discard()),
			azure.NewDESCache(clients, time.Hour, time.Minute, logr.Discard()),
		} {
			if rerr := rec.Register(c); rerr != nil {
				err = rerr
				return
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	out := map[string]Metric{}
	for _, c := range rec.collectors {
		_, histogram := c.(*prometheus.HistogramVec)
		if _, ok := c.(prometheus.Histogram); ok {
			histogram = true
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m, err := parseDesc(d)
			if err != nil {
				return nil, err
			}
			m.Histogram = histogram
			out[m.Name] = m
		}
	}
	return out, nil
}

// SeriesName reports whether name can be queried: an exported metric, or a histogram's _bucket,
// _sum or _count series.
func SeriesName(exported map[string]Metric, name string) bool {
	if _, ok := exported[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base].Histogram {
			return true
		}
	}
	return false
}

// descRE reads a Desc's String(): client_golang has no accessor for a descriptor's name.
var descRE = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*").*variableLabels: \{([^}]*)\}\}$`)

func parseDesc(d *prometheus.Desc) (Metric, error) {
	m := descRE.FindStringSubmatch(d.String())
	if m == nil {
		return Metric{}, fmt.Errorf("cannot read the descriptor %s", d)
	}
	name, err := strconv.Unquote(m[1])
	if err != nil {
		return Metric{}, err
	}
	help, err := strconv.Unquote(m[2])
	if err != nil {
		return Metric{}, err
	}
	var labels []string
	if m[3] != "" {
		labels = strings.Split(m[3], ",")
	}
	return Metric{Name: name, Help: help, Labels: labels}, nil
}

// recorder is a Registerer that keeps what it registers, so that their descriptors can be read.
type recorder struct {
	reg        *prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }
