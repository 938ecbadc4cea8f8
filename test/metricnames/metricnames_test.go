package metricnames_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/metricnames"
)

func exported(t *testing.T) map[string]metricnames.Metric {
	t.Helper()
	m, err := metricnames.Exported()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestExported(t *testing.T) {
	m := exported(t)
	for name, hist := range map[string]bool{
		"capz_encryption_webhook_requests_total":                 false,
		"capz_encryption_webhook_request_duration_seconds":       true,
		"capz_encryption_webhook_sku_catalog_age_seconds":        false,
		"capz_encryption_webhook_policy_warn_only":               false,
		"capz_encryption_webhook_azure_request_duration_seconds": true,
	} {
		if got, ok := m[name]; !ok || got.Histogram != hist || got.Help == "" {
			t.Errorf("%s: %+v (found %v), want histogram=%v with help", name, got, ok, hist)
		}
	}
	if got := m["capz_encryption_webhook_decisions_total"].Labels; strings.Join(got, ",") != "webhook,rule,action" {
		t.Errorf("decisions_total labels = %v", got)
	}
	if got := m["capz_encryption_webhook_sku_refresh_interval_seconds"].Labels; len(got) != 0 {
		t.Errorf("sku_refresh_interval_seconds labels = %v", got)
	}
	if !metricnames.SeriesName(m, "capz_encryption_webhook_request_duration_seconds_bucket") ||
		metricnames.SeriesName(m, "capz_encryption_webhook_requests_total_bucket") ||
		metricnames.SeriesName(m, "capz_encryption_webhook_nope") {
		t.Error("SeriesName accepts the wrong names")
	}
}

// TestEveryMetricInTheCodeIsExported finds every string literal in the binary's packages that looks
// like one of our metric names (Name: of the metric options, prometheus.NewDesc) and requires it in
// Exported: a metric added in a package Exported does not run would escape the README and chart
// checks.
func TestEveryMetricInTheCodeIsExported(t *testing.T) {
	m := exported(t)
	root := repoRoot(t)
	name := regexp.MustCompile(`^` + metricnames.Prefix + `[a-z0-9_]+$`)
	found := 0
	for _, dir := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil || !name.MatchString(s) {
					return true
				}
				found++
				if _, ok := m[s]; !ok {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s names metric %s, which metricnames.Exported does not register: add its constructor there", rel, s)
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if found < len(m) {
		t.Errorf("found %d metric names in the code, fewer than the %d exported: the scan is broken", found, len(m))
	}
}

// TestREADMEListsEveryMetric: the README's metrics table names every exported metric, and the README
// names no metric that does not exist.
func TestREADMEListsEveryMetric(t *testing.T) {
	m := exported(t)
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	var missing []string
	for n := range m {
		if !strings.Contains(readme, "| `"+n+"` |") {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the README's metrics table lacks %v", missing)
	}
	for _, n := range regexp.MustCompile(metricnames.Prefix+`[a-z0-9_]+`).FindAllString(readme, -1) {
		if !metricnames.SeriesName(m, n) {
			t.Errorf("the README names %s, which the code does not export", n)
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCheckPromQL(t *testing.T) {
	m := exported(t)
	for expr, want := range map[string]string{
		`sum by (le) (rate(capz_encryption_webhook_request_duration_seconds_bucket{webhook="validate",le="0.1",namespace="x"}[5m]))`:         "",
		`capz_encryption_webhook_sku_catalog_age_seconds > ignoring(region) group_left capz_encryption_webhook_sku_refresh_interval_seconds`: "",
		`rate(capz_encryption_webhook_request_total[5m])`:        "exports no metric capz_encryption_webhook_request_total",
		`capz_encryption_webhook_requests_total{outcom="error"}`: "has no label outcom",
		`capz_encryption_webhook_requests_total_bucket`:          "exports no metric",
		`up == 0`:   "exports no metric up",
		`{job="x"}`: "selects no metric by name",
		`sum(rate(capz_encryption_webhook_requests_total[5m])`:                 "unclosed left parenthesis",
		`capz_encryption_webhook_policy_warn_only{pod="p",namespace="n"} == 1`: "",
	} {
		_, err := metricnames.CheckPromQL(m, expr)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", expr, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: error %v, want %q", expr, err, want)
		}
	}
}
