package chart_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// The values table sits between these lines, in the chart's README.md (from README.md.gotmpl) and in
// the project README.
const (
	tableStart = "<!-- helm-docs values table: generated from values.yaml (make chart-docs); do not edit by hand -->\n"
	tableEnd   = "<!-- end of the helm-docs values table -->\n"
)

// helmDocs runs the helm-docs the Makefile installed (HELM_DOCS) on the chart and returns the README
// it renders, without writing it.
func helmDocs(t *testing.T) string {
	t.Helper()
	bin := toolPath(t, "HELM_DOCS", "helm-docs")
	dir, err := chart.Dir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := runTool(filepath.Dir(dir), bin, "--chart-search-root", ".", "--chart-to-generate", filepath.Base(dir),
		"--sort-values-order", "file", "--log-level", "error", "--dry-run")
	if err != nil {
		t.Fatalf("helm-docs: %v", err)
	}
	return out
}

func between(t *testing.T, what, s string) (before, table, after string) {
	t.Helper()
	i, j := strings.Index(s, tableStart), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: no values table markers (%q ... %q)", what, tableStart, tableEnd)
	}
	return s[:i+len(tableStart)], s[i+len(tableStart) : j], s[j:]
}

// TestValuesTables: the chart's README.md and the project README's values table are what helm-docs
// makes of values.yaml today, and every value has a description. make chart-docs (-args -update)
// rewrites both.
func TestValuesTables(t *testing.T) {
	generated := helmDocs(t)
	_, table, _ := between(t, "helm-docs output", generated)
	rows := 0
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[2:] {
		cells := strings.Split(line, " | ")
		rows++
		if len(cells) < 4 || strings.TrimSpace(strings.TrimSuffix(cells[len(cells)-1], "|")) == "" {
			t.Errorf("value without a description (a `# --` comment in values.yaml): %s", line)
		}
	}
	if rows < 50 {
		t.Errorf("the values table has %d rows", rows)
	}

	root := repoRoot(t)
	chartReadme := filepath.Join(root, "charts", "capz-encryption-webhook", "README.md")
	projectReadme := filepath.Join(root, "README.md")
	readme, err := os.ReadFile(projectReadme)
	if err != nil {
		t.Fatal(err)
	}
	before, current, after := between(t, "README.md", string(readme))
	if *update {
		if err := os.WriteFile(chartReadme, []byte(generated), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(projectReadme, []byte(before+table+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(chartReadme)
	if err != nil || string(got) != generated {
		t.Errorf("charts/capz-encryption-webhook/README.md is not what helm-docs makes of values.yaml (%v): run `make chart-docs`", err)
	}
	if current != table {
		t.Errorf("the README's values table is not what helm-docs makes of values.yaml: run `make chart-docs`")
	}
}
