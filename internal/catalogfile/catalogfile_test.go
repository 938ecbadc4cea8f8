package catalogfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func record(size, region string) string {
	return `[{"resourceType":"virtualMachines","name":"` + size + `","locations":["` + region + `"],` +
		`"capabilities":[{"name":"EncryptionAtHostSupported","value":"True"}],"restrictions":[]}]`
}

// TestCatalogFileReloaded: the catalog file is documented as hot-reloaded, like the policy: a new
// file takes effect without a restart, and a bad one leaves the last good catalog in force.
func TestCatalogFileReloaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "skus.json")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(record("Standard_Old_v1", "eastus"))
	m := NewMetrics(prometheus.NewRegistry())
	s, err := New(path, m, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lookup("eastus", "Standard_Old_v1"); !ok {
		t.Fatal("initial catalog not in force")
	}
	write(record("Standard_New_v2", "westus2"))
	s.reload()
	if _, ok := s.Lookup("westus2", "Standard_New_v2"); !ok || s.HasRegion("eastus") {
		t.Errorf("the new file is not in force: regions %v", s.Regions())
	}
	write(`[{"resourceType":"virtualMachines","name":`)
	s.reload()
	if _, ok := s.Lookup("westus2", "Standard_New_v2"); !ok || testutil.ToFloat64(m.stale) != 1 {
		t.Errorf("a bad file replaced the catalog, or is not reported stale (%v)", testutil.ToFloat64(m.stale))
	}
	// Unreadable for a moment (a ConfigMap volume swapping its link), then the file in force again:
	// no longer stale, without anyone editing it.
	write(record("Standard_New_v2", "westus2"))
	s.reload()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s.reload()
	if testutil.ToFloat64(m.stale) != 1 {
		t.Error("an unreadable file is not reported stale")
	}
	write(record("Standard_New_v2", "westus2"))
	s.reload()
	if testutil.ToFloat64(m.stale) != 0 {
		t.Error("the file in force is back, but the catalog is still reported stale")
	}
	if _, err := New(filepath.Join(t.TempDir(), "missing.json"), NewMetrics(prometheus.NewRegistry()), logr.Discard()); err == nil {
		t.Error("a missing catalog file at start must be an error")
	}
}
