package e2e

// A default install (the chart's default values, no Azure subscription, no catalog file) must not
// block clusters in regions its embedded VM-size catalog does not cover: missing data is our gap,
// not the user's (issue 15).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/capzflavors"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// defaultInstallNamespaces are served by the default-install webhook only: the suite's own webhook
// configurations leave them out (installWebhookConfigurations). They are the namespaces
// capzflavors.DefaultVars gives the flavors of these regions.
var defaultInstallNamespaces = []string{"capz-westeurope", "capz-eastus"}

// defaultInstall is a second webhook, run as the chart installs it by default: the policy file the
// chart renders from its default values, no live Azure data, no catalog file (so the embedded
// catalog, judged by today's date), behind the chart's webhook configurations for its namespaces.
type defaultInstall struct {
	hook       *webhookProcess
	policyFile string
}

func startDefaultInstall(t *testing.T) *defaultInstall {
	t.Helper()
	helm := mustEnv(t, "HELM")
	objs, err := chart.Render(chart.Options{Helm: helm})
	if err != nil {
		t.Fatal(err)
	}
	var policyYAML string
	for _, cm := range chart.Find(objs, "ConfigMap") {
		if strings.HasSuffix(cm.GetName(), "-policy") {
			policyYAML, _, _ = unstructured.NestedString(cm.Object, "data", "policy.yaml")
		}
	}
	if policyYAML == "" {
		t.Fatal("the chart rendered no policy ConfigMap")
	}
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policyYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := newWebhookProcess(hook.bin, hook.kubeconfig, hook.certDir, policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.stop)

	namespaces, err := json.Marshal(defaultInstallNamespaces)
	if err != nil {
		t.Fatal(err)
	}
	m, v, err := chart.WebhooksForURL(helm, releaseNamespace, fmt.Sprintf("https://127.0.0.1:%d", w.webhookPort), pki.PEM,
		"--set", "fullnameOverride=default-install",
		"--set-json", `webhook.namespaceSelector.matchExpressions=[{"key":"kubernetes.io/metadata.name","operator":"In","values":`+string(namespaces)+`}]`)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{m, v} {
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), o) })
	}
	for _, ns := range defaultInstallNamespaces {
		if err := k8s.Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	return &defaultInstall{hook: w, policyFile: policyFile}
}

// flavorObjects renders CAPZ's default flavor (cluster-template.yaml of the pinned module) for a
// region, as `clusterctl generate cluster` does, and returns the objects the e2e apiserver has CRDs
// for (Cluster, AzureCluster, AzureClusterIdentity, AzureMachineTemplate; not KubeadmControlPlane,
// MachineDeployment, KubeadmConfigTemplate), with edit applied to each.
//
// CAPZ's templates carry no cluster-name label; the webhook finds an AzureMachineTemplate's cluster
// through that label only, so it is added here, as a user following CAPI's labelling convention
// would. Finding the cluster through the objects that reference the template is another issue's.
func flavorObjects(t *testing.T, region string, edit func(*unstructured.Unstructured)) []*unstructured.Unstructured {
	t.Helper()
	f, err := capzflavors.Lookup("default")
	if err != nil {
		t.Fatal(err)
	}
	vars := capzflavors.DefaultVars(region)
	out, err := capzflavors.Render(f, vars)
	if err != nil {
		t.Fatal(err)
	}
	all, err := capzflavors.Objects(out)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, o := range all {
		switch o.GetKind() {
		case "Cluster", "AzureCluster", "AzureClusterIdentity":
		case "AzureMachineTemplate":
			labels := o.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			labels["cluster.x-k8s.io/cluster-name"] = vars[capzflavors.VarClusterName]
			o.SetLabels(labels)
		default:
			continue
		}
		if edit != nil {
			edit(o)
		}
		objs = append(objs, o)
	}
	return objs
}

// createFlavor creates the objects in order, Cluster and AzureCluster first, and returns the
// admission warnings each AzureMachineTemplate got, by name. It waits until the webhook's informers
// know the cluster (its region decides), with server-side dry runs of the first template.
func createFlavor(t *testing.T, di *defaultInstall, objs []*unstructured.Unstructured, region string) map[string][]string {
	t.Helper()
	var templates []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "AzureMachineTemplate" {
			templates = append(templates, o)
			continue
		}
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	if len(templates) != 2 {
		t.Fatalf("the default flavor has %d AzureMachineTemplates, want 2 (control plane, md-0)", len(templates))
	}
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Create(ctx(t), templates[0].DeepCopy(), client.DryRunAll); err != nil {
			return err
		}
		if di.hook.auditLine(2*time.Second, func(l map[string]any) bool {
			return l["name"] == templates[0].GetName() && l["webhook"] == "validate" && l["region"] == region && l["regionSource"] == "cluster"
		}) == nil {
			return fmt.Errorf("the webhook does not know the cluster's region yet")
		}
		return nil
	})
	got := map[string][]string{}
	for _, o := range templates {
		warnings.take()
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Fatalf("AzureMachineTemplate %s was refused: %v", o.GetName(), err)
		}
		got[o.GetName()] = warnings.take()
	}
	return got
}

// TestDefaultInstall runs clusters of CAPZ's default flavor through a default install.
func TestDefaultInstall(t *testing.T) {
	di := startDefaultInstall(t)
	t.Run("a region outside the catalog is admitted with a warning", func(t *testing.T) { testUncoveredRegion(t, di) })
	t.Run("old evidence warns and says how old", func(t *testing.T) { testOldEvidence(t, di) })
}

// testUncoveredRegion is issue 15's measurement turned around: a westeurope cluster built from
// CAPZ's default flavor, on a default install, is admitted, with a catalog-region-missing warning;
// `check` says the same about the same objects.
func testUncoveredRegion(t *testing.T, di *defaultInstall) {
	objs := flavorObjects(t, "westeurope", nil)
	got := createFlavor(t, di, objs, "westeurope")

	for name, ws := range got {
		if len(ws) != 1 || !strings.Contains(ws[0], "capz-encryption-webhook [catalog-region-missing] spec.template.spec.vmSize: region westeurope is not covered by the VM-size catalog") ||
			!strings.Contains(ws[0], "embedded catalog of eastus, eastus2, southcentralus, westcentralus") || !strings.Contains(ws[0], "azure.subscriptionID") {
			t.Errorf("%s: warnings %q, want one catalog-region-missing warning", name, ws)
		}
		l := di.hook.auditLine(5*time.Second, func(l map[string]any) bool {
			return l["name"] == name && l["webhook"] == "validate" && l["outcome"] == "allowed"
		})
		if l == nil || l["region"] != "westeurope" || l["regionSource"] != "cluster" || l["catalogSource"] != "none" || l["rules"] != "catalog-region-missing:warn" {
			t.Errorf("%s: audit line %v, want westeurope from the cluster, no catalog source, catalog-region-missing:warn", name, l)
		}
	}
	agreeWithCheck(t, di, objs, got)
}

// testOldEvidence: an eastus cluster of the default flavor whose workers ask for encryption at host
// on Standard_D4a_v4, which only the embedded catalog's capture of August 2020 says cannot do it:
// more than three years old, so a warning that names the capture, not a denial.
func testOldEvidence(t *testing.T, di *defaultInstall) {
	objs := flavorObjects(t, "eastus", func(o *unstructured.Unstructured) {
		if o.GetKind() == "AzureMachineTemplate" && strings.HasSuffix(o.GetName(), "-md-0") {
			setField(o, "Standard_D4a_v4", tplPath("vmSize")...)
			setField(o, true, tplPath("securityProfile", "encryptionAtHost")...)
		}
	})
	got := createFlavor(t, di, objs, "eastus")
	md := got["capz-eastus-md-0"]
	if len(md) != 1 || !strings.Contains(md[0], "[eah-sku-unsupported]") ||
		!strings.Contains(md[0], "embedded: Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT), captured 2020-08-25, more than 3 years ago") {
		t.Errorf("md-0: warnings %q, want eah-sku-unsupported quoting the 2020 capture", md)
	}
	if cp := got["capz-eastus-control-plane"]; len(cp) != 0 {
		t.Errorf("control plane (Standard_D2s_v3, no encryption at host): warnings %q, want none", cp)
	}
	l := di.hook.auditLine(5*time.Second, func(l map[string]any) bool {
		return l["name"] == "capz-eastus-md-0" && l["webhook"] == "validate" && l["outcome"] == "allowed"
	})
	ev, _ := l["catalogEvidence"].([]any)
	first := map[string]any{}
	if len(ev) > 0 {
		first, _ = ev[0].(map[string]any)
	}
	if stale, _ := first["stale"].(bool); len(ev) != 1 || first["capturedAt"] != "2020-08-25T23:23:43Z" || !stale {
		t.Errorf("md-0: audit line's catalogEvidence = %v, want the stale 2020 capture", l["catalogEvidence"])
	}
	agreeWithCheck(t, di, objs, got)
}

// agreeWithCheck runs `check` on the same objects with the same policy file and compares its
// warnings and denials with what the apiserver relayed from the webhook.
func agreeWithCheck(t *testing.T, di *defaultInstall, objs []*unstructured.Unstructured, webhook map[string][]string) {
	t.Helper()
	var docs []string
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	in := filepath.Join(t.TempDir(), "flavor.yaml")
	if err := os.WriteFile(in, []byte(strings.Join(docs, "---\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(hook.bin, "check", "-f", in, "--policy", di.policyFile, "-o", "json").Output()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	var results []struct {
		Name       string
		Allowed    bool
		Violations []struct{ Rule, Field, Message string }
		Warnings   []struct{ Rule, Field, Message string }
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("check -o json: %v\n%s", err, out)
	}
	if len(results) != len(webhook) {
		t.Fatalf("check judged %d objects, the webhook %d", len(results), len(webhook))
	}
	for _, r := range results {
		var want []string
		for _, w := range r.Warnings {
			want = append(want, fmt.Sprintf("capz-encryption-webhook [%s] %s: %s", w.Rule, w.Field, w.Message))
		}
		got := slices.Clone(webhook[r.Name])
		slices.Sort(want)
		slices.Sort(got)
		if !r.Allowed || len(r.Violations) != 0 || !slices.Equal(got, want) {
			t.Errorf("%s: check says allowed=%v violations=%v warnings=\n  %q\nthe webhook warned\n  %q", r.Name, r.Allowed, r.Violations, want, got)
		}
	}
}
