package chart_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/metricnames"
)

// The alerts of the webhook's own group the chart promises (issue 12): one per failure an operator
// must hear about. The keys and audit groups have their own tests (template_test.go).
var wantAlerts = []string{
	"CAPZEncryptionWebhookErrors",       // the webhook answers with errors
	"CAPZEncryptionDenialSpike",         // denials far above the day before
	"CAPZEncryptionPolicyReloadFailing", // a policy file it rejects
	"CAPZEncryptionCatalogStale",        // live data older than twice the refresh interval
	"CAPZEncryptionAzureThrottled",      // Azure answers 429
	"CAPZEncryptionWarnOnly",            // warnOnly left on
	"CAPZEncryptionCELSyncStale",        // with a cel.mode: the compiled admission policies not kept in sync
}

// webhookGroup is the name of the group of the webhook's own alerts.
const webhookGroup = "capz-encryption-webhook"

type alertRule struct {
	Group       string            `json:"-"`
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func alertRules(t *testing.T, objs []*unstructured.Unstructured) []alertRule {
	t.Helper()
	pr := one(t, objs, "PrometheusRule")
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	var out []alertRule
	for _, g := range groups {
		b, _ := json.Marshal(g.(map[string]any)["rules"])
		var rules []alertRule
		if err := json.Unmarshal(b, &rules); err != nil {
			t.Fatal(err)
		}
		for i := range rules {
			rules[i].Group, _ = g.(map[string]any)["name"].(string)
		}
		out = append(out, rules...)
	}
	return out
}

func exportedMetrics(t *testing.T) map[string]metricnames.Metric {
	t.Helper()
	m, err := metricnames.Exported()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPrometheusRule: every alert's expression (all groups, the audit's included) parses with
// Prometheus' parser and selects only metrics and labels the code registers; the webhook group's are
// scoped to the release and carry the alertLabels; annotations are valid templates.
func TestPrometheusRule(t *testing.T) {
	exported := exportedMetrics(t)
	objs := render(t, scenarioArgs(t, "observability")...)
	pr := one(t, objs, "PrometheusRule")
	if pr.GetLabels()["release"] != "kube-prometheus-stack" {
		t.Error("prometheusRule.labels not applied")
	}
	// With the audit and the CEL layer on, so that their alerts are checked too; without a cel.mode,
	// no alert about it.
	if slices.ContainsFunc(alertRules(t, objs), func(r alertRule) bool { return r.Alert == "CAPZEncryptionCELSyncStale" }) {
		t.Error("CAPZEncryptionCELSyncStale without a cel.mode")
	}
	rules := alertRules(t, render(t, append(scenarioArgs(t, "observability"), "--set", "audit.enabled=true", "--set", "cel.mode=cel-and-webhook")...))
	var names []string
	for _, r := range rules {
		if r.Expr == "" {
			t.Errorf("%s: no expression", r.Alert)
		}
		for _, k := range []string{"summary", "description"} {
			if r.Annotations[k] == "" {
				t.Errorf("%s: no %s", r.Alert, k)
			}
		}
		if r.Labels["severity"] == "" {
			t.Errorf("%s: no severity", r.Alert)
		}
		if _, err := metricnames.CheckPromQL(exported, r.Expr); err != nil {
			t.Errorf("%s: %v\n%s", r.Alert, err, r.Expr)
		}
		// Prometheus expands annotations as Go templates with $labels and $value.
		for k, v := range r.Annotations {
			_, err := template.New(k).Funcs(template.FuncMap{"humanize": fmt.Sprint, "humanizeDuration": fmt.Sprint}).
				Parse("{{$labels := .Labels}}{{$value := .Value}}" + v)
			if err != nil {
				t.Errorf("%s: annotation %s: %v", r.Alert, k, err)
			}
		}
		if r.Group != webhookGroup {
			continue
		}
		names = append(names, r.Alert)
		found, _ := metricnames.CheckPromQL(exported, r.Expr)
		if len(found) == 0 {
			t.Errorf("%s selects no metric", r.Alert)
		}
		// Every selector is scoped to the release's series.
		if n := strings.Count(r.Expr, `namespace="`+ns+`"`); n != strings.Count(r.Expr, "capz_encryption_webhook_") {
			t.Errorf("%s: %d of %d selectors are scoped to namespace %s", r.Alert, n, strings.Count(r.Expr, "capz_encryption_webhook_"), ns)
		}
		if r.Labels["team"] != "platform" || r.Annotations["runbook_url"] == "" {
			t.Errorf("%s: labels %v annotations %v, want the alertLabels and a runbook", r.Alert, r.Labels, r.Annotations)
		}
	}
	if !slices.Equal(names, wantAlerts) {
		t.Errorf("alerts %v, want %v", names, wantAlerts)
	}

	// Options: another selector, an alert left out.
	objs = render(t, "--set", "metrics.prometheusRule.enabled=true", "--set", `metrics.prometheusRule.selector=job="cew-metrics"`,
		"--set-json", `metrics.prometheusRule.disabledAlerts=["CAPZEncryptionWarnOnly","CAPZEncryptionKeyExpired"]`)
	rules = alertRules(t, objs)
	if slices.ContainsFunc(rules, func(r alertRule) bool {
		return r.Alert == "CAPZEncryptionWarnOnly" || r.Alert == "CAPZEncryptionKeyExpired"
	}) {
		t.Errorf("disabledAlerts not applied: %d rules", len(rules))
	}
	for _, r := range rules {
		if r.Group != webhookGroup {
			continue
		}
		if strings.Contains(r.Expr, "namespace=") || !strings.Contains(r.Expr, `job="cew-metrics"`) {
			t.Errorf("%s: selector not applied: %s", r.Alert, r.Expr)
		}
		if _, err := metricnames.CheckPromQL(exported, r.Expr); err != nil {
			t.Errorf("%s: %v", r.Alert, err)
		}
	}
	if err := renderErr(t, "--set", "metrics.enabled=false", "--set", "metrics.prometheusRule.enabled=true"); err == nil || !strings.Contains(err.Error(), "metrics.prometheusRule.enabled needs metrics.enabled") {
		t.Errorf("a PrometheusRule without metrics: %v", err)
	}
	if err := renderErr(t, "--set", "metrics.prometheusRule.enabled=true", "--set-json", `metrics.prometheusRule.disabledAlerts=["NoSuchAlert"]`); err == nil {
		t.Error("an unknown alert name in disabledAlerts is accepted")
	}
	// A group whose alerts are all left out is not rendered (the CRD wants rules in every group).
	objs = render(t, "--set", "metrics.prometheusRule.enabled=true",
		"--set-json", `metrics.prometheusRule.disabledAlerts=["CAPZEncryptionKeyExpiresSoon","CAPZEncryptionKeyExpired"]`)
	for _, r := range alertRules(t, objs) {
		if r.Group != webhookGroup {
			t.Errorf("alert %s of group %s rendered", r.Alert, r.Group)
		}
	}
	groups, _, _ := unstructured.NestedSlice(one(t, objs, "PrometheusRule").Object, "spec", "groups")
	if len(groups) != 1 {
		t.Errorf("%d groups, want the webhook's only", len(groups))
	}
}

// TestGrafanaDashboard: the dashboard ConfigMap is labelled for the Grafana sidecar and every query
// of every panel and variable selects only metrics and labels the code registers.
func TestGrafanaDashboard(t *testing.T) {
	exported := exportedMetrics(t)
	objs := render(t, scenarioArgs(t, "observability")...)
	var cm *corev1.ConfigMap
	for _, o := range chart.Find(objs, "ConfigMap") {
		if strings.HasSuffix(o.GetName(), "-dashboard") {
			cm = typed[*corev1.ConfigMap](t, o)
		}
	}
	if cm == nil {
		t.Fatal("no dashboard ConfigMap")
	}
	if cm.Labels["grafana_dashboard"] != "1" || cm.Annotations["grafana_folder"] != "Platform" {
		t.Errorf("labels %v annotations %v: want grafana_dashboard=1 and the folder annotation", cm.Labels, cm.Annotations)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
			Datasource struct{ UID string } `json:"datasource"`
		} `json:"panels"`
	}
	if len(cm.Data) != 1 {
		t.Fatalf("data keys %v", cm.Data)
	}
	for _, v := range cm.Data {
		if err := json.Unmarshal([]byte(v), &dash); err != nil {
			t.Fatal(err)
		}
	}
	if dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard uid %q, %d panels", dash.UID, len(dash.Panels))
	}
	// Grafana's variables in queries, replaced by what Grafana would put there.
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$namespace", ns)
	seen := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q, %d queries", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			names, err := metricnames.CheckPromQL(exported, grafana.Replace(q.Expr))
			if err != nil {
				t.Errorf("panel %q: %v\n%s", p.Title, err, q.Expr)
			}
			for _, n := range names {
				seen[n] = true
			}
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := json.Marshal(v.Query)
		var query struct{ Query string }
		_ = json.Unmarshal(q, &query)
		m := labelValues.FindStringSubmatch(query.Query)
		if m == nil || !metricnames.SeriesName(exported, m[1]) || !slices.Contains(metricnames.TargetLabels, m[2]) && !slices.Contains(exported[m[1]].Labels, m[2]) {
			t.Errorf("variable %s: query %q", v.Name, query.Query)
		}
	}
	if len(seen) < 8 {
		t.Errorf("the dashboard queries only %d metrics", len(seen))
	}
	// In the sidecar's namespace, when it watches only its own.
	objs = render(t, "--set", "metrics.grafanaDashboard.enabled=true", "--set", "metrics.grafanaDashboard.namespace=monitoring")
	for _, o := range chart.Find(objs, "ConfigMap") {
		if strings.HasSuffix(o.GetName(), "-dashboard") && o.GetNamespace() != "monitoring" {
			t.Errorf("dashboard in namespace %s", o.GetNamespace())
		}
	}
}
