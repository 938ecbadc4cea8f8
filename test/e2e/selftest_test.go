package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// selftestUser is the identity the selftest runs as: it holds exactly the rules of the Role the
// chart's helm test gives its ServiceAccount, so the test also shows that this Role is enough.
const selftestUser = "capz-encryption-webhook-selftest"

// selftestKubeconfig creates selftestUser, grants it the rules of the chart's helm test Role in each
// namespace (the chart renders the Role for tests.namespace; here the same rules go where the test
// needs them) and returns its kubeconfig file.
func selftestKubeconfig(t *testing.T, namespaces ...string) string {
	t.Helper()
	user, err := env.AddUser(envtest.User{Name: selftestUser}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "selftest-kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	objs, err := chart.Render(chart.Options{Helm: mustEnv(t, "HELM"), Namespace: releaseNamespace,
		Args: []string{"--show-only", "templates/tests/selftest.yaml", "--set", "tests.namespace=" + testNS}})
	if err != nil {
		t.Fatal(err)
	}
	roles := chart.Find(objs, "Role")
	if len(roles) != 1 {
		t.Fatalf("the chart's helm test renders %d Roles", len(roles))
	}
	var role rbacv1.Role
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(roles[0].Object, &role); err != nil {
		t.Fatal(err)
	}
	for _, ns := range namespaces {
		r := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "e2e-selftest", Namespace: ns}, Rules: role.Rules}
		b := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-selftest", Namespace: ns},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: selftestUser}}}
		if err := k8s.Create(ctx(t), r); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Create(ctx(t), b); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// runSelftest runs the binary's selftest subcommand against the e2e apiserver, as the chart's helm
// test Pod runs it (there with in-cluster credentials).
func runSelftest(t *testing.T, kubeconfig string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(hook.bin, append([]string{"selftest", "--kubeconfig", kubeconfig, "--timeout", "20s"}, args...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatal(err)
		return "", 0
	}
}

// TestSelftest: the dry run the chart's helm test makes, with the RBAC the chart gives it, passes
// through the real apiserver and webhook; and fails, saying why, where the webhook does not deny.
func TestSelftest(t *testing.T) {
	kubeconfig := selftestKubeconfig(t, testNS, releaseNamespace)
	out, code := runSelftest(t, kubeconfig, "--namespace", testNS)
	if code != 0 || !strings.Contains(out, "selftest passed: denied as expected (HTTP 403, cause des-id-malformed at spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id)") {
		t.Errorf("in a namespace the webhook covers: exit %d\n%s", code, out)
	}
	// The release namespace is left out of the webhooks' namespaceSelector: there the probe is admitted.
	out, code = runSelftest(t, kubeconfig, "--namespace", releaseNamespace)
	if code != 1 || !strings.Contains(out, "was ADMITTED: the webhook did not answer deny") {
		t.Errorf("in a namespace the webhook does not cover: exit %d\n%s", code, out)
	}
	// Expecting a warning (warnOnly) from a webhook that denies.
	out, code = runSelftest(t, kubeconfig, "--namespace", testNS, "--expect", "warn")
	if code != 1 || !strings.Contains(out, "not with the des-id-malformed denial the self-test expects (expect warn)") {
		t.Errorf("expecting a warning: exit %d\n%s", code, out)
	}
	// Without the Role: RBAC, not the webhook, refuses.
	out, code = runSelftest(t, kubeconfig, "--namespace", "default")
	if code != 1 || !strings.Contains(out, "RBAC refused the dry run") {
		t.Errorf("without the Role: exit %d\n%s", code, out)
	}
	// No webhook answering (failurePolicy Fail): the apiserver cannot call it.
	hook.stop()
	t.Cleanup(func() {
		if err := hook.start(); err != nil {
			t.Fatalf("restarting the webhook: %v", err)
		}
	})
	out, code = runSelftest(t, kubeconfig, "--namespace", testNS)
	if code != 1 || !strings.Contains(out, "could not call the webhook") {
		t.Errorf("with the webhook down: exit %d\n%s", code, out)
	}
}
