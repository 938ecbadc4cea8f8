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
	write("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n")
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
