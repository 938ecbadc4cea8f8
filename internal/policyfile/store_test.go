package policyfile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

func writePolicy(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyHotReload(t *testing.T) {
	path := writePolicy(t, "warnOnly: false\n")
	logs := &testsupport.LogLines{}
	store, err := New(path, NewMetrics(prometheus.NewRegistry()), logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if store.Get().WarnOnly {
		t.Fatal("initial policy")
	}
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		store.reload()
	}
	write("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nwarnOnly: true\n")
	if !store.Get().WarnOnly {
		t.Fatal("good file not loaded")
	}
	write("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nwarnOnli: false\n")
	if !store.Get().WarnOnly {
		t.Fatal("a bad file replaced the last good policy")
	}
	if !strings.Contains(strings.Join(logs.Lines(), "\n"), `unknown key \"warnOnli\"`) {
		t.Errorf("the rejection must be logged with the reason: %v", logs.Lines())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { store.Watch(ctx, 5*time.Millisecond); close(done) }()
	// The watcher alone reloads from here on (reload is not meant to run concurrently with it).
	if err := os.WriteFile(path, []byte("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); store.Get().WarnOnly; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not load the new file")
		}
	}
	cancel()
	<-done
	if _, err := New(filepath.Join(t.TempDir(), "missing.yaml"), NewMetrics(prometheus.NewRegistry()), logr.Discard()); err == nil {
		t.Error("a missing policy file at start must be an error")
	}
}

// TestDeprecatedKeyIsLogged: the old dryRun key still works, and the store says it is deprecated.
func TestDeprecatedKeyIsLogged(t *testing.T) {
	logs := &testsupport.LogLines{}
	store, err := New(writePolicy(t, "dryRun: true\n"), NewMetrics(prometheus.NewRegistry()), logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if !store.Get().WarnOnly {
		t.Error("dryRun: true must still turn denials into warnings")
	}
	if !strings.Contains(strings.Join(logs.Lines(), "\n"), "dryRun is deprecated: use warnOnly") {
		t.Errorf("no deprecation warning logged: %v", logs.Lines())
	}
}

// TestStalePolicyAndRestartWithABadFile: a rejected file makes the store stale (metric and Stale)
// while the last good policy serves; a restart with the bad file still on disk starts from the last
// good copy this replica kept, or, without one, from the built-in policy in warn-only mode — never
// with an error that would crash-loop every replica — and a fixed file clears the state.
func TestStalePolicyAndRestartWithABadFile(t *testing.T) {
	path := writePolicy(t, "requireCustomerManagedKeys: true\n")
	lastGood := filepath.Join(t.TempDir(), "last-good.yaml")
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	store, err := New(path, m, logr.Discard(), WithFallback(lastGood))
	if err != nil {
		t.Fatal(err)
	}
	if store.Stale() || testutil.ToFloat64(m.stale) != 0 || testutil.ToFloat64(m.lastSuccess) == 0 {
		t.Fatal("a good file at start must not be stale")
	}
	if copied, err := os.ReadFile(lastGood); err != nil || !strings.Contains(string(copied), "requireCustomerManagedKeys: true") {
		t.Fatalf("last good copy: %q %v", copied, err)
	}
	bad := "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nrequireCustomerManagedKey: true\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	store.reload()
	if !store.Stale() || testutil.ToFloat64(m.stale) != 1 || !store.Get().RequireCustomerManagedKeys {
		t.Fatalf("after a rejected edit: stale=%v metric=%v policy=%+v", store.Stale(), testutil.ToFloat64(m.stale), store.Get())
	}

	// Restart (same pod: the emptyDir copy is there).
	restarted, err := New(path, NewMetrics(prometheus.NewRegistry()), logr.Discard(), WithFallback(lastGood))
	if err != nil {
		t.Fatalf("a restart with a bad file must not fail: %v", err)
	}
	if p := restarted.Get(); !restarted.Stale() || !p.RequireCustomerManagedKeys || p.WarnOnly || !strings.Contains(p.Source, "last good copy") {
		t.Errorf("restart with a copy: stale=%v %+v", restarted.Stale(), p)
	}
	// New pod: no copy. The built-in policy, warn-only.
	fresh, err := New(path, NewMetrics(prometheus.NewRegistry()), logr.Discard(), WithFallback(filepath.Join(t.TempDir(), "none.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if p := fresh.Get(); !fresh.Stale() || !p.WarnOnly || p.RequireCustomerManagedKeys || !strings.Contains(p.Source, "built-in (warn-only") {
		t.Errorf("restart without a copy: stale=%v %+v", fresh.Stale(), p)
	}
	// Without the fallback, the old behaviour: an error (exit 2).
	if _, err := New(path, NewMetrics(prometheus.NewRegistry()), logr.Discard()); err == nil || !strings.Contains(err.Error(), "requireCustomerManagedKey") {
		t.Errorf("without fallback: %v", err)
	}
	// The file is fixed: in force, not stale.
	if err := os.WriteFile(path, []byte("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh.reload()
	if p := fresh.Get(); fresh.Stale() || p.WarnOnly || p.Source != path {
		t.Errorf("after the fix: stale=%v %+v", fresh.Stale(), p)
	}
}

// TestAlertGauges: the gauges the chart's PrometheusRule alerts on follow the policy file. stale stays
// 1 for as long as a rejected file stays on disk (the reload counter counts it once), and goes back
// to 0 when the file in force is readable again after a read error; warn_only follows the policy in
// force.
func TestAlertGauges(t *testing.T) {
	path := writePolicy(t, "")
	m := NewMetrics(prometheus.NewRegistry())
	store, err := New(path, m, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, stale, warnOnly float64) {
		t.Helper()
		if got := testutil.ToFloat64(m.stale); got != stale {
			t.Errorf("%s: policy_stale = %v, want %v", step, got, stale)
		}
		if got := testutil.ToFloat64(m.warnOnly); got != warnOnly {
			t.Errorf("%s: policy_warn_only = %v, want %v", step, got, warnOnly)
		}
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const good = "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nwarnOnly: true\n"
	const bad = "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nwarnOnli: false\n"
	check("start", 0, 0)
	write(good)
	store.reload()
	check("warnOnly on", 0, 1)
	write(bad)
	store.reload()
	store.reload()
	check("rejected file, read twice", 1, 1)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	store.reload()
	check("file gone", 1, 1)
	write(bad)
	store.reload()
	check("the same rejected file back", 1, 1)
	write(good)
	store.reload()
	check("fixed", 0, 1)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	store.reload()
	check("file gone again", 1, 1)
	write(good)
	store.reload()
	check("the file in force back after a read error", 0, 1)
}
