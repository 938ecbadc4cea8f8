// Package report turns the results of an audit into openreports.io/v1alpha1 Report objects — one per
// namespace, one result per object and rule — and keeps them in the cluster up to date, so that
// `kubectl get reports`, Policy Reporter and other dashboards of the OpenReports format show them.
package report

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/audit"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

const (
	// Source names the engine in every Report and result.
	Source = "capz-encryption-webhook"
	// Name is the name of the Report in each namespace.
	Name = "capz-encryption-webhook"
	// Policy is the policy every result belongs to; its rules are the webhook's rule IDs.
	Policy = "capz-encryption-webhook"
	// Category groups the results in dashboards.
	Category = "Disk encryption"
	// LabelManagedBy marks the Reports the audit owns: stale ones are found and deleted by it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// RulePass is the rule of the one pass result of an object no rule hits; RuleEvaluation and
	// RuleAzureRead are the rules of error results.
	RulePass       = "all-rules"
	RuleEvaluation = "evaluation"
	RuleAzureRead  = "azure-read"
	// MaxResults bounds one Report (an object in etcd is at most 1.5 MiB): failures, errors and
	// warnings are kept first; the summary still counts everything.
	MaxResults = 1000
)

var order = map[openreportsv1alpha1.Result]int{"fail": 0, "error": 1, "warn": 2, "pass": 3}

// Build returns one Report per namespace that has results, sorted by namespace.
func Build(results []audit.Result, now time.Time) []*openreportsv1alpha1.Report {
	byNS := map[string][]openreportsv1alpha1.ReportResult{}
	var namespaces []string
	for _, r := range results {
		if _, ok := byNS[r.Namespace]; !ok {
			namespaces = append(namespaces, r.Namespace)
		}
		byNS[r.Namespace] = append(byNS[r.Namespace], resultsOf(r, now)...)
	}
	sort.Strings(namespaces)
	out := make([]*openreportsv1alpha1.Report, 0, len(namespaces))
	for _, ns := range namespaces {
		out = append(out, newReport(ns, byNS[ns]))
	}
	return out
}

func newReport(namespace string, results []openreportsv1alpha1.ReportResult) *openreportsv1alpha1.Report {
	rep := &openreportsv1alpha1.Report{
		TypeMeta:   metav1.TypeMeta{APIVersion: openreportsv1alpha1.GroupVersion.String(), Kind: "Report"},
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: namespace, Labels: map[string]string{LabelManagedBy: Source}},
		Source:     Source,
	}
	for _, r := range results {
		switch r.Result {
		case "pass":
			rep.Summary.Pass++
		case "fail":
			rep.Summary.Fail++
		case "warn":
			rep.Summary.Warn++
		case "error":
			rep.Summary.Error++
		}
	}
	slices.SortStableFunc(results, func(a, b openreportsv1alpha1.ReportResult) int { return cmp.Compare(order[a.Result], order[b.Result]) })
	if len(results) > MaxResults {
		results = results[:MaxResults]
		rep.Configuration = &openreportsv1alpha1.ReportConfiguration{Limits: openreportsv1alpha1.Limits{MaxResults: MaxResults}}
	}
	rep.Results = results
	return rep
}

// resultsOf is one object's results: one per rule it hits (fail when any of the rule's findings
// denies, warn otherwise — warn and audit actions), an error result when it could not be evaluated
// or its Azure resources could not be read, and a single pass result when nothing is wrong.
func resultsOf(r audit.Result, now time.Time) []openreportsv1alpha1.ReportResult {
	subject := []corev1.ObjectReference{{APIVersion: r.APIVersion, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, UID: r.UID}}
	ts := metav1.Timestamp{Seconds: now.Unix()}
	base := func(rule string, res openreportsv1alpha1.Result, sev openreportsv1alpha1.ResultSeverity, msg string, props map[string]string) openreportsv1alpha1.ReportResult {
		return openreportsv1alpha1.ReportResult{Source: Source, Policy: Policy, Rule: rule, Category: Category, Severity: sev,
			Timestamp: ts, Result: res, Scored: true, Subjects: subject, Description: msg, Properties: props}
	}
	var out []openreportsv1alpha1.ReportResult
	if r.Error != "" {
		out = append(out, base(RuleEvaluation, "error", "", r.Error, nil))
	}
	if r.Azure != nil && r.Azure.Error != "" {
		out = append(out, base(RuleAzureRead, "error", "", "could not read what Azure built for this machine: "+r.Azure.Error, nil))
	}
	d := r.Decision
	if d == nil {
		return out
	}
	props := func() map[string]string {
		p := map[string]string{}
		put := func(k, v string) {
			if v != "" {
				p[k] = v
			}
		}
		put("region", d.Region)
		put("regionSource", d.RegionSource)
		put("cluster", r.Cluster.Name)
		put("default", d.DefaultName)
		put("missingDefaults", strings.Join(d.MissingDefaults, ","))
		if r.Azure != nil {
			put("azureResource", r.Azure.Resource)
		}
		return p
	}
	var rules []policy.RuleID
	byRule := map[policy.RuleID][]policy.Finding{}
	for _, f := range d.Findings {
		if _, ok := byRule[f.Rule]; !ok {
			rules = append(rules, f.Rule)
		}
		byRule[f.Rule] = append(byRule[f.Rule], f)
	}
	for _, rule := range rules {
		fs := byRule[rule]
		action := policy.ActionAudit
		var fields, msgs []string
		for _, f := range fs {
			if f.Action.Severity() > action.Severity() {
				action = f.Action
			}
			fields = append(fields, f.Field)
			msgs = append(msgs, f.Message)
		}
		res, sev := openreportsv1alpha1.Result("warn"), severity(action)
		if action == policy.ActionDeny {
			res = "fail"
		}
		p := props()
		p["action"] = string(action)
		p["field"] = strings.Join(slices.Compact(fields), ",")
		out = append(out, base(string(rule), res, sev, strings.Join(msgs, "; "), p))
	}
	if len(rules) == 0 && r.Error == "" {
		out = append(out, base(RulePass, "pass", "", "no rule of the encryption policy is hit", props()))
	}
	return out
}

// severity follows the rule's effective action: what the policy denies is high, what it warns about
// medium, what it only records low.
func severity(a policy.Action) openreportsv1alpha1.ResultSeverity {
	switch a {
	case policy.ActionDeny:
		return "high"
	case policy.ActionWarn:
		return "medium"
	}
	return "low"
}

// Writer keeps the audit's Reports in the cluster: it creates or updates the Report of every
// namespace with results and deletes its Reports in namespaces that have none any more.
type Writer struct {
	Client client.Client
}

// Name names the sink in logs.
func (w *Writer) Name() string { return "reports" }

// Publish writes the run's Reports.
func (w *Writer) Publish(ctx context.Context, run *audit.Run) error {
	reports := Build(run.Results, run.Finished)
	keep := map[string]bool{}
	for _, want := range reports {
		keep[want.Namespace] = true
		got := &openreportsv1alpha1.Report{ObjectMeta: metav1.ObjectMeta{Name: want.Name, Namespace: want.Namespace}}
		if _, err := controllerutil.CreateOrUpdate(ctx, w.Client, got, func() error {
			if got.Labels == nil {
				got.Labels = map[string]string{}
			}
			for k, v := range want.Labels {
				got.Labels[k] = v
			}
			got.Source, got.Scope, got.ScopeSelector = want.Source, nil, nil
			got.Configuration, got.Summary, got.Results = want.Configuration, want.Summary, want.Results
			return nil
		}); err != nil {
			return fmt.Errorf("writing Report %s/%s: %w", want.Namespace, want.Name, err)
		}
	}
	// Reports of namespaces without guarded objects any more. They are few (one per namespace), so
	// one list is enough.
	var list openreportsv1alpha1.ReportList
	if err := w.Client.List(ctx, &list, client.MatchingLabels{LabelManagedBy: Source}); err != nil {
		return fmt.Errorf("listing the audit's Reports: %w", err)
	}
	for i := range list.Items {
		r := &list.Items[i]
		if r.Name != Name || keep[r.Namespace] {
			continue
		}
		if err := w.Client.Delete(ctx, r); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting the stale Report %s/%s: %w", r.Namespace, r.Name, err)
		}
	}
	return nil
}
