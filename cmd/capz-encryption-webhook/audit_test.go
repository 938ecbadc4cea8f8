package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/audit"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

func TestAuditFlags(t *testing.T) {
	if out, code := runCLI(t, "", "audit", "-o", "yaml"); code != 2 || !strings.Contains(out, "--output must be text, json or report") {
		t.Errorf("bad output format: %d %s", code, out)
	}
	t.Setenv("AZURE_SUBSCRIPTION_ID", "")
	if out, code := runCLI(t, "", "audit", "--azure"); code != 2 || !strings.Contains(out, "--azure needs --azure-subscription-id") {
		t.Errorf("--azure without a subscription: %d %s", code, out)
	}
	if out, code := runCLI(t, "", "audit", "--policy", "/nonexistent/policy.yaml"); code != 2 || !strings.Contains(out, "no such file") {
		t.Errorf("missing policy: %d %s", code, out)
	}
}

// TestAuditJSONHasCheckShape: `audit -o json` carries every field of `check -o json` but the file
// and line, so tools that read one read the other.
func TestAuditJSONHasCheckShape(t *testing.T) {
	out, _ := runCLI(t, "", "check", "-f", "../../config/samples/", "-o", "json", "--location", "eastus")
	var checked []map[string]any
	if err := json.Unmarshal([]byte(out), &checked); err != nil || len(checked) == 0 {
		t.Fatalf("check -o json: %v\n%s", err, out)
	}
	d := &policy.Decision{Kind: "AzureMachineTemplate", Region: "eastus", DefaultName: "d", MissingDefaults: []string{"x"},
		Evidence: []policy.Evidence{{Region: "eastus", Fact: "eah-supported", Source: "embedded"}},
		Findings: []policy.Finding{{Rule: policy.RuleDESRequired, Action: policy.ActionDeny, Field: "spec.x", Message: "m"}}}
	b, err := json.Marshal(toAuditResult(audit.Result{Kind: "AzureMachineTemplate", Namespace: "n", Name: "a", Decision: d, Cluster: policy.ClusterInfo{Name: "c"}}))
	if err != nil {
		t.Fatal(err)
	}
	var audited map[string]any
	if err := json.Unmarshal(b, &audited); err != nil {
		t.Fatal(err)
	}
	for _, c := range checked {
		for k := range c {
			if _, ok := audited[k]; !ok && k != "file" && k != "line" {
				t.Errorf("audit -o json lacks %q, which check -o json has", k)
			}
		}
	}
	if v := audited["violations"].([]any); len(v) != 1 || v[0].(map[string]any)["rule"] != "des-required" {
		t.Errorf("violations = %v", v)
	}
}
