package e2e

// Operational behaviour of `serve` through the real binary: probes and metrics, policy hot reload,
// graceful shutdown. Each test leaves the webhook as it found it (running, serving e2ePolicy), so the
// order of tests does not matter.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// metricValue returns the value of the sample of name whose labels include want (Prometheus text
// format), or false when there is none.
func metricValue(body, name string, want map[string]string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if len(m) < 2 || m[1] != name {
			continue
		}
		got := map[string]string{}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			got[p[1]] = p[2]
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if match {
			v, err := strconv.ParseFloat(m[3], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// scrapeToken is a bearer token of a service account: the webhook's metrics filter asks the
// apiserver who it is (TokenReview) and whether it may GET /metrics (SubjectAccessReview).
func scrapeToken(t *testing.T, sa string) string {
	t.Helper()
	tr, err := clientset.CoreV1().ServiceAccounts(releaseNamespace).CreateToken(ctx(t), sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s: %v", sa, err)
	}
	return tr.Status.Token
}

// getMetrics GETs /metrics over HTTPS (the certificate is self-signed: no --metrics-cert-dir here)
// with token as bearer ("" for none).
func getMetrics(t *testing.T, w *webhookProcess, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/metrics", w.metrics), http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // self-signed metrics certificate
	// Readiness does not wait for the metrics server: just after a (re)start it may not listen yet.
	resp, err := c.Do(req)
	for deadline := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(deadline); resp, err = c.Do(req) {
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var scraperToken struct {
	once  sync.Once
	token string
}

func scrape(t *testing.T) string {
	t.Helper()
	scraperToken.once.Do(func() { scraperToken.token = scrapeToken(t, scraperSA) })
	code, body := getMetrics(t, hook, scraperToken.token)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics as %s: %d %s", scraperSA, code, body)
	}
	return body
}

// TestMetricsNeedAnAuthorisedToken: metrics are HTTPS, and only a token bound to the chart's metrics
// reader role gets them (the webhook itself runs with exactly the chart's ClusterRole, which must
// let it make the two reviews).
func TestMetricsNeedAnAuthorisedToken(t *testing.T) {
	if code, _ := getMetrics(t, hook, ""); code != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", code)
	}
	if code, _ := getMetrics(t, hook, "not-a-token"); code == http.StatusOK {
		t.Errorf("a bad token got the metrics")
	}
	if code, _ := getMetrics(t, hook, scrapeToken(t, strangerSA)); code != http.StatusForbidden {
		t.Errorf("a service account without the metrics reader role: %d, want 403", code)
	}
	if body := scrape(t); !strings.Contains(body, "capz_encryption_webhook_policy_info") {
		t.Error("the scraper's metrics lack the webhook's")
	}
	if code, _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", hook.metrics)); err == nil && code == http.StatusOK {
		t.Error("metrics are served over plain HTTP")
	}
}

func TestProbesAndMetrics(t *testing.T) {
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d%s", hook.probePort, p)); err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %q %v", p, code, body, err)
		}
	}
	// The probes are not on the metrics port and the metrics are not on the probe port.
	if code, _, _ := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", hook.probePort)); code == http.StatusOK {
		t.Error("metrics are served on the probe port")
	}

	before := scrape(t)
	denials, _ := metricValue(before, "capz_encryption_webhook_decisions_total", map[string]string{"webhook": "validate", "rule": "sku-unknown", "action": "deny"})
	count, _ := metricValue(before, "capz_encryption_webhook_request_duration_seconds_count", map[string]string{"webhook": "validate"})
	expectDenied(t, k8s.Create(ctx(t), template("metrics-denied", "eastus", "Standard_Nope_v9")), "sku-unknown")

	after := scrape(t)
	if v, ok := metricValue(after, "capz_encryption_webhook_decisions_total", map[string]string{"webhook": "validate", "rule": "sku-unknown", "action": "deny"}); !ok || v != denials+1 {
		t.Errorf("decisions_total{validate,sku-unknown,deny} = %v (found %v), want %v", v, ok, denials+1)
	}
	if v, ok := metricValue(after, "capz_encryption_webhook_request_duration_seconds_count", map[string]string{"webhook": "validate"}); !ok || v <= count {
		t.Errorf("request_duration_seconds_count{validate} = %v, want at least %v", v, count+1)
	}
	if v, ok := metricValue(after, "capz_encryption_webhook_requests_total", map[string]string{"webhook": "validate", "operation": "CREATE", "outcome": "denied"}); !ok || v < 1 {
		t.Errorf("requests_total{validate,CREATE,denied} = %v", v)
	}
	if v, ok := metricValue(after, "capz_encryption_webhook_policy_info", map[string]string{"source": hook.policy}); !ok || v != 1 {
		t.Errorf("policy_info{source=%s} = %v (found %v)", hook.policy, v, ok)
	}
}

// writeAtomically replaces a file by rename, as a ConfigMap volume update does, so that the watcher
// never reads half a file.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyHotReload(t *testing.T) {
	unknownSize := 0
	createUnknownSize := func() error {
		unknownSize++
		return k8s.Create(ctx(t), template(fmt.Sprintf("reload-%d", unknownSize), "eastus", "Standard_Nope_v9"))
	}
	t.Cleanup(func() {
		// Put e2ePolicy back and wait until it is in force again: sku-unknown denies.
		writeAtomically(t, hook.policy, e2ePolicy)
		eventually(t, 20*time.Second, func() error {
			if err := createUnknownSize(); err == nil {
				return fmt.Errorf("sku-unknown still only warns")
			}
			return nil
		})
	})
	errorsBefore, _ := metricValue(scrape(t), "capz_encryption_webhook_policy_reloads_total", map[string]string{"result": "error"})

	// A bad new file (a misspelt key) is rejected with an error log; the last good policy serves on.
	writeAtomically(t, hook.policy, e2ePolicy+"rulez:\n  sku-unknown: warn\n")
	eventually(t, 20*time.Second, func() error {
		for _, l := range hook.logLines() {
			if strings.Contains(l, "policy file rejected") && strings.Contains(l, `unknown key \"rulez\"`) {
				return nil
			}
		}
		return fmt.Errorf("no rejection logged")
	})
	body := scrape(t)
	if v, _ := metricValue(body, "capz_encryption_webhook_policy_reloads_total", map[string]string{"result": "error"}); v != errorsBefore+1 {
		t.Errorf("policy_reloads_total{error} = %v, want %v", v, errorsBefore+1)
	}
	if v, ok := metricValue(body, "capz_encryption_webhook_policy_stale", nil); !ok || v != 1 {
		t.Errorf("policy_stale = %v (found %v) while the file on disk is rejected, want 1", v, ok)
	}
	expectDenied(t, createUnknownSize(), "sku-unknown")

	// A good new file takes effect without a restart.
	warnings.take()
	writeAtomically(t, hook.policy, e2ePolicy+"rules:\n  sku-unknown: warn\n")
	eventually(t, 20*time.Second, createUnknownSize)
	if w := strings.Join(warnings.take(), "\n"); !strings.Contains(w, "[sku-unknown]") {
		t.Errorf("the reloaded policy's warning did not reach the client: %q", w)
	}
	if v, ok := metricValue(scrape(t), "capz_encryption_webhook_policy_stale", nil); !ok || v != 0 {
		t.Errorf("policy_stale = %v (found %v) after a good file, want 0", v, ok)
	}
}

// TestRestartWithABadPolicy: a replica that starts while the policy file does not parse (and keeps
// no copy of an older one) serves, and is ready, on the built-in policy in warn-only mode, and says
// it is stale; it does not crash-loop into refusing every CAPZ write.
func TestRestartWithABadPolicy(t *testing.T) {
	hook.stop()
	t.Cleanup(func() {
		hook.stop()
		writeAtomically(t, hook.policy, e2ePolicy)
		if err := hook.start(); err != nil {
			t.Fatalf("restarting the webhook: %v", err)
		}
	})
	writeAtomically(t, hook.policy, e2ePolicy+"rulez:\n  sku-unknown: warn\n")
	if err := hook.start(); err != nil {
		t.Fatalf("a bad policy file must not keep the webhook from starting: %v", err)
	}
	warnings.take()
	// A documentation placeholder as DES: des-id-malformed, a deny of the built-in policy.
	placeholder := template("bad-policy-placeholder", "eastus", "Standard_D2s_v3")
	setField(placeholder, desPlaceholder(), tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
	if err := k8s.Create(ctx(t), placeholder); err != nil {
		t.Errorf("warn-only must deny nothing: %v", err)
	}
	if w := strings.Join(warnings.take(), "\n"); !strings.Contains(w, "[des-id-malformed]") {
		t.Errorf("the finding must still reach the client as a warning: %q", w)
	}
	body := scrape(t)
	if v, ok := metricValue(body, "capz_encryption_webhook_policy_stale", nil); !ok || v != 1 {
		t.Errorf("policy_stale = %v (found %v), want 1", v, ok)
	}
	if _, ok := metricValue(body, "capz_encryption_webhook_policy_info", map[string]string{"sha256": "built-in"}); !ok {
		t.Error("policy_info does not show the built-in policy in force")
	}
}

// TestPolicyConfigMapCheckedWhenWritten: an edit of the chart's policy ConfigMap whose policy does
// not parse is refused with the parser's error; while the webhook is down (failurePolicy Ignore) it
// goes through, so that a dead webhook never blocks the repair of its own policy.
func TestPolicyConfigMapCheckedWhenWritten(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: chart.DefaultRelease + "-policy", Namespace: releaseNamespace},
		Data: map[string]string{"policy.yaml": e2ePolicy}}
	if err := k8s.Create(ctx(t), cm); err != nil {
		t.Fatalf("a good policy was refused: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), cm) })
	cm.Data["policy.yaml"] = e2ePolicy + "rulez:\n  sku-unknown: warn\n"
	err := k8s.Update(ctx(t), cm)
	if err == nil || !strings.Contains(err.Error(), `unknown key "rulez"`) || !strings.Contains(err.Error(), "policy.capz-encryption-webhook.io") {
		t.Errorf("a bad policy edit must be refused with the parser's error; got %v", err)
	}
	// Other ConfigMaps are never sent.
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: releaseNamespace}, Data: map[string]string{"policy.yaml": "rulez: 1"}}
	if err := k8s.Create(ctx(t), other); err != nil {
		t.Errorf("an unrelated ConfigMap was refused: %v", err)
	}
	hook.stop()
	t.Cleanup(func() {
		if err := hook.start(); err != nil {
			t.Fatalf("restarting the webhook: %v", err)
		}
	})
	if err := k8s.Update(ctx(t), cm); err != nil {
		t.Errorf("with the webhook down, the policy ConfigMap must stay editable (failurePolicy Ignore): %v", err)
	}
}

// admissionReview is the body the apiserver would POST for a CREATE of the AzureMachineTemplate obj.
func admissionReview(t *testing.T, uid string, obj map[string]any) []byte {
	t.Helper()
	body, err := testsupport.Review{UID: uid, Kind: amtGVK.Kind, Resource: "azuremachinetemplates", Namespace: testNS, Name: uid, Object: obj}.Body()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestGracefulShutdown: after SIGTERM the webhook fails readiness but keeps answering for
// --shutdown-delay, then closes its listener, and a request already in flight still gets its answer.
func TestGracefulShutdown(t *testing.T) {
	const delay = 4 * time.Second
	hook.stop()
	t.Cleanup(func() {
		hook.stop()
		if err := hook.start(); err != nil {
			t.Fatalf("restarting the webhook: %v", err)
		}
	})
	if err := hook.start("--shutdown-delay", delay.String()); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", hook.webhookPort)
	// Compliant as sent: /validate judges the object as received, and nothing mutates it here.
	compliant := template("graceful-inflight", "eastus", "Standard_D2s_v3")
	setField(compliant, desEast, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
	tpl := compliant.Object

	// A request in flight: headers and half the body sent, the rest held back until after the
	// listener has closed.
	body := admissionReview(t, "graceful-inflight", tpl)
	conn, err := tls.Dial("tcp", addr, pki.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	half := len(body) / 2
	if _, err := fmt.Fprintf(conn, "POST /validate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body[:half]); err != nil {
		t.Fatal(err)
	}

	hook.mu.Lock()
	proc, done := hook.cmd.Process, hook.done
	hook.mu.Unlock()
	signalled := time.Now()
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// Draining: not ready, yet new requests are answered.
	eventually(t, delay/2, func() error {
		code, _, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/readyz", hook.probePort))
		if err == nil && code == http.StatusOK {
			return fmt.Errorf("still ready after SIGTERM")
		}
		return nil
	})
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientTLS()}}
	resp, err := c.Post("https://"+addr+"/validate", "application/json", bytes.NewReader(admissionReview(t, "graceful-during-delay", tpl)))
	if err != nil {
		t.Fatalf("a new request during the shutdown delay failed: %v", err)
	}
	_ = resp.Body.Close()
	if elapsed := time.Since(signalled); elapsed >= delay {
		t.Fatalf("the checks took %s, longer than the delay; the test proves nothing on a machine this slow", elapsed)
	}

	// After the delay the listener closes...
	eventually(t, delay+10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return fmt.Errorf("still accepting connections")
		}
		return nil
	})
	// ...and the request in flight is answered in full.
	if _, err := conn.Write(body[half:]); err != nil {
		t.Fatalf("the in-flight connection was cut: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r, err := testsupport.ReadResponse(conn)
	if err != nil {
		t.Fatalf("the in-flight request got no answer: %v", err)
	}
	if r.UID != "graceful-inflight" || !r.Allowed {
		t.Errorf("in-flight answer: uid %q allowed %v %v", r.UID, r.Allowed, r.Result)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the webhook did not exit after its in-flight request finished")
	}
	if code := hook.exitCode(); code != 0 {
		t.Errorf("exit code after a graceful shutdown = %d, want 0", code)
	}
	seen := map[string]bool{}
	for _, l := range hook.auditLines() {
		if uid, _ := l["uid"].(string); strings.HasPrefix(uid, "graceful-") {
			seen[uid] = true
		}
	}
	if !seen["graceful-inflight"] || !seen["graceful-during-delay"] {
		t.Errorf("both requests must have their audit line: %v", seen)
	}
}
