package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/capzflavors"
)

// runCLI runs the command in-process and returns stdout and the exit code main would use.
func runCLI(t *testing.T, stdin string, args ...string) (string, int) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return out.String(), 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return out.String() + ee.Error(), ee.code
	}
	return out.String() + err.Error(), 2
}

type jsonResult struct {
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Allowed    bool   `json:"allowed"`
	Violations []struct {
		Rule, Field, Message string
	} `json:"violations"`
	Warnings []struct {
		Rule, Field, Message string
	} `json:"warnings"`
	Patch        []map[string]any `json:"patch"`
	Region       string           `json:"region"`
	RegionSource string           `json:"regionSource"`
}

func TestCheckSamples(t *testing.T) {
	out, code := runCLI(t, "", "check", "-f", "../../config/samples/", "-o", "json")
	if code != 1 {
		t.Fatalf("exit code %d, want 1 (the bad samples are denied)\n%s", code, out)
	}
	var results []jsonResult
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("output is not the JSON array: %v\n%s", err, out)
	}
	byName := map[string]jsonResult{}
	for _, r := range results {
		byName[r.Name] = r
	}
	wantDenied := map[string]string{
		"copied-from-docs":  "des-id-malformed",
		"worker-kv-url":     "des-id-malformed",
		"with-ade":          "ade-extension",
		"aks-pool0":         "aks-target",
		"aks-control-plane": "aks-target",
	}
	// legacy-size asks for encryption at host on Standard_D2_v3, which the embedded catalog's capture
	// of 2024-12-13 says cannot do it: denied while that capture is younger than
	// policy.EvidenceMaxAgeYears, a warning after.
	d2, _ := skucatalog.Embedded().Lookup("eastus", "Standard_D2_v3")
	if time.Now().Before(d2.Capture.At.AddDate(policy.EvidenceMaxAgeYears, 0, 0)) {
		wantDenied["legacy-size"] = "eah-sku-unsupported"
	} else if r := byName["legacy-size"]; !r.Allowed || len(r.Warnings) == 0 || r.Warnings[0].Rule != "eah-sku-unsupported" {
		t.Errorf("legacy-size, judged on a capture more than %d years old: %+v", policy.EvidenceMaxAgeYears, r)
	}
	for name, rule := range wantDenied {
		r, ok := byName[name]
		if !ok {
			t.Errorf("%s: not in the output", name)
			continue
		}
		if r.Allowed || len(r.Violations) == 0 || r.Violations[0].Rule != rule {
			t.Errorf("%s: allowed=%v violations=%+v, want denied by %s", name, r.Allowed, r.Violations, rule)
		}
	}
	for _, name := range []string{"payments-control-plane", "payments-md-0", "analytics-mp-0", "analytics-eastus"} {
		if r := byName[name]; !r.Allowed {
			t.Errorf("%s: denied: %+v", name, r.Violations)
		}
	}
	// Old evidence only warns, and says how old it is.
	if w := byName["analytics-eastus"].Warnings; len(w) != 1 || w[0].Rule != "eah-sku-unsupported" ||
		!strings.Contains(w[0].Message, "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT), captured 2020-08-25, more than 3 years ago") {
		t.Errorf("analytics-eastus warnings = %+v, want eah-sku-unsupported quoting the 2020 capture", w)
	}
	md := byName["payments-md-0"]
	if md.Region != "eastus" || md.RegionSource != "cluster" {
		t.Errorf("payments-md-0 region %q from %q, want eastus from the Cluster's AzureCluster", md.Region, md.RegionSource)
	}
	if len(md.Patch) != 4 { // OS disk DES, data disk DES, EAH, record annotation
		t.Errorf("payments-md-0 patch = %v, want 4 ops", md.Patch)
	}
	if cp := byName["payments-control-plane"]; len(cp.Patch) != 0 {
		t.Errorf("compliant template was patched: %v", cp.Patch)
	}
}

func TestCheckText(t *testing.T) {
	out, code := runCLI(t, "", "check", "-f", "../../config/samples/bad-des-placeholder.yaml", "-f", "../../config/samples/cluster-eastus.yaml")
	if code != 1 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"AzureMachineTemplate default/copied-from-docs (../../config/samples/bad-des-placeholder.yaml:2): DENIED",
		"deny  [des-id-malformed] spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id",
		"3 checked: 1 denied, 2 allowed (0 with defaults injected, 0 with warnings); 2 other objects skipped; policy: built-in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureMachineTemplate
metadata: {name: ok, annotations: {capz-encryption-webhook.io/location: eastus}}
spec: {template: {spec: {vmSize: Standard_D2s_v3, osDisk: {osType: Linux}}}}
`)
	cases := []struct {
		name string
		args []string
		in   string
		code int
		want string
	}{
		{"allowed", []string{"check", "-f", good}, "", 0, "1 checked: 0 denied"},
		{"stdin", []string{"check", "-f", "-", "-o", "json"}, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", 0, "[]"},
		{"unreadable YAML", []string{"check", "-f", write("broken.yaml", "kind: A\n---\nkind: [\n")}, "", 2, "broken.yaml:3:"},
		{"missing file", []string{"check", "-f", filepath.Join(dir, "nope.yaml")}, "", 2, "nope.yaml"},
		{"bad policy names file and line", []string{"check", "-f", good, "--policy", write("p.yaml", "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nrulez: {}\n")}, "", 2, `p.yaml:3: unknown key "rulez"`},
		{"bad output flag", []string{"check", "-f", good, "-o", "xml"}, "", 2, "--output"},
		{"no input", []string{"check"}, "", 2, "no input"},
		{"files as arguments", []string{"check", good}, "", 0, "1 checked: 0 denied"},
		{"location flag", []string{"check", "-f", write("noregion.yaml", `apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureMachine
metadata: {name: m}
spec: {vmSize: Standard_D2s_v3, osDisk: {osType: Linux, managedDisk: {diskEncryptionSet: {id: ""}}}}
`), "--location", "eastus"}, "", 1, "region eastus from flag"},
		{"palette values as policy", []string{"check", "-f", good, "--policy", "../../docs/examples/palette-pack-values.yaml"}, "", 0, "1 with defaults injected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runCLI(t, tc.in, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s", code, tc.code, tc.want, out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out, code := runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "capz-encryption-webhook ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

// TestCheckBindsFlavorTemplatesByReference runs check on CAPZ's default flavor as clusterctl renders
// it: no template carries the cluster-name label, so the region must come from the
// KubeadmControlPlane and MachineDeployment that reference them, through the Cluster.
func TestCheckBindsFlavorTemplatesByReference(t *testing.T) {
	f, err := capzflavors.Lookup("default")
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := capzflavors.Render(f, capzflavors.DefaultVars("southcentralus"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	manifest := filepath.Join(dir, "flavor.yaml")
	policyFile := filepath.Join(dir, "policy.yaml")
	des := "/subscriptions/" + capzflavors.TestSubscriptionID + "/resourceGroups/k/providers/Microsoft.Compute/diskEncryptionSets/scus"
	if err := os.WriteFile(manifest, rendered, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policyFile, []byte(`apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
requireCustomerManagedKeys: true
defaults:
- name: scus
  regions: [southcentralus]
  diskEncryptionSetID: `+des+`
  dataDiskStorageAccountType: Premium_LRS
  encryptionAtHost: true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, "", "check", "-f", manifest, "--policy", policyFile, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	var results []struct {
		jsonResult
		Binding string `json:"binding"`
	}
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"capz-southcentralus-control-plane": "KubeadmControlPlane capz-southcentralus-control-plane",
		"capz-southcentralus-md-0":          "MachineDeployment capz-southcentralus-md-0",
	}
	for _, r := range results {
		if r.Kind != "AzureMachineTemplate" {
			continue
		}
		if r.Region != "southcentralus" || r.RegionSource != "cluster" || r.Binding != want[r.Name] {
			t.Errorf("%s: region %q from %q, binding %q; want southcentralus from cluster, bound by %q", r.Name, r.Region, r.RegionSource, r.Binding, want[r.Name])
		}
		delete(want, r.Name)
		patch, _ := json.Marshal(r.Patch)
		if !strings.Contains(string(patch), `"path":"/spec/template/spec/osDisk/managedDisk","value":{"diskEncryptionSet":{"id":"`+des+`"}}`) {
			t.Errorf("%s: the region's DES was not injected: %s", r.Name, patch)
		}
	}
	if len(want) != 0 {
		t.Errorf("not checked: %v", want)
	}
}
