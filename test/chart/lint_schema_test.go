package chart_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// TestHelmLint lints the chart, strictly (warnings fail), with the default values and with each
// scenario's values.
func TestHelmLint(t *testing.T) {
	helm := helmPath(t)
	dir, err := chart.Dir()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range chart.Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", "--kube-version", chart.KubeVersion, "--namespace", chart.DefaultNamespace, dir}, s.Args...)
			out, err := chart.RunHelm(helm, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Errorf("helm lint:\n%s", out)
			}
		})
	}
}

func TestChartMetadata(t *testing.T) {
	var meta struct {
		APIVersion  string `json:"apiVersion"`
		Name        string `json:"name"`
		Version     string `json:"version"`
		AppVersion  string `json:"appVersion"`
		KubeVersion string `json:"kubeVersion"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "charts/capz-encryption-webhook/Chart.yaml")), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.APIVersion != "v2" || meta.Name != "capz-encryption-webhook" || meta.Version != "0.1.0" || meta.AppVersion != "0.1.0" {
		t.Errorf("Chart.yaml = %+v", meta)
	}
	if meta.KubeVersion != ">="+chart.MinKubeVersion+"-0" {
		t.Errorf("kubeVersion = %q, want >=%s-0 (chart.MinKubeVersion)", meta.KubeVersion, chart.MinKubeVersion)
	}
}

// TestSchemaRejects shows that values.schema.json turns wrong types, unknown keys and bad enums into
// install-time errors that name the key, instead of a chart that renders something else.
func TestSchemaRejects(t *testing.T) {
	cases := []struct {
		name string
		args []string
		// The error must mention each of these (the JSON pointer of the key, mostly).
		want []string
	}{
		{"replicas as a string", []string{"--set-string", "replicaCount=two"}, []string{"/replicaCount", "want integer"}},
		{"replicas as a numeric string", []string{"--set-string", "replicaCount=2"}, []string{"/replicaCount", "want integer"}},
		{"replicas zero", []string{"--set", "replicaCount=0"}, []string{"/replicaCount", "minimum"}},
		{"unknown top-level key", []string{"--set", "replicas=2"}, []string{"additional properties 'replicas'"}},
		{"unknown nested key (typo)", []string{"--set", "webhook.failurPolicy=Ignore"}, []string{"/webhook", "'failurPolicy'"}},
		{"failurePolicy not an enum value", []string{"--set", "webhook.failurePolicy=Sometimes"}, []string{"/webhook/failurePolicy", "Fail", "Ignore"}},
		{"failurePolicy lower case", []string{"--set", "webhook.failurePolicy=fail"}, []string{"/webhook/failurePolicy"}},
		{"timeoutSeconds above the API's 30", []string{"--set", "webhook.timeoutSeconds=31"}, []string{"/webhook/timeoutSeconds", "maximum"}},
		{"timeoutSeconds as a string", []string{"--set-string", "webhook.timeoutSeconds=10s"}, []string{"/webhook/timeoutSeconds", "want integer"}},
		{"privileged port", []string{"--set", "webhook.port=443"}, []string{"/webhook/port", "minimum"}},
		{"certManager.enabled as a string", []string{"--set-string", "certManager.enabled=yes"}, []string{"/certManager/enabled", "want boolean"}},
		{"no cert-manager and no secret", []string{"--set", "certManager.enabled=false"}, []string{"/tls/secretName", "/tls/caBundle"}},
		{"workload identity without client ID", []string{"--set", "azure.workloadIdentity.enabled=true"}, []string{"/azure/workloadIdentity/clientID"}},
		{"client ID not a GUID", []string{"--set", "azure.workloadIdentity.clientID=my-app"}, []string{"/azure/workloadIdentity/clientID"}},
		{"unknown Azure cloud", []string{"--set", "azure.cloud=AzureGermanCloud"}, []string{"/azure/cloud"}},
		{"ServiceMonitor without metrics", []string{"--set", "metrics.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"}, []string{"/metrics/enabled"}},
		{"image digest malformed", []string{"--set", "image.digest=latest"}, []string{"/image/digest"}},
		{"log level", []string{"--set", "logLevel=verbose"}, []string{"/logLevel"}},
		{"resources typo", []string{"--set", "resources.limit.cpu=1"}, []string{"/resources", "'limit'"}},
		{"excluded namespace not a name", []string{"--set-json", `webhook.namespaceSelector.excludeNamespaces=["Kube_System"]`}, []string{"/webhook/namespaceSelector/excludeNamespaces/0"}},
		{"matchCondition without expression", []string{"--set-json", `webhook.matchConditions=[{"name":"x"}]`}, []string{"/webhook/matchConditions/0", "expression"}},
		{"cel mode not an enum value", []string{"--set", "cel.mode=cel-only"}, []string{"/cel/mode", "webhook-only", "cel-and-data-webhook"}},
		{"cel unknown key", []string{"--set", "cel.enabled=true"}, []string{"/cel", "'enabled'"}},
		{"helm test namespace not a name", []string{"--set", "tests.namespace=Team_A"}, []string{"/tests/namespace"}},
		// The policy, in the policy file's own schema.
		{"policy unknown key", []string{"--set", "policy.requireCMK=true"}, []string{"/policy", "'requireCMK'"}},
		{"policy wrong kind", []string{"--set", "policy.kind=Policy"}, []string{"/policy/kind"}},
		{"policy unknown rule", []string{"--set", "policy.rules.sku-unknwon=warn"}, []string{"/policy/rules", "'sku-unknwon'"}}, //nolint:misspell // the typo is the test
		{"policy bad action", []string{"--set", "policy.rules.sku-unknown=block"}, []string{"/policy/rules/sku-unknown", "deny", "warn", "audit"}},
		{"policy warnOnly as a string", []string{"--set-string", "policy.warnOnly=true"}, []string{"/policy/warnOnly", "want boolean"}},
		{"policy subscription not a GUID", []string{"--set-json", `policy.allowedDESSubscriptions=["prod"]`}, []string{"/policy/allowedDESSubscriptions/0"}},
		{"policy DES placeholder", []string{"--set-json", `policy.defaults=[{"name":"x","diskEncryptionSetID":"/subscriptions/subscriptionId/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/des"}]`}, []string{"/policy/defaults/0/diskEncryptionSetID"}},
		{"policy DES is a Key Vault key URL", []string{"--set-json", `policy.defaults=[{"name":"x","diskEncryptionSetID":"https://kv.vault.azure.net/keys/k/0123"}]`}, []string{"/policy/defaults/0/diskEncryptionSetID"}},
		{"policy DES empty", []string{"--set-json", `policy.defaults=[{"name":"x","diskEncryptionSetID":""}]`}, []string{"/policy/defaults/0/diskEncryptionSetID"}},
		{"policy default sets nothing", []string{"--set-json", `policy.defaults=[{"name":"x","encryptionAtHost":false}]`}, []string{"/policy/defaults/0"}},
		{"policy data disk storage type", []string{"--set-json", `policy.defaults=[{"name":"x","diskEncryptionSetID":"/subscriptions/6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90/resourceGroups/k/providers/Microsoft.Compute/diskEncryptionSets/d","dataDiskStorageAccountType":"UltraSSD_LRS"}]`}, []string{"/policy/defaults/0/dataDiskStorageAccountType", "Premium_LRS"}},
		{"policy data disk storage type without a DES", []string{"--set-json", `policy.defaults=[{"name":"x","encryptionAtHost":true,"dataDiskStorageAccountType":"Premium_LRS"}]`}, []string{"/policy/defaults/0"}},
		{"policy default unknown key", []string{"--set-json", `policy.defaults=[{"name":"x","encryptionAtHost":true,"des":"y"}]`}, []string{"/policy/defaults/0", "'des'"}},
		{"policy selector operator", []string{"--set-json", `policy.defaults=[{"name":"x","encryptionAtHost":true,"namespaceSelector":{"matchExpressions":[{"key":"env","operator":"Equals"}]}}]`}, []string{"/policy/defaults/0/namespaceSelector/matchExpressions/0/operator"}},
		{"policy keyExpiryWarning without a unit", []string{"--set-string", "policy.keyExpiryWarning=30"}, []string{"/policy/keyExpiryWarning"}},
		// The background audit and its alerts.
		{"audit interval in days", []string{"--set", "audit.interval=1d"}, []string{"/audit/interval"}},
		{"audit unknown key", []string{"--set", "audit.intervall=1h"}, []string{"/audit", "'intervall'"}},
		{"audit installCRD as a string", []string{"--set-string", "audit.reports.installCRD=true"}, []string{"/audit/reports/installCRD", "want boolean"}},
		{"key expiry alert of zero days", []string{"--set", "metrics.prometheusRule.keyExpiryAlertDays=0"}, []string{"/metrics/prometheusRule/keyExpiryAlertDays", "minimum"}},
		// Palette pack values.
		{"Palette empty DES placeholder", []string{"--set", "cloud.azure.diskEncryptionSetID="}, []string{"/cloud/azure/diskEncryptionSetID"}},
		{"Palette unknown key", []string{"--set", "cloud.azure.diskEncryptionSetId=x"}, []string{"/cloud/azure", "'diskEncryptionSetId'"}},
		{"Palette encryptionAtHost as a string", []string{"--set-string", "cloud.azure.encryptionAtHost=true"}, []string{"/cloud/azure/encryptionAtHost", "want boolean"}},
		{"Palette keys outside cloud.azure", []string{"--set", "cloud.aws.region=x"}, []string{"/cloud", "'aws'"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := renderErr(t, c.args...)
			if err == nil {
				t.Fatalf("helm template %v rendered; want a schema error", c.args)
			}
			msg := err.Error()
			if !strings.Contains(msg, "values don't meet the specifications of the schema") {
				t.Errorf("not a schema error:\n%s", msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not mention %q:\n%s", w, msg)
				}
			}
		})
	}
}

// TestTemplateRejects covers what the schema cannot say well and the templates refuse with a message
// of their own.
func TestTemplateRejects(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"Palette values and a customised policy", []string{
			"--set", "cloud.azure.encryptionAtHost=true",
			"--set", "policy.warnOnly=true",
			"--set", "policy.rules.sku-unknown=warn",
		}, []string{"cloud.azure", "policy.warnOnly", "policy.rules", "policy.defaults entry"}},
		{"PrometheusRule without metrics", []string{"--set", "metrics.enabled=false", "--set", "metrics.prometheusRule.enabled=true"},
			[]string{"metrics.prometheusRule.enabled needs metrics.enabled"}},
		{"Palette values and a key expiry warning", []string{"--set", "cloud.azure.encryptionAtHost=true", "--set", "policy.keyExpiryWarning=10d"},
			[]string{"policy.keyExpiryWarning"}},
		{"caBundle that is no certificate", []string{
			"--set", "certManager.enabled=false", "--set", "tls.secretName=x", "--set", "tls.caBundle=bm90IGEgY2VydA==",
		}, []string{"tls.caBundle", "PEM certificate"}},
		{"service account not created and not named", []string{"--set", "serviceAccount.create=false"}, []string{"serviceAccount.name"}},
		{"webhook matchConditions with a cel mode", []string{"--set", "cel.mode=cel-and-webhook",
			"--set-json", `webhook.matchConditions=[{"name":"x","expression":"true"}]`}, []string{"webhook.matchConditions", "compiled admission policies", "webhook.namespaceSelector"}},
		// The webhooks leave the release namespace out: in default, they would leave default out.
		{"release namespace default", []string{"--namespace", "default"}, []string{"namespace of its own", "CAPZ objects in default would go unchecked"}},
		{"a user matchCondition named like the chart's", []string{"--set-json",
			`webhook.matchConditions=[{"name":"capz-encryption-webhook-spec-changed","expression":"true"}]`}, []string{"chart's own conditions"}},
		{"a credential other than workload identity with workload identity", []string{"--set", "azure.subscriptionID=" + chart.TestSubscription,
			"--set", "azure.workloadIdentity.enabled=true", "--set", "azure.workloadIdentity.clientID=" + chart.TestClientID,
			"--set", "azure.credential=managed-identity"}, []string{"contradicts azure.workloadIdentity.enabled"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := renderErr(t, c.args...)
			if err == nil {
				t.Fatalf("helm template %v rendered; want an error", c.args)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%s", w, err)
				}
			}
		})
	}
}

// TestSchemaAcceptsValuesYAML makes sure the schema does not reject what values.yaml documents (the
// default render would fail, but this says why), including null minAvailable and an explicit tls.
func TestSchemaAcceptsDocumentedShapes(t *testing.T) {
	for _, args := range [][]string{
		{"--set", "podDisruptionBudget.maxUnavailable=50%"},
		{"--set", "podDisruptionBudget.minAvailable=1"},
		{"--set-json", `policy.rules={"des-id-malformed":"deny","eah-sku-unsupported":"deny","sku-unknown":"warn","aks-target":"deny","ade-extension":"deny","des-required":"deny","des-location-mismatch":"deny","des-subscription-not-allowed":"deny","des-not-found":"warn","des-key-rotation":"warn","des-encryption-type":"deny","default-not-applied":"audit","encryption-change-repave":"warn","catalog-region-missing":"deny","location-annotation-ignored":"warn","location-mismatch":"warn"}`},
		{"--set-json", `policy.defaults=[{"name":"x","dataDiskEncryptionSetID":"` + chart.TestDESID + `","namespaceSelector":{"matchExpressions":[{"key":"env","operator":"In","values":["prod"]}]}}]`},
		{"--set", "cloud.azure.encryptionAtHost=false"},
		{"--set", "image.tag=v0.2.0-rc.1"},
	} {
		if err := renderErr(t, args...); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// TestNotes renders NOTES.txt (helm template does not print it, and helm install needs a cluster): a
// copy of the chart gets a template that puts the notes into a ConfigMap.
func TestNotes(t *testing.T) {
	helm := helmPath(t)
	src, err := chart.Dir()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "capz-encryption-webhook")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(src, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	probe := `{{- define "test.notes" -}}` + string(notes) + `{{- end -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: {{ include "test.notes" . | toJson }}
`
	if err := os.WriteFile(filepath.Join(dst, "templates", "zz-notes-test.yaml"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	get := func(args ...string) string {
		t.Helper()
		objs, err := chart.Render(chart.Options{Helm: helm, ChartDir: dst, Args: append([]string{"--show-only", "templates/zz-notes-test.yaml"}, args...)})
		if err != nil {
			t.Fatal(err)
		}
		return str(t, one(t, objs, "ConfigMap"), "data", "notes")
	}

	def := get()
	for _, want := range []string{
		"kubectl -n " + chart.DefaultNamespace + " rollout status deployment/capz-encryption-webhook",
		"kubectl create --dry-run=server",
		"certificate/capz-encryption-webhook-serving-cert",
		// The break-glass procedure, by the label every webhook configuration carries.
		"kubectl delete validatingwebhookconfiguration,mutatingwebhookconfiguration",
		"-l app.kubernetes.io/name=capz-encryption-webhook,app.kubernetes.io/instance=capz-encryption-webhook",
		`"value":"Ignore"`,
		"except\nkube-system, " + chart.DefaultNamespace + ".",
		"fail closed",
		"embedded catalog",
		"helm test capz-encryption-webhook -n " + chart.DefaultNamespace + " --logs",
	} {
		if !strings.Contains(def, want) {
			t.Errorf("NOTES lack %q:\n%s", want, def)
		}
	}
	if strings.Contains(def, "WARNING: replicaCount") {
		t.Error("NOTES warn about replicas at the default")
	}
	if one := get("--set", "replicaCount=1", "--set", "webhook.failurePolicy=Ignore"); !strings.Contains(one, "WARNING: replicaCount is 1") || !strings.Contains(one, "ADMITTED UNCHECKED") {
		t.Errorf("NOTES for one replica, failurePolicy Ignore:\n%s", one)
	}
	if strings.Contains(def, "CEL LAYER") || strings.Contains(def, "compiled admission policy") {
		t.Error("NOTES describe the CEL layer without a cel.mode")
	}
	if cel := get(scenarioArgs(t, "cel")...); !strings.Contains(cel, "CEL LAYER (cel.mode=cel-and-data-webhook)") || strings.Contains(cel, "{{") || !strings.Contains(cel, "also while no replica answers:") ||
		!strings.Contains(cel, "the test then passes without showing that the webhook itself answers") ||
		!strings.Contains(cel, "kubectl delete validatingadmissionpolicybindings,validatingadmissionpolicies,mutatingadmissionpolicybindings,mutatingadmissionpolicies \\\n       -l app.kubernetes.io/managed-by=capz-encryption-webhook") {
		t.Errorf("NOTES for cel.mode:\n%s", cel)
	}
	if wi := get(scenarioArgs(t, "palette")...); !strings.Contains(wi, "Palette pack values") {
		t.Errorf("NOTES do not say the policy comes from the Palette values:\n%s", wi)
	}

	// Missing catalog data warns by default; a site that sets catalog-region-missing to deny is
	// told that objects are refused, and how to supply a catalog.
	for _, want := range []string{"any other region get a catalog-region-missing warning and\n   are admitted", "more than three years old only\n   warns"} {
		if !strings.Contains(def, want) {
			t.Errorf("NOTES lack %q:\n%s", want, def)
		}
	}
	if strings.Contains(def, "CATALOG REQUIRED") {
		t.Errorf("NOTES ask for a catalog although missing data only warns:\n%s", def)
	}
	strict := get("--set", "policy.rules.catalog-region-missing=deny")
	for _, want := range []string{"CATALOG REQUIRED", "are REFUSED", "any other region are refused", "Today only eastus, eastus2, southcentralus",
		"--set azure.subscriptionID=<subscription GUID>", "kubectl -n " + chart.DefaultNamespace + " create configmap capz-vm-skus --from-file=skus.json=skus.json",
		"--set skuCatalog.configMapName=capz-vm-skus"} {
		if !strings.Contains(strict, want) {
			t.Errorf("strict NOTES lack %q:\n%s", want, strict)
		}
	}
	if live := get("--set", "policy.rules.catalog-region-missing=deny", "--set", "azure.subscriptionID="+chart.TestSubscription); !strings.Contains(live, "CATALOG REQUIRED") ||
		strings.Contains(live, "Today only") || strings.Contains(live, "VM sizes come from the embedded catalog") {
		t.Errorf("strict NOTES with live data:\n%s", live)
	}
}
