// Package e2e runs the real webhook binary against a real kube-apiserver + etcd (built from source by
// hack/envtest-assets.sh) with the real CAPZ and CAPI CRDs from the module cache, and the webhook
// configurations rendered from the project's own Helm chart.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

const (
	releaseNamespace = "capz-encryption-webhook-system"
	sub              = testsupport.Subscription
	otherSub         = testsupport.OtherSubscription
	desEast          = "/subscriptions/" + sub + "/resourceGroups/keys-eastus/providers/Microsoft.Compute/diskEncryptionSets/des-eastus"
	desSouth         = "/subscriptions/" + sub + "/resourceGroups/keys-scus/providers/Microsoft.Compute/diskEncryptionSets/des-scus"
	desUser          = "/subscriptions/" + sub + "/resourceGroups/team-keys/providers/Microsoft.Compute/diskEncryptionSets/team-des"
	testNS           = "e2e"
	legacyName       = "legacy-noncompliant"
)

// e2ePolicy: customer-managed keys required; defaults for eastus and southcentralus only, so an
// object in westcentralus shows des-required. Data disks without managedDisk (CAPZ's etcd disk) get
// one, Premium_LRS, with the region's DES.
const e2ePolicy = `apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
requireCustomerManagedKeys: true
allowedDESSubscriptions: [` + sub + `]
defaults:
- name: eastus
  regions: [eastus]
  diskEncryptionSetID: ` + desEast + `
  dataDiskStorageAccountType: Premium_LRS
  encryptionAtHost: true
- name: southcentralus
  regions: [southcentralus]
  diskEncryptionSetID: ` + desSouth + `
  dataDiskStorageAccountType: Premium_LRS
  encryptionAtHost: true
`

var (
	env       *envtest.Environment
	k8s       client.Client
	clientset kubernetes.Interface
	warnings  = &warningRecorder{}
	hook      *webhookProcess
	pki       *testsupport.CA
	auditLog  string
	repoRoot  string
	setupTime time.Duration
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	start := time.Now()
	assets, helm := os.Getenv("KUBEBUILDER_ASSETS"), os.Getenv("HELM")
	if assets == "" || helm == "" {
		return 0, fmt.Errorf("KUBEBUILDER_ASSETS and HELM must be set: run `make test-e2e` (it builds kube-apiserver and etcd from source and installs helm)")
	}
	var err error
	if repoRoot, err = filepath.Abs("../.."); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp("", "capz-ew-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)

	bin := filepath.Join(tmp, "capz-encryption-webhook")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(repoRoot, "cmd", "capz-encryption-webhook")).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building the webhook: %w\n%s", err, out)
	}
	crds, err := loadCRDs()
	if err != nil {
		return 0, err
	}
	auditPolicy := filepath.Join(tmp, "audit-policy.yaml")
	auditLog = filepath.Join(tmp, "audit.log")
	if err := os.WriteFile(auditPolicy, []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources: [{group: infrastructure.cluster.x-k8s.io}]
- level: None
`), 0o600); err != nil {
		return 0, err
	}
	env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: crds},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", auditPolicy).
		Set("audit-log-path", auditLog).
		Set("audit-log-format", "json")
	cfg, err := env.Start()
	if err != nil {
		return 0, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	defer func() { _ = env.Stop() }()

	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = warnings
	if k8s, err = client.New(cfg, client.Options{}); err != nil {
		return 0, err
	}
	if clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return 0, err
	}
	ctx := context.Background()
	for _, ns := range []string{testNS, releaseNamespace} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return 0, err
		}
	}
	// An object that predates the webhook and breaks today's policy: its metadata must stay editable.
	legacy := template(legacyName, "eastus", "Standard_D2s_v3")
	setField(legacy, desPlaceholder(), "spec", "template", "spec", "osDisk", "managedDisk", "diskEncryptionSet", "id")
	if err := k8s.Create(ctx, legacy); err != nil {
		return 0, fmt.Errorf("creating the legacy object: %w", err)
	}

	if pki, err = testsupport.NewCA(filepath.Join(tmp, "certs")); err != nil {
		return 0, err
	}
	// The webhook runs with exactly the chart's ClusterRole, not as an administrator: a read the code
	// makes and the chart does not grant fails here, not in production.
	user, err := env.AddUser(envtest.User{Name: webhookUser}, nil)
	if err != nil {
		return 0, err
	}
	if err := grantChartRBAC(ctx, helm); err != nil {
		return 0, err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return 0, err
	}
	// The audit (the command, and serve's background audit) runs as another user, with exactly the
	// RBAC the chart renders with audit.enabled=true.
	auditUser, err := env.AddUser(envtest.User{Name: auditUserName}, nil)
	if err != nil {
		return 0, err
	}
	if err := grantChartAuditRBAC(ctx, helm); err != nil {
		return 0, err
	}
	auditConfig, err := auditUser.KubeConfig()
	if err != nil {
		return 0, err
	}
	auditKubeconfig = filepath.Join(tmp, "audit-kubeconfig")
	if err := os.WriteFile(auditKubeconfig, auditConfig, 0o600); err != nil {
		return 0, err
	}
	kubeconfigPath := filepath.Join(tmp, "kubeconfig")
	policyPath := filepath.Join(tmp, "policy.yaml")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return 0, err
	}
	if err := os.WriteFile(policyPath, []byte(e2ePolicy), 0o600); err != nil {
		return 0, err
	}
	hook, err = newWebhookProcess(bin, kubeconfigPath, pki.Dir, policyPath)
	if err != nil {
		return 0, err
	}
	// The suite's rules are about the webhook, not about how old the embedded data is: its webhook
	// reads the embedded records as a current catalog file of the site (today's date, the user's
	// subscription), so that a "not supported" or a missing size denies whatever year it is.
	// TestDefaultInstall runs a second webhook on the embedded catalog itself.
	siteCatalog := filepath.Join(tmp, "site-skus.json")
	embedded, err := os.ReadFile(filepath.Join(repoRoot, "internal", "skucatalog", "data", "vm-skus.json"))
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(siteCatalog, embedded, 0o600); err != nil {
		return 0, err
	}
	hook.baseArgs = []string{"--sku-catalog", siteCatalog}
	if err := hook.start(); err != nil {
		return 0, err
	}
	defer hook.stop()
	if err := installWebhookConfigurations(ctx, helm); err != nil {
		return 0, err
	}
	setupTime = time.Since(start)
	fmt.Printf("e2e setup took %s\n", setupTime.Round(time.Millisecond))
	return m.Run(), nil
}

// loadCRDs reads the CAPZ CRDs and CAPI's (core, kubeadm bootstrap and control plane: what CAPZ's
// flavors create) from the module cache (no copies in the repo), and changes two things:
//   - CAPI's schemas keep unknown fields (testsupport.KeepFieldsAcrossVersions): this apiserver has
//     no CAPI conversion webhook, and would otherwise store a flavor's v1beta1 KubeadmControlPlane
//     without its infrastructure reference;
//   - AzureMachineTemplate gets one more field: it stands for a field of a newer CAPZ that our Go
//     types do not know, which the mutation must carry through untouched.
func loadCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	crds, err := testsupport.FlavorCRDs(repoRoot)
	if err != nil {
		return nil, err
	}
	testsupport.KeepFieldsAcrossVersions(crds, "cluster.x-k8s.io", "controlplane.cluster.x-k8s.io", "bootstrap.cluster.x-k8s.io")
	for _, crd := range crds {
		if crd.Name == "azuremachinetemplates.infrastructure.cluster.x-k8s.io" {
			for i := range crd.Spec.Versions {
				spec := crd.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"].Properties["template"].Properties["spec"]
				spec.Properties["futureField"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
				crd.Spec.Versions[i].Schema.OpenAPIV3Schema.Properties["spec"].Properties["template"].Properties["spec"] = spec
			}
		}
	}
	return crds, nil
}

// webhookUser is the identity the webhook process authenticates as.
const webhookUser = "capz-encryption-webhook"

// grantChartRBAC installs the chart's ClusterRoles (default values) and binds the webhook's to
// webhookUser, as the chart binds it to the pods' service account; the metrics reader role is bound
// to a scraper service account (see scrapeToken).
func grantChartRBAC(ctx context.Context, helm string) error {
	objs, err := chart.Render(chart.Options{Helm: helm, Namespace: releaseNamespace})
	if err != nil {
		return err
	}
	var webhookRole, readerRole string
	for _, o := range chart.Find(objs, "ClusterRole") {
		o.SetResourceVersion("")
		if err := k8s.Create(ctx, o); err != nil {
			return fmt.Errorf("installing ClusterRole %s: %w", o.GetName(), err)
		}
		if strings.HasSuffix(o.GetName(), "-metrics-reader") {
			readerRole = o.GetName()
		} else {
			webhookRole = o.GetName()
		}
	}
	if webhookRole == "" || readerRole == "" {
		return fmt.Errorf("the chart rendered ClusterRoles %q and %q", webhookRole, readerRole)
	}
	for _, b := range []*rbacv1.ClusterRoleBinding{
		{ObjectMeta: metav1.ObjectMeta{Name: "e2e-webhook"}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: webhookRole},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: webhookUser}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "e2e-scraper"}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: readerRole},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: scraperSA, Namespace: releaseNamespace}}},
	} {
		if err := k8s.Create(ctx, b); err != nil {
			return err
		}
	}
	for _, sa := range []string{scraperSA, strangerSA} {
		if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: releaseNamespace}}); err != nil {
			return err
		}
	}
	return nil
}

// auditUserName is the identity of the audit; auditKubeconfig its kubeconfig file.
const auditUserName = "capz-encryption-webhook-audit"

var auditKubeconfig string

// grantChartAuditRBAC installs the ClusterRoles and Roles the chart renders with audit.enabled=true
// (those not installed already) and binds every one of them, but the metrics reader's, to
// auditUserName.
func grantChartAuditRBAC(ctx context.Context, helm string) error {
	// --skip-tests: the helm test's Role is not the audit's (TestSelftest grants it to its own user).
	objs, err := chart.Render(chart.Options{Helm: helm, Namespace: releaseNamespace, Args: []string{"--skip-tests", "--set", "audit.enabled=true"}})
	if err != nil {
		return err
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: auditUserName}}
	for _, o := range append(chart.Find(objs, "ClusterRole"), chart.Find(objs, "Role")...) {
		if strings.HasSuffix(o.GetName(), "-metrics-reader") {
			continue
		}
		o.SetResourceVersion("")
		if err := k8s.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("installing %s %s: %w", o.GetKind(), o.GetName(), err)
		}
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: o.GetKind(), Name: o.GetName()}
		var b client.Object = &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-audit-" + o.GetName()}, RoleRef: ref, Subjects: subject}
		if o.GetKind() == "Role" {
			b = &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-audit-" + o.GetName(), Namespace: o.GetNamespace()}, RoleRef: ref, Subjects: subject}
		}
		if err := k8s.Create(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// Service accounts that scrape metrics: one bound to the chart's metrics reader role, one not.
const (
	scraperSA  = "e2e-scraper"
	strangerSA = "e2e-stranger"
)

// installWebhookConfigurations renders the chart with default values and installs its two webhook
// configurations, with the client config pointed at the local server instead of the Service.
// The namespaces of the default-install webhook (defaultInstallNamespaces) are left out, as a second
// install of the chart would leave out the namespaces of another.
func installWebhookConfigurations(ctx context.Context, helm string) error {
	m, v, err := suiteWebhooks(helm)
	if err != nil {
		return err
	}
	if err := k8s.Create(ctx, m); err != nil {
		return err
	}
	return k8s.Create(ctx, v)
}

// suiteWebhooks renders the suite's own webhook configurations (see installWebhookConfigurations),
// for the tests that take one out and put it back.
func suiteWebhooks(helm string) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	exclude, err := json.Marshal(defaultInstallNamespaces)
	if err != nil {
		return nil, nil, err
	}
	// The namespaces of the CEL parity test (cel_test.go) are labelled with their side, and are
	// not this webhook's either.
	return chart.WebhooksForURL(helm, releaseNamespace, fmt.Sprintf("https://127.0.0.1:%d", hook.webhookPort), pki.PEM,
		"--set-json", "webhook.namespaceSelector.excludeNamespaces="+string(exclude),
		"--set-json", `webhook.namespaceSelector.matchExpressions=[{"key":"`+labelSide+`","operator":"DoesNotExist"}]`)
}

// --- the webhook process ---------------------------------------------------------------------------

type webhookProcess struct {
	bin, kubeconfig, certDir, policy string
	webhookPort, probePort, metrics  int
	// baseArgs are passed on every start, before start's own.
	baseArgs []string

	mu    sync.Mutex
	cmd   *exec.Cmd
	lines []string
	done  chan struct{}
	exit  int // exit code of the last process, once done is closed
}

func newWebhookProcess(bin, kubeconfig, certDir, policy string) (*webhookProcess, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	return &webhookProcess{bin: bin, kubeconfig: kubeconfig, certDir: certDir, policy: policy,
		webhookPort: ports[0], probePort: ports[1], metrics: ports[2]}, nil
}

// start runs `serve` and waits for /readyz. extra flags come last and so override the defaults here
// (no shutdown delay, so that a stop takes effect at once).
func (w *webhookProcess) start(extra ...string) error {
	args := append([]string{"serve",
		"--kubeconfig", w.kubeconfig, "--cert-dir", w.certDir, "--policy", w.policy, "--policy-reload-interval", "200ms",
		"--webhook-host", "127.0.0.1", "--webhook-port", fmt.Sprint(w.webhookPort),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", w.probePort),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", w.metrics),
		"--shutdown-delay", "0s", "--graceful-shutdown-timeout", "5s"}, append(slices.Clone(w.baseArgs), extra...)...)
	cmd := exec.Command(w.bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	w.mu.Lock()
	w.cmd, w.done = cmd, done
	w.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, sc.Text())
			w.mu.Unlock()
		}
		_ = cmd.Wait()
		w.mu.Lock()
		w.exit = cmd.ProcessState.ExitCode()
		w.mu.Unlock()
		close(done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", w.probePort))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("the webhook exited during start:\n%s", strings.Join(w.logLines(), "\n"))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("the webhook was not ready within 60s:\n%s", strings.Join(w.logLines(), "\n"))
}

// stop sends SIGTERM and waits: the manager shuts down gracefully.
func (w *webhookProcess) stop() {
	w.mu.Lock()
	cmd, done := w.cmd, w.done
	w.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (w *webhookProcess) exitCode() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.exit
}

func (w *webhookProcess) logLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

// auditLines returns the webhook's decision log lines, decoded.
func (w *webhookProcess) auditLines() []map[string]any {
	var out []map[string]any
	for _, l := range w.logLines() {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "admission decision" {
			out = append(out, m)
		}
	}
	return out
}

// auditLine waits for the webhook's decision line that match accepts and returns it, or nil after
// timeout. The webhook writes the line before it answers, but the test reads the process's output
// through a pipe and a goroutine, so the answer can reach the test first.
func (w *webhookProcess) auditLine(timeout time.Duration, match func(map[string]any) bool) map[string]any {
	deadline := time.Now().Add(timeout)
	for {
		lines := w.auditLines()
		for i := len(lines) - 1; i >= 0; i-- {
			if match(lines[i]) {
				return lines[i]
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// --- warnings ---------------------------------------------------------------------------------------

// warningRecorder keeps the admission warnings the apiserver relays to the client.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// kubeVersion is the version of the kube-apiserver under test: helm installed with `go install` has
// no cluster to ask and would otherwise assume v1.20.
func kubeVersion() string {
	if v := os.Getenv("K8S_VERSION"); v != "" {
		return v
	}
	return "1.37.2"
}
