// Package chart renders the Helm chart in charts/capz-encryption-webhook for tests: its own tests
// (lint, template, schema, agreement with config/), the server-side dry-run in test/chartapply, and the
// e2e suite, which takes its webhook configurations from the chart through WebhooksForURL so that the
// rules it tests are the rules that ship.
//
// Everything here shells out to a helm binary whose path the caller gives (the Makefile installs a
// pinned helm and passes it in the HELM environment variable).
package chart

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

const (
	// DefaultRelease and DefaultNamespace are what the README's install uses, and what config/default
	// is generated with.
	DefaultRelease   = "capz-encryption-webhook"
	DefaultNamespace = "capz-encryption-webhook-system"
	// KubeVersion is passed to `helm template --kube-version`: a helm built with `go install` reports
	// Kubernetes 1.20 by default (release builds stamp the version with ldflags), which the chart's
	// kubeVersion constraint refuses. It matches K8S_VERSION in the Makefile (the e2e API server).
	KubeVersion = "1.37.2"
	// MinKubeVersion is the oldest version the chart supports (Chart.yaml kubeVersion).
	MinKubeVersion = "1.30.0"
	// HelmEnv names the environment variable holding the helm binary's path.
	HelmEnv = "HELM"
)

// RepoRoot returns the directory holding go.mod, found from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Dir returns the chart's directory.
func Dir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "charts", "capz-encryption-webhook"), nil
}

// Options of one `helm template` run. Zero values mean the defaults above.
type Options struct {
	Helm        string
	Release     string
	Namespace   string
	KubeVersion string
	// ChartDir overrides the chart directory (tests render modified copies).
	ChartDir string
	// Args are appended to the command: --set, --set-json, -f, --show-only...
	Args []string
}

// Template runs `helm template` and returns its stdout. A failure carries helm's stderr.
func Template(o Options) ([]byte, error) {
	if o.Helm == "" {
		return nil, fmt.Errorf("no helm binary given (set %s)", HelmEnv)
	}
	dir := o.ChartDir
	if dir == "" {
		var err error
		if dir, err = Dir(); err != nil {
			return nil, err
		}
	}
	args := append([]string{"template", or(o.Release, DefaultRelease), dir,
		"--namespace", or(o.Namespace, DefaultNamespace),
		"--kube-version", or(o.KubeVersion, KubeVersion)}, o.Args...)
	return RunHelm(o.Helm, args...)
}

// RunHelm runs helm with its config, cache and data directories in a throw-away place, so that
// nothing on the machine (repositories, plugins) changes what it does. It returns stdout; on failure
// the error holds stderr.
func RunHelm(helm string, args ...string) ([]byte, error) {
	home, err := os.MkdirTemp("", "helm-home-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Render runs `helm template` and decodes every document.
func Render(o Options) ([]*unstructured.Unstructured, error) {
	out, err := Template(o)
	if err != nil {
		return nil, err
	}
	return Decode(out)
}

// Decode splits a multi-document YAML stream into objects, skipping empty documents.
func Decode(manifest []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("document %d: %w", len(objs)+1, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("document %d has no kind or apiVersion: %v", len(objs)+1, m)
		}
		objs = append(objs, u)
	}
}

// Find returns the objects of a kind, sorted by name.
func Find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

// Webhooks converts the rendered webhook configurations to their API types. Both must be present.
func Webhooks(objs []*unstructured.Unstructured) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	ms, vs := Find(objs, "MutatingWebhookConfiguration"), Find(objs, "ValidatingWebhookConfiguration")
	if len(ms) != 1 || len(vs) != 1 {
		return nil, nil, fmt.Errorf("want one mutating and one validating webhook configuration, rendered %d and %d", len(ms), len(vs))
	}
	var m admissionregistrationv1.MutatingWebhookConfiguration
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(ms[0].Object, &m, true); err != nil {
		return nil, nil, fmt.Errorf("mutating webhook configuration: %w", err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(vs[0].Object, &v, true); err != nil {
		return nil, nil, fmt.Errorf("validating webhook configuration: %w", err)
	}
	return &m, &v, nil
}

// WebhooksForURL renders the chart (default values, plus helmArgs) and returns its two webhook
// configurations pointed at a webhook server outside the cluster: clientConfig becomes
// baseURL + the chart's path (/mutate, /validate) with caBundle, and the cert-manager annotation is
// dropped. Everything else (rules, operations, failurePolicy, namespaceSelector, matchConditions,
// timeouts) is exactly what the chart installs. namespace is the release namespace, which the
// namespaceSelector leaves out (as it does kube-system).
//
// For the e2e suite: create the returned objects with a client once the server is listening.
func WebhooksForURL(helm, namespace, baseURL string, caBundle []byte, helmArgs ...string) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	objs, err := Render(Options{Helm: helm, Namespace: namespace, Args: helmArgs})
	if err != nil {
		return nil, nil, err
	}
	m, v, err := Webhooks(objs)
	if err != nil {
		return nil, nil, err
	}
	base := strings.TrimSuffix(baseURL, "/")
	point := func(cc *admissionregistrationv1.WebhookClientConfig) error {
		if cc.Service == nil || cc.Service.Path == nil {
			return errors.New("the chart's clientConfig names no service path")
		}
		url := base + *cc.Service.Path
		*cc = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
		return nil
	}
	for i := range m.Webhooks {
		if err := point(&m.Webhooks[i].ClientConfig); err != nil {
			return nil, nil, err
		}
	}
	for i := range v.Webhooks {
		if err := point(&v.Webhooks[i].ClientConfig); err != nil {
			return nil, nil, err
		}
	}
	for _, meta := range []*map[string]string{&m.Annotations, &v.Annotations} {
		delete(*meta, "cert-manager.io/inject-ca-from")
	}
	return m, v, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// --- config/ generated from the chart -----------------------------------------------------------

// GeneratedConfigFiles are the files under config/ that GenerateConfig writes, relative to the
// repository root.
var GeneratedConfigFiles = []string{
	"config/webhook/manifests.yaml",
	"config/rbac/role.yaml",
	"config/rbac/metrics_reader_role.yaml",
	"config/manager/manager.yaml",
}

const generatedHeader = `# Code generated by ` + "`make chart-config`" + ` from charts/capz-encryption-webhook; DO NOT EDIT.
# (helm template with the default values, release %q, namespace
# %q.) test/chart fails when this file and the chart disagree.
# The namespace is written out in the webhooks' namespaceSelector: keep it equal to the namespace
# of config/default/kustomization.yaml.
`

// GenerateConfig renders the chart with its default values and returns the content of
// GeneratedConfigFiles: the webhook configurations, the ClusterRole and the Deployment, renamed to the
// kubebuilder layout's base names (config/default adds the prefix and the namespace).
func GenerateConfig(helm string) (map[string][]byte, error) {
	objs, err := Render(Options{Helm: helm})
	if err != nil {
		return nil, err
	}
	one := func(kind string) (*unstructured.Unstructured, error) {
		found := Find(objs, kind)
		if len(found) != 1 {
			return nil, fmt.Errorf("want one %s in the chart's default render, found %d", kind, len(found))
		}
		return found[0].DeepCopy(), nil
	}
	header := fmt.Sprintf(generatedHeader, DefaultRelease, DefaultNamespace)

	// Webhook configurations: kubebuilder's names, the Service by its base name in the placeholder
	// namespace "system" (config/webhook/kustomizeconfig.yaml lets kustomize rewrite both), and no
	// cert-manager annotation (config/default's replacements add it).
	var webhookDocs [][]byte
	for _, w := range []struct{ kind, name string }{
		{"MutatingWebhookConfiguration", "mutating-webhook-configuration"},
		{"ValidatingWebhookConfiguration", "validating-webhook-configuration"},
	} {
		o, err := one(w.kind)
		if err != nil {
			return nil, err
		}
		o.Object["metadata"] = map[string]any{"name": w.name}
		hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		for _, h := range hooks {
			hm := h.(map[string]any)
			if err := unstructured.SetNestedField(hm, "webhook-service", "clientConfig", "service", "name"); err != nil {
				return nil, err
			}
			if err := unstructured.SetNestedField(hm, "system", "clientConfig", "service", "namespace"); err != nil {
				return nil, err
			}
		}
		if err := unstructured.SetNestedSlice(o.Object, hooks, "webhooks"); err != nil {
			return nil, err
		}
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		webhookDocs = append(webhookDocs, b)
	}

	// The webhook's ClusterRole and the metrics reader's, by kubebuilder's base names.
	var roleDoc, readerDoc []byte
	for _, r := range Find(objs, "ClusterRole") {
		r = r.DeepCopy()
		name := "manager-role"
		if strings.HasSuffix(r.GetName(), "-metrics-reader") {
			name = "metrics-reader"
		}
		r.Object["metadata"] = map[string]any{"name": name}
		doc, err := yaml.Marshal(r.Object)
		if err != nil {
			return nil, err
		}
		if name == "manager-role" {
			roleDoc = doc
		} else {
			readerDoc = doc
		}
	}
	if roleDoc == nil || readerDoc == nil {
		return nil, fmt.Errorf("want the webhook's and the metrics reader's ClusterRoles in the chart's default render")
	}

	dep, err := one("Deployment")
	if err != nil {
		return nil, err
	}
	dep.Object["metadata"] = map[string]any{
		"name":      "controller-manager",
		"namespace": "system",
		"labels":    map[string]any{"app.kubernetes.io/component": "webhook"},
	}
	pod, _, _ := unstructured.NestedMap(dep.Object, "spec", "template", "spec")
	pod["serviceAccountName"] = "controller-manager"
	vols, _, _ := unstructured.NestedSlice(pod, "volumes")
	for _, v := range vols {
		vm := v.(map[string]any)
		if _, ok := vm["configMap"]; ok && vm["name"] == "policy" {
			// The ConfigMap config/manager generates, by its base name.
			if err := unstructured.SetNestedField(vm, "policy", "configMap", "name"); err != nil {
				return nil, err
			}
		}
	}
	pod["volumes"] = vols
	if err := unstructured.SetNestedMap(dep.Object, pod, "spec", "template", "spec"); err != nil {
		return nil, err
	}
	depDoc, err := yaml.Marshal(dep.Object)
	if err != nil {
		return nil, err
	}

	return map[string][]byte{
		"config/webhook/manifests.yaml":        []byte(header + "---\n" + string(bytes.Join(webhookDocs, []byte("---\n")))),
		"config/rbac/role.yaml":                []byte(header + "---\n" + string(roleDoc)),
		"config/rbac/metrics_reader_role.yaml": []byte(header + "---\n" + string(readerDoc)),
		"config/manager/manager.yaml":          []byte(header + "---\n" + string(depDoc)),
	}, nil
}

// --- scenarios -----------------------------------------------------------------------------------

// Scenario is one set of chart values worth rendering on its own: the default and each option the
// chart offers. The chart tests lint and render each; test/chartapply applies each to a real API
// server.
type Scenario struct {
	Name string
	Args []string
}

// Values used by the scenarios.
const (
	TestSubscription = testsupport.Subscription
	TestClientID     = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
	TestTenantID     = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	TestDESID        = "/subscriptions/" + TestSubscription + "/resourceGroups/platform-keys/providers/Microsoft.Compute/diskEncryptionSets/des-all-regions"
)

// Scenarios returns the default values and one scenario per option.
func Scenarios() []Scenario {
	caPEM := string(testsupport.CAPEM())
	return []Scenario{
		{Name: "default"},
		{Name: "user-issuer", Args: []string{
			"--set", "certManager.issuerRef.name=corp-ca",
			"--set", "certManager.issuerRef.kind=ClusterIssuer",
		}},
		{Name: "user-secret", Args: []string{
			"--set", "certManager.enabled=false",
			"--set", "tls.secretName=webhook-tls",
			"--set", "tls.caBundle=" + base64.StdEncoding.EncodeToString([]byte(caPEM)),
		}},
		{Name: "user-secret-plain-pem", Args: []string{
			"--set", "certManager.enabled=false",
			"--set-json", `tls={"secretName":"webhook-tls","caBundle":` + jsonString(caPEM) + `}`,
		}},
		{Name: "network-policy", Args: []string{
			"--set", "networkPolicy.enabled=true",
			"--set-json", `networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`,
			"--set-json", `networkPolicy.egress.extraRules=[{"to":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],"ports":[{"port":8443,"protocol":"TCP"}]}]`,
		}},
		{Name: "service-monitor", Args: []string{
			"--set", "metrics.serviceMonitor.enabled=true",
			"--set", "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
		}},
		{Name: "audit", Args: []string{
			"--set", "azure.subscriptionID=" + TestSubscription,
			"--set", "audit.enabled=true",
			"--set", "audit.interval=90m",
			"--set", "audit.reports.installCRD=true",
			"--set", "audit.events.repeat=12h",
			"--set", "metrics.prometheusRule.enabled=true",
			"--set", "metrics.prometheusRule.labels.release=kube-prometheus-stack",
			"--set", "metrics.prometheusRule.keyExpiryAlertDays=45",
			"--set", "policy.keyExpiryWarning=45d",
		}},
		{Name: "observability", Args: []string{
			"--set", "metrics.serviceMonitor.enabled=true",
			"--set", "metrics.prometheusRule.enabled=true",
			"--set", "metrics.prometheusRule.labels.release=kube-prometheus-stack",
			"--set", "metrics.prometheusRule.alertLabels.team=platform",
			"--set", "metrics.grafanaDashboard.enabled=true",
			"--set", "metrics.grafanaDashboard.annotations.grafana_folder=Platform",
		}},
		{Name: "workload-identity", Args: []string{
			"--set", "azure.subscriptionID=" + TestSubscription,
			"--set", "azure.cloud=AzureUSGovernmentCloud",
			"--set", "azure.armEndpoint=https://management.usgovcloudapi.net/",
			"--set", "azure.workloadIdentity.enabled=true",
			"--set", "azure.workloadIdentity.clientID=" + TestClientID,
			"--set", "azure.workloadIdentity.tenantID=" + TestTenantID,
		}},
		{Name: "palette", Args: []string{
			"--set", "cloud.azure.diskEncryptionSetID=" + TestDESID,
			"--set", "cloud.azure.encryptionAtHost=true",
		}},
		{Name: "match-conditions", Args: []string{
			"--set-json", `webhook.matchConditions=[{"name":"not-capz-controller","expression":"request.userInfo.username != 'system:serviceaccount:capz-system:capz-manager'"}]`,
		}},
		{Name: "policy", Args: []string{
			"--set-json", `policy={"warnOnly":true,"defaultLocation":"eastus","requireCustomerManagedKeys":true,` +
				`"allowedDESSubscriptions":["` + TestSubscription + `"],` +
				`"rules":{"sku-unknown":"warn","des-key-rotation":"audit"},` +
				`"defaults":[{"name":"prod-eastus","regions":["eastus"],"namespaceSelector":{"matchLabels":{"env":"prod"}},` +
				`"diskEncryptionSetID":"` + TestDESID + `","encryptionAtHost":true},{"name":"eah-everywhere","encryptionAtHost":true}]}`,
		}},
		{Name: "webhook-tuning", Args: []string{
			"--set", "webhook.failurePolicy=Ignore",
			"--set", "webhook.timeoutSeconds=5",
			"--set", "webhook.mutating.enabled=false",
			"--set-json", `webhook.namespaceSelector={"excludeNamespaces":["capi-system","capz-system"],"matchExpressions":[{"key":"capz-encryption-webhook.io/skip","operator":"DoesNotExist"}]}`,
		}},
		{Name: "cel", Args: []string{
			"--set", "cel.mode=cel-and-data-webhook",
			"--set", "webhook.failurePolicy=Ignore",
			"--set", "cloud.azure.diskEncryptionSetID=" + TestDESID,
			"--set-json", `webhook.namespaceSelector={"excludeNamespaces":["capi-system","capz-system"],"matchLabels":{"capz-encryption-webhook.io/enforce":"true"}}`,
		}},
		{Name: "misc", Args: []string{
			"--set", "replicaCount=3",
			"--set", "image.digest=sha256:" + strings.Repeat("ab", 32),
			"--set", "priorityClassName=",
			"--set", "metrics.enabled=false",
			"--set", "podDisruptionBudget.minAvailable=2",
			"--set", "skuCatalog.configMapName=azure-skus",
			"--set", "logLevel=debug",
			"--set", "serviceAccount.annotations.team=platform",
			"--set-json", `topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone","whenUnsatisfiable":"DoNotSchedule"}]`,
			"--set-json", `extraEnv=[{"name":"HTTPS_PROXY","value":"http://proxy:3128"}]`,
			"--set-json", `extraArgs=["--sku-refresh-interval=1h"]`,
		}},
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
