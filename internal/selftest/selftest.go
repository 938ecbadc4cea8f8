// Package selftest checks, from a client's seat, that the installed webhook enforces: it sends the
// API server a server-side dry run of an AzureMachineTemplate whose Disk Encryption Set ID is the
// documentation's placeholder (what the chart's NOTES.txt tells people to try) and expects the
// des-id-malformed denial back. Nothing is created. The chart's `helm test` Pod runs it (`selftest`)
// with in-cluster credentials; the distroless image has no shell, curl or kubectl.
package selftest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Rule is the rule the probe object breaks.
const Rule = policy.RuleDESIDMalformed

// Placeholder is the DES ID of the probe: the documentation's placeholder, as in NOTES.txt.
const Placeholder = "/subscriptions/subscriptionId/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/des"

// Expect is what the webhook must answer.
type Expect string

const (
	// ExpectDeny: a 403 from the webhook naming the rule (the policy enforces it).
	ExpectDeny Expect = "deny"
	// ExpectWarn: admitted with an admission warning naming the rule (policy.warnOnly on, or the rule
	// at warn).
	ExpectWarn Expect = "warn"
)

var amt = schema.GroupVersionResource{Group: policy.Group, Version: "v1beta1", Resource: "azuremachinetemplates"}

// Probe returns the AzureMachineTemplate the self-test sends. generateName: a dry run with a fixed
// name would meet an existing object of that name if the webhook let it through.
func Probe(namespace string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": policy.Group + "/v1beta1",
		"kind":       "AzureMachineTemplate",
		"metadata": map[string]any{
			"generateName": "capz-encryption-webhook-selftest-",
			"namespace":    namespace,
			"labels":       map[string]any{"app.kubernetes.io/name": "capz-encryption-webhook-selftest"},
		},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"vmSize": "Standard_D4s_v3",
			"osDisk": map[string]any{
				"osType": "Linux", "diskSizeGB": int64(128),
				"managedDisk": map[string]any{
					"storageAccountType": "Premium_LRS",
					"diskEncryptionSet":  map[string]any{"id": Placeholder},
				},
			},
		}}},
	}}
	return u
}

// Run sends the probe as a server-side dry run with cfg and judges the answer. It returns what it saw
// when the webhook answered as expected, else an error that says what is wrong and where to look.
func Run(ctx context.Context, cfg *rest.Config, namespace string, expect Expect) (string, error) {
	cfg = rest.CopyConfig(cfg)
	warnings := &warningCollector{}
	cfg.WarningHandler = warnings
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	_, err = client.Resource(amt).Namespace(namespace).Create(ctx, Probe(namespace), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return Judge(err, warnings.take(), namespace, expect)
}

// compiledPolicy starts the apiserver's message for a denial by the rule's compiled
// ValidatingAdmissionPolicy (internal/celpolicy names them capz-encryption-webhook.<rule>.<kind>).
const compiledPolicy = "ValidatingAdmissionPolicy 'capz-encryption-webhook." + string(Rule) + "."

// Judge decides whether the API server's answer to the probe (err, and the warnings it relayed) is the
// expected one.
func Judge(err error, warnings []string, namespace string, expect Expect) (string, error) {
	marker := "[" + string(Rule) + "]"
	var ours []string
	warnOnly := false
	for _, w := range warnings {
		if strings.Contains(w, "capz-encryption-webhook") && strings.Contains(w, marker) {
			ours = append(ours, w)
			warnOnly = warnOnly || strings.Contains(w, "[warn-only: would deny]")
		}
	}
	if err == nil {
		if expect == ExpectWarn && len(ours) > 0 {
			return "admitted with the expected warning: " + ours[0], nil
		}
		msg := fmt.Sprintf("the dry run of an AzureMachineTemplate with a placeholder Disk Encryption Set ID in namespace %s was ADMITTED", namespace)
		switch {
		case expect == ExpectDeny && warnOnly:
			return "", fmt.Errorf("%s with a warning instead of the %s denial: policy.warnOnly is on (%s)", msg, Rule, ours[0])
		case expect == ExpectDeny && len(ours) > 0:
			return "", fmt.Errorf("%s with a warning instead of the %s denial: the policy sets %s to warn (%s)", msg, Rule, Rule, ours[0])
		default:
			return "", fmt.Errorf("%s: the webhook did not answer %s. Is it installed, are its webhook configurations present, "+
				"and do their namespaceSelector and matchConditions cover namespace %s? (warnings: %q)", msg, expect, namespace, warnings)
		}
	}
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		return "", fmt.Errorf("the dry run failed before the API server answered: %w", err)
	}
	status := se.ErrStatus
	fromUs := strings.Contains(status.Message, "capz-encryption-webhook denied")
	// With a cel.mode the apiserver's compiled ValidatingAdmissionPolicy refuses the probe before any
	// validating webhook is asked (admission policies run first); its message carries the rule as the
	// webhook's does.
	compiled := strings.Contains(status.Message, compiledPolicy)
	switch {
	case expect == ExpectDeny && fromUs && status.Code == 403 && hasCause(status.Details, Rule):
		return fmt.Sprintf("denied as expected (HTTP %d, cause %s at %s): %s", status.Code, Rule, causeField(status.Details, Rule), status.Message), nil
	case expect == ExpectDeny && compiled && status.Code == 403 && strings.Contains(status.Message, marker):
		return fmt.Sprintf("denied as expected by the compiled admission policy (HTTP %d; the CEL layer in the API server answered, "+
			"so this does not show that the webhook itself answers): %s", status.Code, status.Message), nil
	case fromUs || compiled:
		return "", fmt.Errorf("the webhook or its compiled admission policy answered, but not with the %s denial the self-test expects (expect %s): %w", Rule, expect, err)
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("the API server does not serve azuremachinetemplates.%s: are Cluster API Provider Azure's CRDs installed? %w", policy.Group, err)
	case apierrors.IsForbidden(err) && !strings.Contains(status.Message, "admission webhook") && !strings.Contains(status.Message, "AdmissionPolicy"):
		return "", fmt.Errorf("RBAC refused the dry run: the self-test's ServiceAccount needs create on azuremachinetemplates in %s: %w", namespace, err)
	case strings.Contains(status.Message, "failed calling webhook"):
		return "", fmt.Errorf("the API server could not call the webhook (Service, endpoints, TLS or caBundle): %w", err)
	default:
		return "", fmt.Errorf("unexpected answer to the dry run: %w", err)
	}
}

func hasCause(d *metav1.StatusDetails, rule policy.RuleID) bool { return causeField(d, rule) != "" }

func causeField(d *metav1.StatusDetails, rule policy.RuleID) string {
	if d == nil {
		return ""
	}
	for _, c := range d.Causes {
		if string(c.Type) == string(rule) {
			return c.Field
		}
	}
	return ""
}

// warningCollector keeps the warnings the API server relays (admission warnings among them).
type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningCollector) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}
