package admission

import (
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// mutateResponse only patches: denials and warnings come from the validating webhook, which judges
// the patched object and computes the same findings, so the client gets each message once.
func mutateResponse(d *policy.Decision) admission.Response {
	resp := admission.Allowed("")
	if len(d.Patch) > 0 {
		resp.Patches = d.Patch
		pt := admissionv1.PatchTypeJSONPatch
		resp.PatchType = &pt
	}
	resp.AuditAnnotations = map[string]string{"region": regionNote(d)}
	if len(d.Injected) > 0 {
		resp.AuditAnnotations["injected"] = strings.Join(d.Injected, ",")
		resp.AuditAnnotations["default"] = d.DefaultName
	}
	return resp
}

// validateResponse answers with the decision. A denial is a 403 whose message lists every
// violation, and whose status details carry one cause per violation (field = the field path,
// reason = the rule ID, message), the way apierrors.NewInvalid reports fields: the apiserver passes
// the webhook's status through to the client, so kubectl, Argo CD and Flux can show per-field errors
// and tools can read the rule without parsing the message. group is the object's API group.
func validateResponse(d *policy.Decision, group string) admission.Response {
	var resp admission.Response
	if d.Allowed {
		resp = admission.Allowed("")
	} else {
		var b strings.Builder
		fmt.Fprintf(&b, "capz-encryption-webhook denied %s %s/%s:", d.Kind, d.Namespace, d.Name)
		violations := d.Violations()
		causes := make([]metav1.StatusCause, 0, len(violations))
		for _, f := range violations {
			fmt.Fprintf(&b, " [%s] %s: %s;", f.Rule, f.Field, f.Message)
			causes = append(causes, metav1.StatusCause{Type: metav1.CauseType(f.Rule), Field: f.Field, Message: f.Message})
		}
		resp = admission.Denied(strings.TrimSuffix(b.String(), ";"))
		resp.Result.Code = http.StatusForbidden
		resp.Result.Reason = metav1.StatusReasonForbidden
		resp.Result.Details = &metav1.StatusDetails{Name: d.Name, Group: group, Kind: d.Kind, Causes: causes}
	}
	for _, f := range d.Warnings() {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("capz-encryption-webhook [%s] %s: %s", f.Rule, f.Field, f.Message))
	}
	resp.AuditAnnotations = map[string]string{"region": regionNote(d)}
	if d.Exempt != "" {
		resp.AuditAnnotations["exempt"] = d.Exempt
	}
	return resp
}

func regionNote(d *policy.Decision) string {
	if d.Region == "" {
		return "unknown"
	}
	return d.Region + " (" + d.RegionSource + ")"
}
