// Package chartapply_test sends every object the chart renders, for every scenario of values, and
// everything `kustomize build config/default` produces, to a real kube-apiserver (envtest: the
// kube-apiserver and etcd that hack/envtest-assets.sh builds) as a server-side dry run, with the CRDs
// they need installed from the Go modules that own them: cert-manager's (rendered from its Helm
// chart, as its releases are), the Prometheus Operator's ServiceMonitor and PrometheusRule, CAPZ's and
// CAPI's Cluster. Every object must be accepted, strictly (an unknown field is an error), without warnings, and the
// pod the Deployment would create must pass the restricted Pod Security Standard.
//
// It runs in `make test-e2e` (KUBEBUILDER_ASSETS, HELM and KUSTOMIZE come from the Makefile).
package chartapply_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// Versions of the modules the CRDs come from. cert-manager is pinned here (the project does not
// depend on it); CAPZ and CAPI follow go.mod.
const (
	certManagerModule        = "github.com/cert-manager/cert-manager"
	certManagerVersion       = "v1.21.2"
	prometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator"
	prometheusOperatorVer    = "v0.85.0"
)

func requireEnv(t *testing.T, name, how string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: %s", name, how)
	}
	return v
}

func TestChartAndConfigAcceptedByAPIServer(t *testing.T) {
	assets := requireEnv(t, "KUBEBUILDER_ASSETS", "run via make test-e2e (it builds kube-apiserver and etcd and sets it)")
	helm := requireEnv(t, chart.HelmEnv, "run via make test-e2e (make helm installs it)")
	kustomize := requireEnv(t, "KUSTOMIZE", "run via make test-e2e (make kustomize installs it)")
	root, err := chart.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}

	crdPaths := collectCRDs(t, root, helm)
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: crdPaths, ErrorIfPathMissing: true},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stopping envtest: %v", err)
		}
	})
	warnings := &warningCollector{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandlerWithContext = warnings
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	t.Run("rules name served resources", func(t *testing.T) {
		checkServedResources(t, cfg, helm)
	})

	for _, s := range chart.Scenarios() {
		t.Run("chart/"+s.Name, func(t *testing.T) {
			// One namespace per scenario, created for real (namespaced objects cannot be dry-run
			// into a namespace that does not exist), enforcing the restricted Pod Security Standard.
			ns := "cew-" + s.Name
			createNamespace(ctx, t, c, ns)
			objs, err := chart.Render(chart.Options{Helm: helm, Namespace: ns, Args: s.Args})
			if err != nil {
				t.Fatal(err)
			}
			dryRunAll(ctx, t, c, warnings, objs)
		})
	}

	t.Run("kustomize/config-default", func(t *testing.T) {
		cmd := exec.Command(kustomize, "build", filepath.Join(root, "config", "default"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kustomize build: %v\n%s", err, stderr.String())
		}
		objs, err := chart.Decode(out)
		if err != nil {
			t.Fatal(err)
		}
		var others []*unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				// Created for real, as kubectl apply would first.
				if err := c.Create(ctx, o, client.FieldValidation("Strict")); err != nil {
					t.Fatalf("Namespace %s: %v", o.GetName(), err)
				}
				continue
			}
			others = append(others, o)
		}
		dryRunAll(ctx, t, c, warnings, others)
	})
}

// dryRunAll creates every object as a server-side dry run, strictly, and fails on any error or
// warning. The Deployment's pod template is also sent as a Pod, so that Pod Security admission
// enforces (for a Deployment it only warns).
func dryRunAll(ctx context.Context, t *testing.T, c client.Client, warnings *warningCollector, objs []*unstructured.Unstructured) {
	t.Helper()
	if len(objs) == 0 {
		t.Fatal("nothing to apply")
	}
	for _, o := range objs {
		what := fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
		warnings.reset()
		if err := c.Create(ctx, o.DeepCopy(), client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			t.Errorf("%s refused: %v", what, err)
			continue
		}
		if w := warnings.take(); len(w) != 0 {
			t.Errorf("%s accepted with warnings: %q", what, w)
		}
		if o.GetKind() != "Deployment" {
			continue
		}
		var dep appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: dep.Name + "-pss-probe", Namespace: dep.Namespace, Labels: dep.Spec.Template.Labels},
			Spec:       dep.Spec.Template.Spec,
		}
		warnings.reset()
		if err := c.Create(ctx, pod, client.DryRunAll, client.FieldValidation("Strict")); err != nil {
			t.Errorf("the Deployment's pod is refused (restricted Pod Security Standard, priority class, ...): %v", err)
		}
		if w := warnings.take(); len(w) != 0 {
			t.Errorf("the Deployment's pod is accepted with warnings: %q", w)
		}
	}
}

func createNamespace(ctx context.Context, t *testing.T, c client.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	}}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("namespace %s: %v", name, err)
	}
}

// checkServedResources makes sure the resources the webhook rules and the ClusterRole name exist in
// the API (CAPZ's and CAPI's CRDs are installed): a misspelt plural in a webhook rule is accepted by
// the API server and matches nothing, which would switch enforcement off without a sound.
func checkServedResources(t *testing.T, cfg *rest.Config, helm string) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{} // group/version/resource and group/*/resource
	for _, l := range lists {
		for _, r := range l.APIResources {
			gv := l.GroupVersion
			group := ""
			if i := strings.Index(gv, "/"); i >= 0 {
				group = gv[:i]
			}
			served[gv+"/"+r.Name] = true
			served[group+"/*/"+r.Name] = true
		}
	}
	objs, err := chart.Render(chart.Options{Helm: helm})
	if err != nil {
		t.Fatal(err)
	}
	m, v, err := chart.Webhooks(objs)
	if err != nil {
		t.Fatal(err)
	}
	var rules []struct{ groups, versions, resources []string }
	for _, w := range m.Webhooks {
		for _, r := range w.Rules {
			rules = append(rules, struct{ groups, versions, resources []string }{r.APIGroups, r.APIVersions, r.Resources})
		}
	}
	for _, w := range v.Webhooks {
		for _, r := range w.Rules {
			rules = append(rules, struct{ groups, versions, resources []string }{r.APIGroups, r.APIVersions, r.Resources})
		}
	}
	for _, r := range rules {
		for _, g := range r.groups {
			for _, ver := range r.versions {
				for _, res := range r.resources {
					key := g + "/" + ver + "/" + res
					if g == "" { // the core group's GroupVersion is "v1"
						key = ver + "/" + res
					}
					if !served[key] {
						t.Errorf("webhook rule names %s/%s %s, which the API does not serve", g, ver, res)
					}
				}
			}
		}
	}
	// The ClusterRole, and the helm test's Role (rendered too: helm template includes test hooks).
	for _, o := range append(chart.Find(objs, "ClusterRole"), chart.Find(objs, "Role")...) {
		var role rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
			t.Fatal(err)
		}
		for _, r := range role.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					if !served[g+"/*/"+res] {
						t.Errorf("%s %s grants %s %q, which the API does not serve", o.GetKind(), o.GetName(), res, g)
					}
				}
			}
		}
	}
}

// warningCollector records the API server's warnings (unknown fields, deprecated APIs, Pod Security
// violations of a workload's pod template).
type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningCollector) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningCollector) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = nil
}

func (w *warningCollector) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.msgs)
	w.msgs = nil
	return out
}

// --- CRDs ----------------------------------------------------------------------------------------

// collectCRDs returns the CRD files to install: cert-manager's (rendered from the Helm chart in its
// module: the files under deploy/crds are, in its own words, incomplete sources), the ServiceMonitor
// and PrometheusRule, CAPZ's, and CAPI's (core, kubeadm bootstrap and control plane).
func collectCRDs(t *testing.T, root, helm string) []string {
	t.Helper()
	out := t.TempDir()

	cm := moduleDir(t, certManagerModule, certManagerVersion)
	chartDir := filepath.Join(cm, "deploy", "charts", "cert-manager")
	templates, err := filepath.Glob(filepath.Join(chartDir, "templates", "crd-*.yaml"))
	if err != nil || len(templates) == 0 {
		t.Fatalf("no CRD templates in %s (%v)", chartDir, err)
	}
	args := []string{"template", "cert-manager", chartDir, "--namespace", "cert-manager",
		"--kube-version", chart.KubeVersion, "--set", "crds.enabled=true"}
	for _, tpl := range templates {
		args = append(args, "--show-only", "templates/"+filepath.Base(tpl))
	}
	rendered, err := chart.RunHelm(helm, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(rendered, []byte("kind: CustomResourceDefinition")); n != len(templates) {
		t.Fatalf("cert-manager %s: rendered %d CRDs from %d templates", certManagerVersion, n, len(templates))
	}
	if err := os.WriteFile(filepath.Join(out, "cert-manager-crds.yaml"), rendered, 0o644); err != nil {
		t.Fatal(err)
	}

	po := moduleDir(t, prometheusOperatorModule, prometheusOperatorVer)
	for _, crd := range []string{"servicemonitors", "prometheusrules"} {
		data, err := os.ReadFile(filepath.Join(po, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+crd+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, crd+".yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	capz := moduleDir(t, "sigs.k8s.io/cluster-api-provider-azure", projectModuleVersion(t, root, "sigs.k8s.io/cluster-api-provider-azure"))
	// CAPI's too: the binding check's rules and the RBAC name MachineDeployments, KubeadmControlPlanes, ...
	capi, err := testsupport.CAPICRDDirs(root)
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{out, filepath.Join(capz, "config", "crd", "bases")}, capi...)
}

// projectModuleVersion returns the version go.mod selects for a module (read-only).
func projectModuleVersion(t *testing.T, root, module string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-json", module)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", module, err)
	}
	var m struct{ Version string }
	if err := json.Unmarshal(out, &m); err != nil || m.Version == "" {
		t.Fatalf("go list -m %s: %s (%v)", module, out, err)
	}
	return m.Version
}

// moduleDir downloads a module through the module proxy (or finds it in the module cache) and returns
// its directory. It runs in a throw-away module, so the project's go.mod and go.sum stay untouched.
func moduleDir(t *testing.T, module, version string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module crdfetch\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s@%s: %v\n%s%s", module, version, err, out, stderr.String())
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go mod download %s@%s: %s (%v)", module, version, out, err)
	}
	return m.Dir
}
