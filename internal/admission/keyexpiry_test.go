package admission

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

// expiringDES is a DES cache whose one set's key expires at a fixed time.
type expiringDES struct{ expires time.Time }

func (e expiringDES) LookupDES(string) (policy.DESInfo, policy.DESState) {
	return policy.DESInfo{Location: "eastus", EncryptionType: "EncryptionAtRestWithCustomerKey", RotationToLatestKeyVersion: true,
		Key: policy.KeyInfo{URL: "https://kv.vault.azure.net/keys/disk/v1", Known: true, Enabled: true, Expires: e.expires}}, policy.DESFound
}

// TestKeyExpiryUsesTheHandlersClock: the handler gives the policy its clock, so the cached key facts
// are judged against the time of the request — a new machine on a set whose key has expired is
// denied, the same machine before the expiry is not.
func TestKeyExpiryUsesTheHandlersClock(t *testing.T) {
	expires := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	handle := func(now time.Time) *admissionv1.AdmissionResponse {
		h := New(Config{Mode: Validate, Policies: testPolicy(t), Resolver: eastus, Catalog: skucatalog.Embedded(),
			DES: expiringDES{expires}, Now: func() time.Time { return now },
			Recorder: decisionlog.NewRecorder((&testsupport.LogLines{}).Logger()), Metrics: NewMetrics(prometheus.NewRegistry())})
		req := request(admissionv1.Create, "Standard_D2s_v3", false)
		var o map[string]any
		_ = json.Unmarshal(req.Object.Raw, &o)
		spec := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
		spec["osDisk"].(map[string]any)["managedDisk"].(map[string]any)["diskEncryptionSet"] = map[string]any{"id": des}
		req.Object.Raw, _ = json.Marshal(o)
		resp := h.Handle(context.Background(), req)
		return &resp.AdmissionResponse
	}
	if resp := handle(expires.Add(-90 * 24 * time.Hour)); !resp.Allowed {
		t.Fatalf("denied three months before the key expires: %v", resp.Result)
	}
	resp := handle(expires.Add(time.Minute))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "[des-key-expiry]") || !strings.Contains(resp.Result.Message, "expired on 2026-05-01") {
		t.Fatalf("want a des-key-expiry denial after the expiry, got allowed=%v %v", resp.Allowed, resp.Result)
	}
}

// TestBindingJudgesKeyExpiryAtTheRequestsTime: binding a template whose Disk Encryption Set's key has
// expired puts new machines on a key Azure will not use, so the binding check denies it as the
// template's own admission would; before the expiry it is allowed.
func TestBindingJudgesKeyExpiryAtTheRequestsTime(t *testing.T) {
	expires := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	bound := staticResolver{Cluster: policy.ClusterInfo{Name: "c1", BoundBy: "spec.clusterName", Found: true},
		Locations: []policy.LocationCandidate{{Location: "eastus", Source: "cluster"}}}
	handle := func(now time.Time) admission.Response {
		h := New(Config{Mode: Binding, Policies: testPolicy(t), Resolver: bound,
			Objects: objects{"AzureMachineTemplate/keyed": amtWithDES("keyed", des)}, Catalog: skucatalog.Embedded(),
			DES: expiringDES{expires}, Now: func() time.Time { return now },
			Recorder: decisionlog.NewRecorder((&testsupport.LogLines{}).Logger()), Metrics: NewMetrics(prometheus.NewRegistry())})
		return h.Handle(context.Background(), bindingRequest(t, admissionv1.Create, mdKind, md("keyed", 3), nil))
	}
	if resp := handle(expires.Add(-90 * 24 * time.Hour)); !resp.Allowed {
		t.Fatalf("binding denied three months before the key expires: %v", resp.Result)
	}
	resp := handle(expires.Add(time.Minute))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "[des-key-expiry]") {
		t.Fatalf("want a des-key-expiry denial of the binding after the expiry, got allowed=%v %v", resp.Allowed, resp.Result)
	}
}
