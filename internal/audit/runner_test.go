package audit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// recordingSink keeps the runs it is given.
type recordingSink struct {
	mu   sync.Mutex
	runs []*Run
	err  error
}

func (s *recordingSink) Publish(_ context.Context, r *Run) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, r)
	return s.err
}

func (s *recordingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

func oneNamespace(t *testing.T) *apiserver {
	a := newAPIServer()
	a.namespaces["team"] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}
	for name, des := range map[string]string{"bad": "", "good": desEast} {
		a.add(capz("AzureMachineTemplate", "team", name, nil, map[string]any{"template": map[string]any{"spec": machineSpec(des)}})).
			SetAnnotations(map[string]string{policy.AnnotationLocation: "eastus"})
	}
	return a
}

func TestRunnerPublishesAndCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	sink := &recordingSink{}
	r := NewRunner(scanner(oneNamespace(t), mustPolicy(t)), time.Hour, m, logr.Discard(), sink, m)
	var _ manager.LeaderElectionRunnable = r
	if !r.NeedLeaderElection() {
		t.Fatal("the audit must run on the elected replica only")
	}
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.count() != 1 || len(sink.runs[0].Results) != 2 || sink.runs[0].Summary.Denied != 1 {
		t.Fatalf("runs: %+v", sink.runs)
	}
	want := `
# HELP capz_encryption_webhook_violations Findings of the last background audit of stored objects, by rule, effective action (deny, warn, audit) and namespace; reset by every run.
# TYPE capz_encryption_webhook_violations gauge
capz_encryption_webhook_violations{action="deny",namespace="team",rule="des-required"} 1
capz_encryption_webhook_violations{action="warn",namespace="team",rule="created-before-default"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "capz_encryption_webhook_violations"); err != nil {
		t.Error(err)
	}
	if v := testutil.ToFloat64(m.lastRun); v < float64(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()) {
		t.Errorf("last run = %v", v)
	}
	// The next run finds nothing: the gauge is reset, not left at the old count.
	r.Scanner.Policy = func() *policy.Policy {
		p := mustPolicy(t)
		p.Actions[policy.RuleDESRequired] = policy.ActionAudit
		return p
	}
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want = strings.Replace(want, `{action="deny",`, `{action="audit",`, 1)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "capz_encryption_webhook_violations"); err != nil {
		t.Error(err)
	}
	// A failing sink fails the run, which is counted.
	sink.err = errors.New("apiserver down")
	if err := r.RunOnce(context.Background()); err == nil {
		t.Fatal("a failing sink must fail the run")
	}
	if testutil.ToFloat64(m.runs.WithLabelValues("error")) != 1 || testutil.ToFloat64(m.runs.WithLabelValues("success")) != 2 {
		t.Error("runs_total does not count the outcomes")
	}
}

// TestRunnerTrigger: the runner runs at start, and again soon after a trigger rather than after the
// interval; triggers in a burst coalesce.
func TestRunnerTrigger(t *testing.T) {
	sink := &recordingSink{}
	r := NewRunner(scanner(oneNamespace(t), mustPolicy(t)), time.Hour, nil, logr.Discard(), sink)
	r.Settle = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Start(ctx); close(done) }()
	waitFor(t, func() bool { return sink.count() == 1 })
	for range 5 {
		r.Trigger()
	}
	waitFor(t, func() bool { return sink.count() == 2 })
	time.Sleep(200 * time.Millisecond)
	if sink.count() != 2 {
		t.Errorf("a burst of triggers ran the audit %d times", sink.count()-1)
	}
	cancel()
	<-done
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEventsRateLimited: one Warning event per offending object; the same findings again only after
// Repeat; changed findings at once; compliant objects none.
func TestEventsRateLimited(t *testing.T) {
	rec := events.NewFakeRecorder(100)
	rec.Verbose = true
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	e := &Events{Recorder: rec, Repeat: time.Hour, Now: func() time.Time { return now }}
	s := scanner(oneNamespace(t), mustPolicy(t))
	run := func() []string {
		t.Helper()
		var results []Result
		if _, err := s.Run(context.Background(), func(r Result) error { results = append(results, r); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := e.Publish(context.Background(), &Run{Results: results}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(rec.Events) > 0 {
			got = append(got, <-rec.Events)
		}
		return got
	}
	got := run()
	if len(got) != 1 || !strings.HasPrefix(got[0], "Warning EncryptionPolicyViolation Audit capz-encryption-webhook audit: [des-required:deny] spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id") ||
		!strings.Contains(got[0], "[created-before-default:warn]") || !strings.Contains(got[0], "kind=AzureMachineTemplate") {
		t.Fatalf("events = %q", got)
	}
	if got := run(); len(got) != 0 {
		t.Errorf("the same findings were announced again within Repeat: %q", got)
	}
	now = now.Add(2 * time.Hour)
	if got := run(); len(got) != 1 {
		t.Errorf("after Repeat: %q", got)
	}
	s.Policy = func() *policy.Policy {
		p := mustPolicy(t)
		p.Actions[policy.RuleDESRequired] = policy.ActionWarn
		return p
	}
	if got := run(); len(got) != 1 || !strings.HasPrefix(got[0], "Warning EncryptionPolicyWarning") {
		t.Errorf("changed findings: %q", got)
	}
}

func TestEventNoteIsBounded(t *testing.T) {
	var fs []policy.Finding
	for range 50 {
		fs = append(fs, policy.Finding{Rule: policy.RuleDESRequired, Action: policy.ActionDeny, Field: "spec.x", Message: strings.Repeat("é", 30)})
	}
	n := eventNote(fs, nil)
	if len(n) > maxNote || !strings.HasSuffix(n, "...") || !strings.HasPrefix(n, "capz-encryption-webhook audit: [des-required:deny]") {
		t.Errorf("note of %d bytes: %q", len(n), n[:80])
	}
}
