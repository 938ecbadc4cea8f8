package report

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/audit"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func result(ns, name string, findings ...policy.Finding) audit.Result {
	return audit.Result{APIVersion: "infrastructure.cluster.x-k8s.io/v1beta1", Kind: "AzureMachineTemplate", Namespace: ns, Name: name, UID: types.UID("uid-" + name),
		Cluster:  policy.ClusterInfo{Name: "c1"},
		Decision: &policy.Decision{Region: "eastus", RegionSource: "cluster", Findings: findings, MissingDefaults: []string{"osDisk.managedDisk.diskEncryptionSet.id"}}}
}

func f(rule policy.RuleID, a policy.Action, field string) policy.Finding {
	return policy.Finding{Rule: rule, Action: a, Field: field, Message: string(rule) + " at " + field}
}

// TestBuild: one Report per namespace; one result per object and rule (fail when the rule denies,
// warn for warn and audit), one pass result for a clean object, error results for what could not be
// judged; severity, the fields and the region in the result.
func TestBuild(t *testing.T) {
	results := []audit.Result{
		result("team-b", "clean"),
		result("team-a", "two-disks", f(policy.RuleDESRequired, policy.ActionDeny, "spec.a"), f(policy.RuleDESRequired, policy.ActionDeny, "spec.b"),
			f(policy.RuleCreatedBeforeDefault, policy.ActionWarn, "spec"), f(policy.RuleSKUUnknown, policy.ActionAudit, "spec.vmSize")),
		{APIVersion: "infrastructure.cluster.x-k8s.io/v1beta1", Kind: "AzureMachine", Namespace: "team-a", Name: "broken", Error: "not JSON"},
		func() audit.Result {
			r := result("team-a", "vm-gone")
			r.Azure = &audit.AzureRead{Error: "VM x: not found in Azure"}
			return r
		}(),
	}
	reports := Build(results, now)
	if len(reports) != 2 || reports[0].Namespace != "team-a" || reports[1].Namespace != "team-b" {
		t.Fatalf("reports: %d", len(reports))
	}
	a := reports[0]
	if a.Name != Name || a.Labels[LabelManagedBy] != Source || a.Source != Source || a.Kind != "Report" || a.APIVersion != "openreports.io/v1alpha1" {
		t.Errorf("metadata: %+v %+v", a.ObjectMeta, a.TypeMeta)
	}
	if a.Summary != (openreportsv1alpha1.ReportSummary{Fail: 1, Warn: 2, Error: 2, Pass: 1}) {
		t.Errorf("summary = %+v", a.Summary)
	}
	var got []string
	for _, r := range a.Results {
		got = append(got, fmt.Sprintf("%s/%s:%s:%s:%s", r.Subjects[0].Name, r.Rule, r.Result, r.Severity, r.Properties["field"]))
	}
	want := []string{
		"two-disks/des-required:fail:high:spec.a,spec.b",
		"broken/evaluation:error::", "vm-gone/azure-read:error::",
		"two-disks/created-before-default:warn:medium:spec", "two-disks/sku-unknown:warn:low:spec.vmSize",
		"vm-gone/all-rules:pass::",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("results\n got %v\nwant %v", got, want)
	}
	fail := a.Results[0]
	if fail.Policy != Policy || fail.Source != Source || fail.Category != Category || fail.Timestamp.Seconds != now.Unix() || !fail.Scored ||
		fail.Description != "des-required at spec.a; des-required at spec.b" || fail.Properties["region"] != "eastus" || fail.Properties["cluster"] != "c1" ||
		fail.Properties["action"] != "deny" || fail.Properties["missingDefaults"] != "osDisk.managedDisk.diskEncryptionSet.id" ||
		fail.Subjects[0].UID != "uid-two-disks" || fail.Subjects[0].Kind != "AzureMachineTemplate" {
		t.Errorf("fail result = %+v", fail)
	}
	if b := reports[1]; b.Summary.Pass != 1 || len(b.Results) != 1 || b.Results[0].Rule != RulePass {
		t.Errorf("clean namespace: %+v", b.Results)
	}
}

func TestBuildBoundsAReport(t *testing.T) {
	var results []audit.Result
	for i := range MaxResults + 10 {
		results = append(results, result("big", fmt.Sprintf("ok-%04d", i)))
	}
	results = append(results, result("big", "zz-bad", f(policy.RuleDESRequired, policy.ActionDeny, "spec.a")))
	r := Build(results, now)[0]
	if len(r.Results) != MaxResults || r.Results[0].Result != "fail" || r.Summary.Pass != MaxResults+10 || r.Summary.Fail != 1 ||
		r.Configuration == nil || r.Configuration.Limits.MaxResults != MaxResults {
		t.Errorf("%d results, first %s, summary %+v", len(r.Results), r.Results[0].Result, r.Summary)
	}
}

// TestWriter: Reports are created, updated in place, and deleted when their namespace has no guarded
// objects any more; Reports of others are left alone.
func TestWriter(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := openreportsv1alpha1.Install(scheme); err != nil {
		t.Fatal(err)
	}
	foreign := &openreportsv1alpha1.Report{ObjectMeta: metav1.ObjectMeta{Name: "kyverno-report", Namespace: "team-a"}, Source: "kyverno"}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(foreign).Build()
	w := &Writer{Client: c}
	ctx := context.Background()
	publish := func(rs ...audit.Result) {
		t.Helper()
		if err := w.Publish(ctx, &audit.Run{Results: rs, Finished: now}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(ns string) (*openreportsv1alpha1.Report, error) {
		r := &openreportsv1alpha1.Report{}
		return r, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: Name}, r)
	}
	publish(result("team-a", "bad", f(policy.RuleDESRequired, policy.ActionDeny, "spec.a")), result("team-b", "clean"))
	a, err := get("team-a")
	if err != nil || a.Summary.Fail != 1 || a.Labels[LabelManagedBy] != Source {
		t.Fatalf("team-a: %+v %v", a, err)
	}
	// Fixed: the same Report now passes.
	publish(result("team-a", "bad"), result("team-b", "clean"))
	a, _ = get("team-a")
	if a.Summary.Fail != 0 || a.Summary.Pass != 1 {
		t.Errorf("team-a after the fix: %+v", a.Summary)
	}
	// team-b's objects are gone: its Report goes too; the foreign one stays.
	publish(result("team-a", "bad"))
	if _, err := get("team-b"); err == nil {
		t.Error("the stale Report of team-b was not deleted")
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(foreign), &openreportsv1alpha1.Report{}); err != nil {
		t.Errorf("another tool's Report was touched: %v", err)
	}
}
