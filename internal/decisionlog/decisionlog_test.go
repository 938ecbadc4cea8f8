package decisionlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// jsonRecorder logs as `serve` does (zap's JSON encoder behind zapr) into a buffer.
func jsonRecorder() (*Recorder, *bytes.Buffer) {
	buf := &bytes.Buffer{}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(buf), zapcore.DebugLevel)
	return NewRecorder(zapr.NewLogger(zap.New(core))), buf
}

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

const secretish = "the message repeats object values such as /subscriptions/0000/keys"

func denied() *policy.Decision {
	return &policy.Decision{
		Kind: "AzureMachineTemplate", Namespace: "team", Name: "md", Allowed: false,
		Findings: []policy.Finding{
			{Rule: policy.RuleEAHSKUUnsupported, Action: policy.ActionDeny, Field: "spec.template.spec.vmSize", Message: secretish},
			{Rule: policy.RuleDefaultNotApplied, Action: policy.ActionWarn, Field: "spec.template.spec.securityProfile.encryptionAtHost", Message: secretish},
			{Rule: policy.RuleEAHSKUUnsupported, Action: policy.ActionDeny, Field: "spec.template.spec.securityProfile.encryptionAtHost", Message: secretish},
		},
		Region: "eastus", RegionSource: "cluster",
		Catalog: skus.SourceInfo{Name: "embedded", AsOf: time.Date(2025, 6, 3, 0, 0, 0, 0, time.UTC)},
		Evidence: []policy.Evidence{{Region: "eastus", Fact: "eah-unsupported", Source: "embedded",
			Origin: "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT)", CapturedAt: "2020-08-25T23:23:43Z", Stale: true}},
	}
}

func TestRecordWritesOneCompleteLine(t *testing.T) {
	r, buf := jsonRecorder()
	r.Record(&Entry{
		Webhook: "validate", UID: "u-1", User: "alice", Operation: "CREATE", Kind: "AzureMachineTemplate",
		Namespace: "team", Name: "md", DryRun: true, Decision: denied(), Outcome: "denied",
		Latency: 1500 * time.Microsecond, CatalogAge: 48 * time.Hour,
	})
	ls := lines(t, buf)
	if len(ls) != 1 {
		t.Fatalf("want exactly one line, got %d: %s", len(ls), buf)
	}
	l := ls[0]
	for k, want := range map[string]any{
		"msg": "admission decision", "level": "info", "webhook": "validate", "uid": "u-1", "user": "alice",
		"operation": "CREATE", "kind": "AzureMachineTemplate", "namespace": "team", "name": "md", "dryRun": true,
		"outcome": "denied", "allowed": false, "rules": "default-not-applied:warn,eah-sku-unsupported:deny",
		"region": "eastus", "regionSource": "cluster", "catalogSource": "embedded", "catalogAgeSeconds": float64(48 * 3600),
		"latencyMs": 1.5, "patchOps": float64(0),
	} {
		if l[k] != want {
			t.Errorf("%s = %#v, want %#v", k, l[k], want)
		}
	}
	// Which capture answered, and when: the audit trail shows a verdict from old data as such.
	ev, _ := l["catalogEvidence"].([]any)
	if len(ev) != 1 {
		t.Fatalf("catalogEvidence = %#v, want the one capture the verdict used", l["catalogEvidence"])
	}
	for k, want := range map[string]any{"region": "eastus", "fact": "eah-unsupported", "source": "embedded",
		"origin": "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT)", "capturedAt": "2020-08-25T23:23:43Z", "stale": true} {
		if got := ev[0].(map[string]any)[k]; got != want {
			t.Errorf("catalogEvidence.%s = %#v, want %#v", k, got, want)
		}
	}
	if fs, _ := l["findings"].([]any); len(fs) != 3 {
		t.Errorf("findings = %#v, want all three with rule, action and field", l["findings"])
	}
	// Messages repeat object values; the log carries rule, action and field only.
	if strings.Contains(buf.String(), secretish) {
		t.Errorf("a finding message reached the log: %s", buf)
	}
}

func TestRecordCleanAndFailedRequests(t *testing.T) {
	r, buf := jsonRecorder()
	r.Record(&Entry{Webhook: "mutate", UID: "u-2", Operation: "CREATE", Outcome: "patched",
		Decision: &policy.Decision{Allowed: true, Findings: []policy.Finding{}, Injected: []string{"a", "b"}}})
	// The policy could not decide: the line is still written, at error level, with the reason.
	r.Record(&Entry{Webhook: "validate", UID: "u-3", Operation: "CREATE", Outcome: "error", Err: errors.New("object is not valid JSON")})
	ls := lines(t, buf)
	if len(ls) != 2 {
		t.Fatalf("want one line per entry, got %d: %s", len(ls), buf)
	}
	if _, ok := ls[0]["catalogEvidence"]; ok {
		t.Errorf("a decision that used no catalog data logs no evidence: %v", ls[0])
	}
	if ls[0]["rules"] != "none" || ls[0]["outcome"] != "patched" {
		t.Errorf("clean request: %v", ls[0])
	}
	if inj, _ := ls[0]["injected"].([]any); len(inj) != 2 {
		t.Errorf("the patch summary lists what was injected: %v", ls[0]["injected"])
	}
	if ls[1]["level"] != "error" || ls[1]["error"] != "object is not valid JSON" || ls[1]["uid"] != "u-3" {
		t.Errorf("failed request: %v", ls[1])
	}
}

func TestRulesSummary(t *testing.T) {
	if got := RulesSummary(nil); got != "none" {
		t.Errorf("nil decision: %q", got)
	}
	if got := RulesSummary(denied()); got != "default-not-applied:warn,eah-sku-unsupported:deny" {
		t.Errorf("sorted and deduplicated: %q", got)
	}
}
