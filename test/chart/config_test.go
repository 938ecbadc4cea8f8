package chart_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// One source of truth: the chart. config/webhook/manifests.yaml (the webhook rules),
// config/rbac/role.yaml and config/manager/manager.yaml are generated from it (make chart-config runs
// this test with -update); the rest of config/ is kustomize wiring, and
// TestKustomizeBuildAgreesWithChart compares the whole `kustomize build config/default` with the
// chart's default render, object by object.
var update = flag.Bool("update", false, "rewrite the generated files under config/ from the chart")

func TestConfigGeneratedFromChart(t *testing.T) {
	files, err := chart.GenerateConfig(helmPath(t))
	if err != nil {
		t.Fatal(err)
	}
	root := repoRoot(t)
	for _, rel := range chart.GeneratedConfigFiles {
		want, ok := files[rel]
		if !ok {
			t.Fatalf("GenerateConfig made no %s", rel)
		}
		path := filepath.Join(root, rel)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (make chart-config writes it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what the chart generates: run `make chart-config` (and review the diff: it changes what the kustomize install enforces)", rel)
		}
	}
}

// kustomizeToChartNames maps the names config/default gives (kubebuilder base names with the prefix)
// to the chart's names for release chart.DefaultRelease. Longest first: they are replaced inside
// strings too (DNS names, inject-ca-from).
var kustomizeToChartNames = [][2]string{
	{"capz-encryption-webhook-validating-webhook-configuration", "capz-encryption-webhook"},
	{"capz-encryption-webhook-mutating-webhook-configuration", "capz-encryption-webhook"},
	{"capz-encryption-webhook-manager-rolebinding", "capz-encryption-webhook"},
	{"capz-encryption-webhook-controller-manager", "capz-encryption-webhook"},
	{"capz-encryption-webhook-selfsigned-issuer", "capz-encryption-webhook-selfsigned"},
	{"capz-encryption-webhook-metrics-service", "capz-encryption-webhook-metrics"},
	{"capz-encryption-webhook-webhook-service", "capz-encryption-webhook"},
	{"capz-encryption-webhook-manager-role", "capz-encryption-webhook"},
	{"capz-encryption-webhook-ca-issuer", "capz-encryption-webhook-ca"},
}

func TestKustomizeBuildAgreesWithChart(t *testing.T) {
	kustomize := kustomizePath(t)
	root := repoRoot(t)
	cmd := exec.Command(kustomize, "build", filepath.Join(root, "config", "default"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build config/default: %v\n%s", err, stderr.String())
	}
	built, err := chart.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	rendered := render(t)

	// The kustomize install must pass the same invariants as the chart (security context, webhook
	// contract, RBAC, certificate wiring); the Namespace object is its own addition.
	var withoutNS []*unstructured.Unstructured
	for _, o := range built {
		if o.GetKind() == "Namespace" {
			if o.GetName() != ns {
				t.Errorf("Namespace %s, want %s", o.GetName(), ns)
			}
			if o.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Error("the Namespace does not enforce the restricted Pod Security Standard")
			}
			continue
		}
		withoutNS = append(withoutNS, o)
	}
	checkCommon(t, withoutNS)

	// Object by object, after mapping names: the same objects, with the same spec.
	index := func(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
		m := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			m[o.GetKind()+"/"+o.GetName()] = o
		}
		return m
	}
	var normalised []*unstructured.Unstructured
	for _, o := range withoutNS {
		n := &unstructured.Unstructured{Object: renameStrings(o.Object).(map[string]any)}
		normalised = append(normalised, n)
	}
	got, want := index(normalised), index(rendered)
	if k1, k2 := sortedKeys(got), sortedKeys(want); !reflect.DeepEqual(k1, k2) {
		t.Fatalf("objects differ:\nkustomize %v\n    chart %v", k1, k2)
	}
	for key, w := range want {
		g := got[key]
		for _, field := range []string{"spec", "webhooks", "rules", "roleRef", "subjects"} {
			if !reflect.DeepEqual(g.Object[field], w.Object[field]) {
				gy, _ := yaml.Marshal(g.Object[field])
				wy, _ := yaml.Marshal(w.Object[field])
				t.Errorf("%s .%s differs\n--- kustomize (names mapped):\n%s--- chart:\n%s", key, field, gy, wy)
			}
		}
		if a := w.GetAnnotations()["cert-manager.io/inject-ca-from"]; a != g.GetAnnotations()["cert-manager.io/inject-ca-from"] {
			t.Errorf("%s: inject-ca-from %q, chart %q", key, g.GetAnnotations()["cert-manager.io/inject-ca-from"], a)
		}
		if w.GetKind() == "ConfigMap" {
			if !reflect.DeepEqual(policyDoc(t, []*unstructured.Unstructured{g}), policyDoc(t, []*unstructured.Unstructured{w})) {
				t.Errorf("the policy of config/manager/policy.yaml differs from the chart's default values.policy")
			}
		}
	}
}

// renameStrings replaces kustomize names by the chart's, in every string of a JSON-like value.
func renameStrings(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = renameStrings(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = renameStrings(e)
		}
		return out
	case string:
		for _, r := range kustomizeToChartNames {
			x = strings.ReplaceAll(x, r[0], r[1])
		}
		return x
	default:
		return v
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
