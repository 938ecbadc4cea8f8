package chart_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// helmPath returns the helm binary the Makefile installed. The tests fail rather than skip without
// it: a chart that is never rendered in CI is a chart nobody tested.
func helmPath(t *testing.T) string {
	t.Helper()
	return toolPath(t, chart.HelmEnv, "helm")
}

// kustomizePath returns the kustomize binary the Makefile installed (exported as KUSTOMIZE).
func kustomizePath(t *testing.T) string {
	t.Helper()
	return toolPath(t, "KUSTOMIZE", "kustomize")
}

func toolPath(t *testing.T, env, name string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run via make test-unit (make %s installs it)", env, name)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v: run via make test-unit (make %s installs it)", env, p, err, name)
	}
	return p
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := chart.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// render runs helm template with the default release and namespace plus args, and fails the test
// on error. It leaves out the helm test hooks (--skip-tests): they are not installed with the release
// and TestHelmTestHook checks them.
func render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := chart.Render(chart.Options{Helm: helmPath(t), Args: append([]string{"--skip-tests"}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// renderErr runs helm template and returns its error (nil if it rendered).
func renderErr(t *testing.T, args ...string) error {
	t.Helper()
	_, err := chart.Template(chart.Options{Helm: helmPath(t), Args: args})
	return err
}

// one returns the only object of kind, failing the test unless there is exactly one.
func one(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	found := chart.Find(objs, kind)
	if len(found) != 1 {
		t.Fatalf("want one %s, rendered %d", kind, len(found))
	}
	return found[0]
}

// typed converts a rendered object of a built-in kind into its Go type, strictly: a field the API
// type does not have (a typo or an indentation slip in a template) is an error.
func typed[T runtime.Object](t *testing.T, u *unstructured.Unstructured) T {
	t.Helper()
	obj, err := scheme.Scheme.New(u.GroupVersionKind())
	if err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, obj, true); err != nil {
		t.Fatalf("%s %s does not match its API type: %v", u.GetKind(), u.GetName(), err)
	}
	out, ok := obj.(T)
	if !ok {
		t.Fatalf("%s %s is a %T", u.GetKind(), u.GetName(), obj)
	}
	return out
}

// str reads a string field of an unstructured object.
func str(t *testing.T, u *unstructured.Unstructured, fields ...string) string {
	t.Helper()
	s, found, err := unstructured.NestedString(u.Object, fields...)
	if err != nil || !found {
		t.Fatalf("%s %s: .%s: found=%v err=%v", u.GetKind(), u.GetName(), strings.Join(fields, "."), found, err)
	}
	return s
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// scenarioArgs returns the helm args of a named chart.Scenario.
func scenarioArgs(t *testing.T, name string) []string {
	t.Helper()
	for _, s := range chart.Scenarios() {
		if s.Name == name {
			return s.Args
		}
	}
	t.Fatalf("no scenario %q", name)
	return nil
}

// runTool runs a tool in dir and returns its stdout; a failure carries stderr.
func runTool(dir, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
