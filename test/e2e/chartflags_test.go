package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestChartPassesOnlyRealFlags renders the chart with every option that adds an argument and
// checks each --flag against the binary's own `serve --help`: a renamed flag would otherwise only
// show up as a crash-looping pod.
func TestChartPassesOnlyRealFlags(t *testing.T) {
	helm := mustEnv(t, "HELM")
	// --skip-tests: the helm test Pod runs selftest, checked below.
	out, err := exec.Command(helm, "template", "x", filepath.Join(repoRoot, "charts", "capz-encryption-webhook"),
		"--kube-version", kubeVersion(), "--namespace", releaseNamespace, "--skip-tests",
		"--set", "azure.subscriptionID="+sub, "--set", "azure.armEndpoint=https://arm.example",
		"--set", "skuCatalog.configMapName=skus", "--set", "audit.enabled=true").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	help, err := exec.Command(hook.bin, "serve", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("serve --help: %v\n%s", err, help)
	}
	flags := regexp.MustCompile(`- --([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1)
	if len(flags) < 8 {
		t.Fatalf("found only %d flags in the rendered Deployment", len(flags))
	}
	for _, f := range flags {
		if !strings.Contains(string(help), "--"+f[1]+" ") {
			t.Errorf("the chart passes --%s, which serve does not have", f[1])
		}
	}
	// The helm test Pod's flags, against selftest.
	out, err = exec.Command(helm, "template", "x", filepath.Join(repoRoot, "charts", "capz-encryption-webhook"),
		"--kube-version", kubeVersion(), "--namespace", releaseNamespace, "--show-only", "templates/tests/selftest.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	help, err = exec.Command(hook.bin, "selftest", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("selftest --help: %v\n%s", err, help)
	}
	flags = regexp.MustCompile(`- --([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1)
	if len(flags) < 2 {
		t.Fatalf("found only %d flags in the helm test Pod", len(flags))
	}
	for _, f := range flags {
		if !strings.Contains(string(help), "--"+f[1]+" ") {
			t.Errorf("the helm test Pod passes --%s, which selftest does not have", f[1])
		}
	}
}

func mustEnv(t *testing.T, k string) string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(k))
	if v == "" {
		t.Fatalf("%s is not set: run make test-e2e", k)
	}
	return v
}
