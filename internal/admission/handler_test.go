package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

var des = testsupport.DESID("keys", "des")

type staticResolver clusterinfo.Result

func (s staticResolver) Resolve(context.Context, clusterinfo.Subject) clusterinfo.Result {
	return clusterinfo.Result(s)
}

type panicResolver struct{}

func (panicResolver) Resolve(context.Context, clusterinfo.Subject) clusterinfo.Result {
	panic("boom")
}

// staticPolicy is a PolicySource that always returns one policy.
type staticPolicy struct{ p *policy.Policy }

func (s staticPolicy) Get() *policy.Policy { return s.p }

func testPolicy(t testing.TB) staticPolicy {
	t.Helper()
	p, err := policy.Parse("test-policy.yaml", []byte("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n"+
		"defaults:\n- name: d\n  diskEncryptionSetID: "+des+"\n  encryptionAtHost: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	return staticPolicy{p}
}

// newHandler builds the handler as `serve` does, with its log lines going to logs and its metrics
// to a registry of the test's own.
func newHandler(t testing.TB, mode Mode, r Resolver, logs *testsupport.LogLines) admission.Handler {
	t.Helper()
	h, _ := newHandlerWithRegistry(t, mode, r, logs.Logger())
	return h
}

func newHandlerWithRegistry(t testing.TB, mode Mode, r Resolver, log logr.Logger) (admission.Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return New(Config{Mode: mode, Policies: testPolicy(t), Resolver: r, Catalog: skucatalog.Embedded(),
		Recorder: decisionlog.NewRecorder(log), Metrics: NewMetrics(reg), Now: pinnedClock()}), reg
}

// pinnedClock starts at a fixed date and runs at the real pace: the age of the embedded catalog's
// captures (which decides whether old evidence denies) does not change as the years pass, and
// latencies are still measured.
func pinnedClock() func() time.Time {
	start := time.Now()
	return func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).Add(time.Since(start)) }
}

func request(op admissionv1.Operation, vmSize string, eah bool) admission.Request {
	spec := map[string]any{"vmSize": vmSize, "osDisk": map[string]any{"osType": "Linux", "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}}
	if eah {
		spec["securityProfile"] = map[string]any{"encryptionAtHost": true}
	}
	obj := map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachineTemplate",
		"metadata": map[string]any{"name": "md", "namespace": "team", "labels": map[string]any{"cluster.x-k8s.io/cluster-name": "c1"}},
		"spec":     map[string]any{"template": map[string]any{"spec": spec}}}
	raw, _ := json.Marshal(obj)
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-1", Operation: op, Namespace: "team", Name: "md",
		Kind:     metav1.GroupVersionKind{Group: policy.Group, Version: "v1beta1", Kind: "AzureMachineTemplate"},
		UserInfo: authenticationv1.UserInfo{Username: "alice"},
		Object:   runtime.RawExtension{Raw: raw},
	}}
}

var eastus = staticResolver{Locations: []policy.LocationCandidate{{Location: "eastus", Source: "cluster"}}}

func TestMutatePatches(t *testing.T) {
	logs := &testsupport.LogLines{}
	resp := newHandler(t, Mutate, eastus, logs).Handle(context.Background(), request(admissionv1.Create, "Standard_D2s_v3", false))
	if !resp.Allowed || len(resp.Patches) != 3 || resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("mutate response: %+v", resp)
	}
	if resp.AuditAnnotations["decision"] != "patched" || resp.AuditAnnotations["uid"] != "uid-1" || resp.AuditAnnotations["rules"] != "none" ||
		!strings.Contains(resp.AuditAnnotations["injected"], "osDisk") {
		t.Errorf("audit annotations: %v", resp.AuditAnnotations)
	}
	if len(logs.Lines()) != 1 {
		t.Fatalf("want exactly one audit line, got %d", len(logs.Lines()))
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(logs.Lines()[0]), &line); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"uid": "uid-1", "user": "alice", "operation": "CREATE", "kind": "AzureMachineTemplate",
		"namespace": "team", "name": "md", "outcome": "patched", "region": "eastus", "regionSource": "cluster", "catalogSource": "embedded", "dryRun": false} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v (%s)", k, line[k], want, logs.Lines()[0])
		}
	}
	if _, ok := line["latencyMs"]; !ok || strings.Contains(logs.Lines()[0], "Premium_LRS") {
		t.Errorf("log line must have latency and must not contain the object: %s", logs.Lines()[0])
	}
	// UPDATE is never mutated.
	if resp := newHandler(t, Mutate, eastus, logs).Handle(context.Background(), request(admissionv1.Update, "Standard_D2s_v3", false)); len(resp.Patches) != 0 {
		t.Errorf("UPDATE patched: %v", resp.Patches)
	}
}

func TestValidateDenies(t *testing.T) {
	logs := &testsupport.LogLines{}
	resp := newHandler(t, Validate, eastus, logs).Handle(context.Background(), request(admissionv1.Create, "Standard_D2_v3", true))
	if resp.Allowed || resp.Result.Code != http.StatusForbidden {
		t.Fatalf("want a 403 denial, got %+v", resp.Result)
	}
	for _, want := range []string{"capz-encryption-webhook denied AzureMachineTemplate team/md", "[eah-sku-unsupported] spec.template.spec.securityProfile.encryptionAtHost", "Standard_D2_v3"} {
		if !strings.Contains(resp.Result.Message, want) {
			t.Errorf("message lacks %q: %s", want, resp.Result.Message)
		}
	}
	if resp.AuditAnnotations["decision"] != "denied" || resp.AuditAnnotations["rules"] != "eah-sku-unsupported:deny" {
		t.Errorf("audit annotations: %v", resp.AuditAnnotations)
	}
	// The validating webhook also reports warnings; D2_v3 cannot take the EAH default.
	resp = newHandler(t, Validate, eastus, logs).Handle(context.Background(), request(admissionv1.Create, "Standard_D2_v3", false))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "[default-not-applied]") {
		t.Errorf("want one default-not-applied warning: %+v", resp.Warnings)
	}
	if len(logs.Lines()) != 2 {
		t.Errorf("want one audit line per request, got %d", len(logs.Lines()))
	}
}

// TestValidateDenialCauses: a denial keeps its 403 and message and adds one status cause per
// violation (field, rule ID as the reason, message), as apierrors.NewInvalid reports fields, so that
// clients read per-field errors from the status the apiserver passes through.
func TestValidateDenialCauses(t *testing.T) {
	req := request(admissionv1.Create, "Standard_D2_v3", true)
	var obj map[string]any
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		t.Fatal(err)
	}
	spec := obj["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	spec["osDisk"].(map[string]any)["managedDisk"].(map[string]any)["diskEncryptionSet"] = map[string]any{"id": "/subscriptions/subscriptionId/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/des"}
	req.Object.Raw, _ = json.Marshal(obj)

	resp := newHandler(t, Validate, eastus, &testsupport.LogLines{}).Handle(context.Background(), req)
	if resp.Allowed || resp.Result.Code != http.StatusForbidden || resp.Result.Reason != metav1.StatusReasonForbidden {
		t.Fatalf("want a 403 denial, got %+v", resp.Result)
	}
	d := resp.Result.Details
	if d == nil {
		t.Fatal("no status details")
	}
	if d.Kind != "AzureMachineTemplate" || d.Group != policy.Group || d.Name != "md" {
		t.Errorf("details name the object as %s.%s %s", d.Kind, d.Group, d.Name)
	}
	got := map[string]metav1.StatusCause{}
	for _, c := range d.Causes {
		got[string(c.Type)] = c
		if !strings.Contains(resp.Result.Message, c.Message) {
			t.Errorf("cause message %q is not the one in the denial message", c.Message)
		}
	}
	want := map[string]string{
		"des-id-malformed":    "spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id",
		"eah-sku-unsupported": "spec.template.spec.securityProfile.encryptionAtHost",
	}
	if len(d.Causes) != len(want) {
		t.Errorf("causes = %+v, want one per violation: %v", d.Causes, want)
	}
	for rule, field := range want {
		if c, ok := got[rule]; !ok || c.Field != field || c.Message == "" {
			t.Errorf("cause for %s = %+v, want field %s and a message", rule, c, field)
		}
	}
	// An allowed answer has no details.
	if ok := newHandler(t, Validate, eastus, &testsupport.LogLines{}).Handle(context.Background(), request(admissionv1.Create, "Standard_D2s_v3", false)); !ok.Allowed || ok.Result.Details != nil {
		t.Errorf("allowed answer with details: %+v", ok.Result)
	}
}

func TestErrorsAreAnsweredAndRecorded(t *testing.T) {
	logs := &testsupport.LogLines{}
	h := newHandler(t, Validate, eastus, logs)
	bad := request(admissionv1.Create, "x", false)
	bad.Object.Raw = []byte(`{"metadata": 7}`)
	if resp := h.Handle(context.Background(), bad); resp.Allowed || resp.Result.Code != http.StatusBadRequest ||
		resp.AuditAnnotations["decision"] != "error" || resp.AuditAnnotations["rules"] != "none" {
		t.Errorf("malformed object: %+v %v", resp.Result, resp.AuditAnnotations)
	}
	p := newHandler(t, Validate, panicResolver{}, logs)
	if resp := p.Handle(context.Background(), request(admissionv1.Create, "Standard_D2s_v3", false)); resp.Allowed || resp.Result.Code != http.StatusInternalServerError {
		t.Errorf("panic: %+v", resp.Result)
	}
	if len(logs.Lines()) != 2 || !strings.Contains(logs.Lines()[0], `"outcome":"error"`) || !strings.Contains(logs.Lines()[1], "panic: boom") {
		t.Errorf("errors must be recorded: %v", logs.Lines())
	}
	other := request(admissionv1.Create, "x", false)
	other.Kind.Kind = "AzureCluster"
	if resp := h.Handle(context.Background(), other); !resp.Allowed {
		t.Errorf("a kind we do not decide on must pass: %+v", resp.Result)
	}
}

// TestMetrics: the metrics wrapper counts every request once by outcome, and every finding (two of
// one rule count twice: the counter is rule hits, not requests).
func TestMetrics(t *testing.T) {
	h, reg := newHandlerWithRegistry(t, Validate, eastus, logr.Discard())
	req := request(admissionv1.Create, "Standard_D2_v3", true)
	req.Object.Raw = bytes.Replace(req.Object.Raw, []byte(`"osType":"Linux"`), []byte(`"osType":"Linux","managedDisk":{"diskEncryptionSet":{"id":"/subscriptions/x"}}`), 1)
	h.Handle(context.Background(), req)
	h.Handle(context.Background(), request(admissionv1.Create, "Standard_D2s_v3", false))
	want := `
# HELP capz_encryption_webhook_requests_total Admission requests by webhook, operation and outcome (allowed, denied, patched, error).
# TYPE capz_encryption_webhook_requests_total counter
capz_encryption_webhook_requests_total{operation="CREATE",outcome="allowed",webhook="validate"} 1
capz_encryption_webhook_requests_total{operation="CREATE",outcome="denied",webhook="validate"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "capz_encryption_webhook_requests_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "capz_encryption_webhook_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[l["rule"]+":"+l["action"]] += m.GetCounter().GetValue()
		}
	}
	if got["eah-sku-unsupported:deny"] != 1 || got["des-id-malformed:deny"] != 1 || got["none:none"] != 1 {
		t.Errorf("decisions_total = %v", got)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", err, problems)
	}
}

// TestRegionLabelsAreBounded: the region a user writes becomes a metric label only when a catalog has
// data for it.
func TestRegionLabelsAreBounded(t *testing.T) {
	h, reg := newHandlerWithRegistry(t, Validate, staticResolver{}, logr.Discard())
	for _, region := range []string{"eastus", "attacker-chosen-1", "Attacker Chosen 2"} {
		req := request(admissionv1.Create, "Standard_D2s_v3", false)
		req.Object.Raw = bytes.Replace(req.Object.Raw, []byte(`"namespace":"team"`),
			[]byte(`"namespace":"team","annotations":{"capz-encryption-webhook.io/location":"`+region+`"}`), 1)
		h.Handle(context.Background(), req)
	}
	got, err := testutil.GatherAndCount(reg, "capz_encryption_webhook_catalog_age_seconds")
	if err != nil || got != 1 {
		t.Errorf("catalog_age series = %d (%v), want 1 (eastus)", got, err)
	}
}
