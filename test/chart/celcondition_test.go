package chart_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// celConditionTemplate is the chart's copy of celpolicy.WebhookMatchCondition, one expression per
// scope: Helm cannot call Go, so `make chart-config` writes it (this test with -update).
const celConditionTemplate = "charts/capz-encryption-webhook/templates/_celcondition.tpl"

func generateCELConditionTemplate(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`{{/*
Generated from celpolicy.WebhookMatchCondition by ` + "`make chart-config`" + `: do not edit. The
matchCondition expression of both webhooks in cel.mode cel-and-data-webhook, for the scope (a dict
of liveAzure, everyMachine, defaultDES) that "capz-encryption-webhook.celScope" computes.
*/}}
{{- define "capz-encryption-webhook.celMatchConditionExpression" -}}
`)
	for _, every := range []bool{true, false} {
		for _, live := range []bool{true, false} {
			for _, des := range []bool{true, false} {
				expr := celpolicy.WebhookMatchCondition(celpolicy.WebhookScope{LiveAzure: live, EveryMachine: every, DefaultDES: des}).Expression
				if strings.Contains(expr, "{{") || strings.Contains(expr, "}}") || strings.Contains(expr, "\n") {
					t.Fatalf("the expression cannot be written into a template as it is: %s", expr)
				}
				b.WriteString("{{- if and (eq .everyMachine " + boolWord(every) + ") (eq .liveAzure " + boolWord(live) + ") (eq .defaultDES " + boolWord(des) + ") -}}\n")
				b.WriteString(expr + "\n{{- end }}\n")
			}
		}
	}
	b.WriteString("{{- end }}\n")
	return b.Bytes()
}

func boolWord(v bool) string {
	if v {
		return "true"
	}
	return "false"
}

func TestCELConditionTemplateGenerated(t *testing.T) {
	want := generateCELConditionTemplate(t)
	path := filepath.Join(repoRoot(t), celConditionTemplate)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (make chart-config writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not celpolicy.WebhookMatchCondition's: run `make chart-config`", celConditionTemplate)
	}
}

// In cel-and-data-webhook mode, both webhooks carry exactly the condition celpolicy makes for the
// policy the chart renders, with or without live Azure: the chart's celScope agrees with
// celpolicy.ScopeFor on every shape of policy values.
func TestCELModeMatchCondition(t *testing.T) {
	des := "/subscriptions/6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des"
	cases := map[string][]string{
		"built-in policy":      nil,
		"palette, EAH":         {"--set", "cloud.azure.diskEncryptionSetID=" + des, "--set", "cloud.azure.encryptionAtHost=true"},
		"palette, DES only":    {"--set", "cloud.azure.diskEncryptionSetID=" + des},
		"palette, EAH false":   {"--set", "cloud.azure.diskEncryptionSetID=" + des, "--set", "cloud.azure.encryptionAtHost=false"},
		"universal DES":        {"--set-json", `policy.defaults=[{"name":"all","diskEncryptionSetID":"` + des + `"}]`},
		"universal data DES":   {"--set-json", `policy.defaults=[{"name":"all","dataDiskEncryptionSetID":"` + des + `","namespaceSelector":{}}]`},
		"universal EAH":        {"--set-json", `policy.defaults=[{"name":"all","encryptionAtHost":true}]`},
		"regional default":     {"--set-json", `policy.defaults=[{"name":"east","regions":["eastus"],"diskEncryptionSetID":"` + des + `"}]`},
		"namespace default":    {"--set-json", `policy.defaults=[{"name":"prod","namespaceSelector":{"matchLabels":{"env":"prod"}},"diskEncryptionSetID":"` + des + `"}]`},
		"expression default":   {"--set-json", `policy.defaults=[{"name":"prod","namespaceSelector":{"matchExpressions":[{"key":"env","operator":"Exists"}]},"diskEncryptionSetID":"` + des + `"}]`},
		"region rule at deny":  {"--set", "policy.rules.location-mismatch=deny"},
		"catalog gaps at deny": {"--set", "policy.rules.catalog-region-missing=deny", "--set-json", `policy.defaults=[{"name":"all","diskEncryptionSetID":"` + des + `"}]`},
		"region rule at audit": {"--set", "policy.rules.catalog-region-missing=audit"},
	}
	for name, args := range cases {
		for _, live := range []bool{false, true} {
			a := append([]string{"--set", "cel.mode=cel-and-data-webhook"}, args...)
			if live {
				a = append(a, "--set", "azure.subscriptionID=6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90")
			}
			objs := render(t, a...)
			p, err := policy.Parse("policy.yaml", []byte(renderedPolicy(t, objs)))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want := celpolicy.WebhookMatchCondition(celpolicy.ScopeFor(p, live))
			m := typed[*admissionregistrationv1.MutatingWebhookConfiguration](t, one(t, objs, "MutatingWebhookConfiguration"))
			v := typed[*admissionregistrationv1.ValidatingWebhookConfiguration](t, one(t, objs, "ValidatingWebhookConfiguration"))
			for _, got := range [][]admissionregistrationv1.MatchCondition{m.Webhooks[0].MatchConditions, v.Webhooks[0].MatchConditions} {
				found := false
				for _, c := range got {
					if c.Name == want.Name {
						found = true
						if c.Expression != want.Expression {
							t.Errorf("%s (live %v): the chart's condition is not celpolicy's for %+v:\n%s\nwant\n%s", name, live, celpolicy.ScopeFor(p, live), c.Expression, want.Expression)
						}
					}
				}
				if !found {
					t.Errorf("%s (live %v): no condition %s in %v", name, live, want.Name, got)
				}
			}
		}
	}
	// The other modes leave the webhooks' conditions alone.
	for _, mode := range []string{"webhook-only", "cel-and-webhook"} {
		objs := render(t, "--set", "cel.mode="+mode)
		v := typed[*admissionregistrationv1.ValidatingWebhookConfiguration](t, one(t, objs, "ValidatingWebhookConfiguration"))
		for _, c := range v.Webhooks[0].MatchConditions {
			if c.Name == celpolicy.WebhookMatchConditionName {
				t.Errorf("cel.mode=%s: the webhook has the data-only condition", mode)
			}
		}
	}
}

func renderedPolicy(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	for _, cm := range chart.Find(objs, "ConfigMap") {
		if strings.HasSuffix(cm.GetName(), "-policy") {
			s, _, _ := unstructured.NestedString(cm.Object, "data", "policy.yaml")
			return s
		}
	}
	t.Fatal("no policy ConfigMap")
	return ""
}
