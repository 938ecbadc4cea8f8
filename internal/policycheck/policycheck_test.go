package policycheck

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

func review(t *testing.T, labels, data map[string]string) admission.Request {
	t.Helper()
	raw, err := json.Marshal(corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "capz-encryption-webhook-policy", Namespace: "sys", Labels: labels}, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "u", Operation: admissionv1.Update, Namespace: "sys", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Object: runtime.RawExtension{Raw: raw}}}
}

// TestPolicyConfigMapChecked: the same parser as the webhook's, the same errors.
func TestPolicyConfigMapChecked(t *testing.T) {
	h := &Handler{Version: "v0.1.0", Log: logr.Discard()}
	const head = "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n"
	bad := head + "rulez:\n  sku-unknown: warn\n"
	_, parseErr := policy.Parse(Key, []byte(bad))
	if parseErr == nil {
		t.Fatal("the bad policy parses")
	}
	for _, c := range []struct {
		name    string
		labels  map[string]string
		data    map[string]string
		allowed bool
		want    string
	}{
		{"good", nil, map[string]string{Key: head + "warnOnly: true\n"}, true, ""},
		{"palette values", nil, map[string]string{Key: "cloud:\n  azure:\n    encryptionAtHost: true\n"}, true, ""},
		{"bad key", nil, map[string]string{Key: bad}, false, parseErr.Error()},
		{"bad rule action", nil, map[string]string{Key: head + "rules:\n  sku-unknown: maybe\n"}, false, "sku-unknown"},
		{"not YAML", nil, map[string]string{Key: "{{{"}, false, "does not parse"},
		{"no policy key", nil, map[string]string{"policy.yml": head}, false, `no key "policy.yaml"`},
		{"same version, labelled by the chart", map[string]string{LabelVersion: "0.1.0"}, map[string]string{Key: bad}, false, "rulez"},
		{"another version: an upgrade in progress", map[string]string{LabelVersion: "0.2.0"}, map[string]string{Key: bad}, true, "did not check"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := h.Handle(context.Background(), review(t, c.labels, c.data))
			if resp.Allowed != c.allowed {
				t.Fatalf("allowed = %v: %+v", resp.Allowed, resp.Result)
			}
			got := strings.Join(resp.Warnings, "\n")
			if !c.allowed {
				got = resp.Result.Message
				if resp.Result.Code != http.StatusUnprocessableEntity {
					t.Errorf("code = %d", resp.Result.Code)
				}
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("answer %q lacks %q", got, c.want)
			}
		})
	}
	if resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, Object: runtime.RawExtension{Raw: []byte("[")}}}); resp.Allowed {
		t.Error("an undecodable ConfigMap was allowed")
	}
}
