package chart_test

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

func renderTests(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := chart.Render(chart.Options{Helm: helmPath(t), Args: append([]string{"--show-only", "templates/tests/selftest.yaml"}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestHelmTestHook: `helm test` runs the image's selftest with the least RBAC that lets it make its
// dry run, and every object it needs is a test hook, so none exists outside `helm test`.
func TestHelmTestHook(t *testing.T) {
	objs := renderTests(t)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
		if o.GetAnnotations()["helm.sh/hook"] != "test" {
			t.Errorf("%s %s is not a helm test hook: it would be installed with the release", o.GetKind(), o.GetName())
		}
		if _, ok := o.GetLabels()["app.kubernetes.io/instance"]; ok {
			t.Errorf("%s %s carries app.kubernetes.io/instance: the webhook's selectors would pick it", o.GetKind(), o.GetName())
		}
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, []string{"Pod", "Role", "RoleBinding", "ServiceAccount"}) {
		t.Fatalf("rendered %v", kinds)
	}
	// RBAC and the service account go once the test passed; the Pod stays for `helm test --logs`.
	for _, o := range objs {
		policy := o.GetAnnotations()["helm.sh/hook-delete-policy"]
		want := "before-hook-creation,hook-succeeded"
		if o.GetKind() == "Pod" {
			want = "before-hook-creation"
		}
		if policy != want {
			t.Errorf("%s: hook-delete-policy %q, want %q", o.GetKind(), policy, want)
		}
	}
	sa := typed[*corev1.ServiceAccount](t, one(t, objs, "ServiceAccount"))
	role := typed[*rbacv1.Role](t, one(t, objs, "Role"))
	rb := typed[*rbacv1.RoleBinding](t, one(t, objs, "RoleBinding"))
	pod := typed[*corev1.Pod](t, one(t, objs, "Pod"))
	if sa.Namespace != ns || pod.Namespace != ns || role.Namespace != "default" || rb.Namespace != "default" {
		t.Errorf("namespaces: sa %s pod %s role %s binding %s", sa.Namespace, pod.Namespace, role.Namespace, rb.Namespace)
	}
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Verbs, []string{"create"}) ||
		!slices.Equal(role.Rules[0].Resources, []string{"azuremachinetemplates"}) || !slices.Equal(role.Rules[0].APIGroups, []string{"infrastructure.cluster.x-k8s.io"}) ||
		len(role.Rules[0].ResourceNames) != 0 {
		t.Errorf("Role rules = %+v, want create on azuremachinetemplates only", role.Rules)
	}
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 || rb.Subjects[0].Name != sa.Name || rb.Subjects[0].Namespace != ns {
		t.Errorf("RoleBinding %+v does not bind the Role to the test's ServiceAccount", rb)
	}
	if pod.Spec.ServiceAccountName != sa.Name || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("pod: serviceAccount %s restartPolicy %s", pod.Spec.ServiceAccountName, pod.Spec.RestartPolicy)
	}
	c := pod.Spec.Containers[0]
	dep := one(t, render(t), "Deployment")
	image, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if c.Image != image[0].(map[string]any)["image"] {
		t.Errorf("the test runs %s, not the webhook's image", c.Image)
	}
	if !slices.Equal(c.Args, []string{"selftest", "--namespace=default", "--expect=deny"}) {
		t.Errorf("args %q", c.Args)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container securityContext %+v", c.SecurityContext)
	}
	// Never selected by the webhook's Deployment, Services or PDB.
	for _, o := range render(t) {
		sel, found, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
		if !found {
			sel, found, _ = unstructured.NestedStringMap(o.Object, "spec", "selector")
		}
		if found && len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s %s selects the test Pod", o.GetKind(), o.GetName())
		}
	}
}

// TestHelmTestExpectation: the test expects what the policy in the values makes the webhook answer.
func TestHelmTestExpectation(t *testing.T) {
	args := func(objs []*unstructured.Unstructured) []string {
		t.Helper()
		return typed[*corev1.Pod](t, one(t, objs, "Pod")).Spec.Containers[0].Args
	}
	for _, c := range []struct {
		name   string
		values []string
		want   string
	}{
		{"warnOnly", []string{"--set", "policy.warnOnly=true"}, "--expect=warn"},
		{"the rule at warn", []string{"--set", "policy.rules.des-id-malformed=warn"}, "--expect=warn"},
		{"Palette values: built-in actions", scenarioArgs(t, "palette"), "--expect=deny"},
		{"another namespace", []string{"--set", "tests.namespace=team-a"}, "--namespace=team-a"},
	} {
		if got := args(renderTests(t, c.values...)); !slices.Contains(got, c.want) {
			t.Errorf("%s: args %q lack %s", c.name, got, c.want)
		}
	}
	// Nothing a client could see: no test.
	for _, values := range [][]string{
		{"--set", "policy.rules.des-id-malformed=audit"},
		{"--set", "webhook.validating.enabled=false"},
		{"--set", "tests.enabled=false"},
	} {
		if err := renderErr(t, append([]string{"--show-only", "templates/tests/selftest.yaml"}, values...)...); err == nil || !strings.Contains(err.Error(), "could not find template") {
			t.Errorf("%v: the test is rendered (err %v)", values, err)
		}
	}
	// A namespace the webhooks leave out could never show a denial.
	for _, n := range []string{"kube-system", ns} {
		if err := renderErr(t, "--set", "tests.namespace="+n); err == nil || !strings.Contains(err.Error(), "left out of the webhooks' namespaceSelector") {
			t.Errorf("tests.namespace=%s: %v", n, err)
		}
	}
}
