package metricnames

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// TargetLabels are the labels Prometheus (and the Prometheus Operator's ServiceMonitor) adds to every
// scraped series; a query may select on them whatever the metric's own labels are.
var TargetLabels = []string{"namespace", "job", "instance", "pod", "service", "container", "endpoint"}

// CheckPromQL parses expr with Prometheus' own parser and checks every series it selects: the name
// is one the code exports (a histogram's _bucket, _sum or _count included), and every label it
// matches on is one of the metric's labels (le for buckets) or a target label. It returns the names
// it found.
func CheckPromQL(exported map[string]Metric, expr string) ([]string, error) {
	e, err := parser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			errs = append(errs, fmt.Errorf("%s: selects no metric by name", vs))
			return nil
		}
		names = append(names, name)
		if !SeriesName(exported, name) {
			errs = append(errs, fmt.Errorf("%s: the code exports no metric %s", vs, name))
			return nil
		}
		base := name
		allowed := append([]string{model.MetricNameLabel}, TargetLabels...)
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(name, suffix); ok && exported[b].Histogram {
				base = b
				if suffix == "_bucket" {
					allowed = append(allowed, "le")
				}
			}
		}
		allowed = append(allowed, exported[base].Labels...)
		for _, m := range vs.LabelMatchers {
			if !slices.Contains(allowed, m.Name) {
				errs = append(errs, fmt.Errorf("%s: %s has no label %s (it has %v)", vs, base, m.Name, exported[base].Labels))
			}
		}
		return nil
	})
	return names, errors.Join(errs...)
}
