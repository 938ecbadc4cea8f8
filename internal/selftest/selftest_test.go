package selftest

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy"
)

// denial is the error the API server returns for a webhook denial (webhookerrors.ToStatusErr).
func denial(rule string, causes bool) error {
	st := metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden,
		Message: `admission webhook "validate.capz-encryption-webhook.io" denied the request: capz-encryption-webhook denied AzureMachineTemplate default/x: [` +
			rule + `] spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id: not a valid Disk Encryption Set ID`}
	if causes {
		st.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseType(rule), Field: "spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id"}}}
	}
	return &apierrors.StatusError{ErrStatus: st}
}

// vapDenial is the error the API server returns when a ValidatingAdmissionPolicy denies (the
// validating admission policy dispatcher of k8s.io/apiserver: Forbidden, the message after the
// policy's and binding's names, one cause with only that message).
func vapDenial(policyName, rule string) error {
	msg := `azuremachinetemplates.infrastructure.cluster.x-k8s.io "x" is forbidden: ValidatingAdmissionPolicy '` + policyName +
		`' with binding '` + policyName + `' denied request: capz-encryption-webhook [` + rule +
		`] spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id: not a valid Disk Encryption Set ID`
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden,
		Reason: metav1.StatusReasonForbidden, Message: msg, Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Message: msg}}}}}
}

// TestCompiledPolicyName: the name Judge recognises is the one celpolicy gives the rule's policy for
// the probe's kind.
func TestCompiledPolicyName(t *testing.T) {
	res, err := celpolicy.Compile(nil, nil, celpolicy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := compiledPolicy[len("ValidatingAdmissionPolicy '"):] + "azuremachinetemplate"
	for _, o := range res.ValidatingPolicies {
		if o.Name == want {
			return
		}
	}
	t.Errorf("celpolicy compiles no ValidatingAdmissionPolicy %q", want)
}

func TestJudge(t *testing.T) {
	warn := "capz-encryption-webhook [des-id-malformed] spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id: not valid"
	warnOnly := "capz-encryption-webhook [des-id-malformed] spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id: [warn-only: would deny] not valid"
	gr := schema.GroupResource{Group: "infrastructure.cluster.x-k8s.io", Resource: "azuremachinetemplates"}
	cases := []struct {
		name     string
		err      error
		warnings []string
		expect   Expect
		pass     bool
		want     string
	}{
		{"the denial", denial("des-id-malformed", true), nil, ExpectDeny, true, "denied as expected (HTTP 403, cause des-id-malformed at spec.template.spec.osDisk"},
		{"a denial without causes", denial("des-id-malformed", false), nil, ExpectDeny, false, "not with the des-id-malformed denial"},
		{"the compiled policy's denial", vapDenial("capz-encryption-webhook.des-id-malformed.azuremachinetemplate", "des-id-malformed"), nil, ExpectDeny, true,
			"denied as expected by the compiled admission policy (HTTP 403; the CEL layer"},
		{"the compiled policy's denial, warning expected", vapDenial("capz-encryption-webhook.des-id-malformed.azuremachinetemplate", "des-id-malformed"), nil, ExpectWarn, false,
			"not with the des-id-malformed denial the self-test expects (expect warn)"},
		{"another compiled policy's denial", vapDenial("capz-encryption-webhook.ade-extension.azuremachinetemplate", "ade-extension"), nil, ExpectDeny, false, "unexpected answer"},
		{"someone else's admission policy", vapDenial("no-placeholders", "x"), nil, ExpectDeny, false, "unexpected answer"},
		{"a denial by another rule", denial("sku-unknown", true), nil, ExpectDeny, false, "not with the des-id-malformed denial"},
		{"admitted: no webhook", nil, nil, ExpectDeny, false, "ADMITTED: the webhook did not answer deny"},
		{"admitted with warn-only", nil, []string{warnOnly}, ExpectDeny, false, "policy.warnOnly is on"},
		{"admitted, rule at warn", nil, []string{warn}, ExpectDeny, false, "sets des-id-malformed to warn"},
		{"expected warning", nil, []string{warnOnly}, ExpectWarn, true, "admitted with the expected warning"},
		{"warning expected, none came", nil, []string{"some other warning"}, ExpectWarn, false, "did not answer warn"},
		{"warning expected, denied", denial("des-id-malformed", true), nil, ExpectWarn, false, "expect warn"},
		{"no CRD", apierrors.NewNotFound(gr, ""), nil, ExpectDeny, false, "CRDs installed"},
		{"RBAC", apierrors.NewForbidden(gr, "", errors.New(`User "system:serviceaccount:x:y" cannot create resource`)), nil, ExpectDeny, false, "RBAC refused"},
		{"webhook unreachable", apierrors.NewInternalError(errors.New(`failed calling webhook "validate.capz-encryption-webhook.io": tls: bad certificate`)), nil, ExpectDeny, false, "could not call the webhook"},
		{"no answer", errors.New("dial tcp: connection refused"), nil, ExpectDeny, false, "before the API server answered"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := Judge(c.err, c.warnings, "default", c.expect)
			if (err == nil) != c.pass {
				t.Fatalf("pass = %v (%q, %v), want %v", err == nil, msg, err, c.pass)
			}
			got := msg
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("%q lacks %q", got, c.want)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	p := Probe("team-a")
	if p.GetNamespace() != "team-a" || p.GetGenerateName() == "" || p.GetName() != "" {
		t.Errorf("probe metadata %v", p.Object["metadata"])
	}
}
