package chart_test

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// TestArtifactHubAnnotations: Artifact Hub reads these from Chart.yaml; wrong ones show wrong data
// (or none) on the package page.
func TestArtifactHubAnnotations(t *testing.T) {
	var meta struct {
		AppVersion  string            `json:"appVersion"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "charts/capz-encryption-webhook/Chart.yaml")), &meta); err != nil {
		t.Fatal(err)
	}
	a := meta.Annotations
	var images []struct{ Name, Image string }
	if err := yaml.UnmarshalStrict([]byte(a["artifacthub.io/images"]), &images); err != nil || len(images) != 1 {
		t.Fatalf("artifacthub.io/images: %v %+v", err, images)
	}
	dep := one(t, render(t), "Deployment")
	if c := dep.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any); images[0].Image != c["image"] {
		t.Errorf("artifacthub.io/images names %s, the chart runs %s", images[0].Image, c["image"])
	}
	var links []struct{ Name, URL string }
	if err := yaml.UnmarshalStrict([]byte(a["artifacthub.io/links"]), &links); err != nil || len(links) == 0 {
		t.Fatalf("artifacthub.io/links: %v", err)
	}
	for _, l := range links {
		if u, err := url.Parse(l.URL); err != nil || u.Scheme != "https" || l.Name == "" {
			t.Errorf("link %+v", l)
		}
	}
	var changes []struct{ Kind, Description string }
	if err := yaml.UnmarshalStrict([]byte(a["artifacthub.io/changes"]), &changes); err != nil || len(changes) == 0 {
		t.Fatalf("artifacthub.io/changes: %v", err)
	}
	for _, c := range changes {
		if !slices.Contains([]string{"added", "changed", "deprecated", "removed", "fixed", "security"}, c.Kind) || c.Description == "" {
			t.Errorf("change %+v: kind must be added, changed, deprecated, removed, fixed or security", c)
		}
	}
	if !slices.Contains([]string{"ai-machine-learning", "database", "integration-delivery", "monitoring-logging", "networking", "security", "storage", "streaming-messaging", "skip-prediction"}, a["artifacthub.io/category"]) {
		t.Errorf("artifacthub.io/category %q", a["artifacthub.io/category"])
	}
}

// TestHelmPackagePushesToOCI runs `make helm-package`, checks what the package holds, and pushes it
// to an OCI registry (go-containerregistry's, in memory) and pulls it back with helm, as a release
// would be published.
func TestHelmPackagePushesToOCI(t *testing.T) {
	helm := helmPath(t)
	dist := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "helm-package", "DIST="+dist, "HELM="+helm)
	cmd.Dir = repoRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make helm-package: %v\n%s", err, out)
	}
	pkg := filepath.Join(dist, "capz-encryption-webhook-0.1.0.tgz")
	if !strings.Contains(string(out), "helm push "+pkg+" oci://") {
		t.Errorf("make helm-package does not print the push command:\n%s", out)
	}
	files := tarFiles(t, pkg)
	for _, want := range []string{"Chart.yaml", "values.yaml", "values.schema.json", "README.md", "templates/NOTES.txt",
		"templates/tests/selftest.yaml", "templates/prometheusrule.yaml", "files/grafana-dashboard.json"} {
		if !slices.Contains(files, "capz-encryption-webhook/"+want) {
			t.Errorf("the package lacks %s", want)
		}
	}
	if slices.Contains(files, "capz-encryption-webhook/README.md.gotmpl") {
		t.Error("the package holds the helm-docs template")
	}
	// The packaged chart renders as the directory does.
	if _, err := chart.Template(chart.Options{Helm: helm, ChartDir: pkg}); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/charts"
	if out, err := chart.RunHelm(helm, "push", pkg, ref, "--plain-http"); err != nil {
		t.Fatalf("helm push: %v\n%s", err, out)
	}
	pulled := t.TempDir()
	if out, err := chart.RunHelm(helm, "pull", ref+"/capz-encryption-webhook", "--version", "0.1.0", "--plain-http", "--destination", pulled); err != nil {
		t.Fatalf("helm pull: %v\n%s", err, out)
	}
	a, _ := os.ReadFile(pkg)
	b, err := os.ReadFile(filepath.Join(pulled, "capz-encryption-webhook-0.1.0.tgz"))
	if err != nil || string(a) != string(b) {
		t.Errorf("the pulled package differs from the pushed one (%v)", err)
	}
}

func tarFiles(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}
