package chart_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// TestReportsCRDIsTheModulesOwn: the chart's copy of the openreports.io Report CRD is the file of the
// github.com/openreports/reports-api version go.mod requires, byte for byte, so the CRD the chart
// installs matches the Go types the audit writes. Update it with
// cp $(go list -m -f '{{.Dir}}' github.com/openreports/reports-api)/config/crd/openreports.io_reports.yaml charts/capz-encryption-webhook/files/
func TestReportsCRDIsTheModulesOwn(t *testing.T) {
	root, err := chart.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api")
	cmd.Dir = root
	dir, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m github.com/openreports/reports-api: %v", err)
	}
	want, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "config", "crd", "openreports.io_reports.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "charts", "capz-encryption-webhook", "files", "openreports.io_reports.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("charts/capz-encryption-webhook/files/openreports.io_reports.yaml differs from the module's config/crd/openreports.io_reports.yaml: copy it again")
	}
}
