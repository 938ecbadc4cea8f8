package celpolicy

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

var aksPatchRE = regexp.MustCompile(AKSPatchPattern)

// webhookDeniesPatch asks policy.Evaluate about an AzureManagedControlPlane with this one patch.
func webhookDeniesPatch(t *testing.T, patch string) bool {
	t.Helper()
	obj := object(t, azureManagedControlPlane, "cp", "version: v1.33.0\n")
	obj["spec"].(map[string]any)["asoManagedClusterPatches"] = []any{patch}
	d := evaluate(t, policy.DefaultPolicy(), nil, request{op: "CREATE", obj: obj}, policy.StageValidate)
	action, _ := enforced(d, policy.RuleAKSTarget)
	return action == policy.ActionDeny
}

// FuzzAKSPatchPattern: what the pattern matches, the webhook denies (the compiled rule never
// refuses what the webhook allows); for valid JSON without escapes, where nothing needs decoding,
// the two agree exactly; and a patch WebhookMatchCondition keeps from the webhook gets the
// webhook's verdict from the compiled rule.
func FuzzAKSPatchPattern(f *testing.F) {
	for _, s := range []string{
		`{"spec":{"diskEncryptionSetReference":{"armId":"x"}}}`,
		`{"spec":{"diskEncryptionSetReference":null}}`,
		`{"spec":{"diskEncryptionSetReference" :  null }}`,
		`{"spec":{"tags":{"a":"diskEncryptionSet"}}}`,
		`{"spec":{"DiskEncryptionSetID":"x"}}`,
		`{"spec":{"x":[{"myDiskEncryptionSetRef":1}]}}`,
		`{"spec":{"disk\u0045ncryptionSetReference":{"armId":"x"}}}`,
		"{\"spec\":{\"dis\u212AEncryptionSet\":true}}",
		`{"a":"\"diskEncryptionSet\": 1"}`,
		`{"a":"x\\","diskEncryptionSet":1}`,
		`diskEncryptionSet: {}`,
		`{"diskEncryptionSet"`,
		`{"spec":{}}`,
	} {
		f.Add(s)
	}
	m := webhookMatcher(f, WebhookScope{})
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // CEL strings and JSON-decoded objects are UTF-8
		}
		matched := aksPatchRE.MatchString(s)
		denied := webhookDeniesPatch(t, s)
		if matched && !denied {
			t.Fatalf("%q: the compiled rule denies, the webhook allows", s)
		}
		if json.Valid([]byte(s)) && !strings.Contains(s, `\`) && matched != denied {
			t.Fatalf("%q: valid JSON without escapes, compiled rule %v, webhook %v", s, matched, denied)
		}
		// What WebhookMatchCondition keeps from the webhook, the compiled rule decides as it does.
		obj := object(t, azureManagedControlPlane, "cp", "version: v1.33.0\n")
		obj["spec"].(map[string]any)["asoManagedClusterPatches"] = []any{s}
		if !sentToWebhook(t, m, request{op: admission.Create, obj: obj}) && matched != denied {
			t.Fatalf("%q: not sent to the webhook, but the compiled rule says %v and the webhook %v", s, matched, denied)
		}
	})
}

// FuzzCELString: every string reaches an expression as the literal str writes, unchanged.
func FuzzCELString(f *testing.F) {
	for _, s := range []string{"", `"`, `\`, "'", "a\nb", "\x00\x7f", "\u212A\u0130", "\U0001F600", `${x}`, "r'x'", `\u0041`} {
		f.Add(s)
	}
	env, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Env(environment.StoredExpressions)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // policy files are YAML, hence UTF-8
		}
		for _, e := range []string{str(s), rawRegex(s)} {
			ast, iss := env.Compile(e)
			if iss.Err() != nil {
				t.Fatalf("%q as %s: %v", s, e, iss.Err())
			}
			prg, err := env.Program(ast)
			if err != nil {
				t.Fatal(err)
			}
			v, _, err := prg.Eval(cel.NoVars())
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Value(); got != s {
				t.Fatalf("%q as %s evaluates to %q", s, e, got)
			}
		}
	})
}
