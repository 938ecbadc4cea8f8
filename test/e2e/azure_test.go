package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

// fakeARM is a local TLS server that speaks what the webhook asks of Azure: Entra ID's tenant
// discovery and token endpoints, Resource Manager's resource-SKU list, Disk Encryption Set, VM, disk
// and scale-set gets, and Key Vault's Get Key and Get Key Rotation Policy (keyvault_test.go).
// mode switches it between healthy, down (503) and slow.
type fakeARM struct {
	srv   *httptest.Server
	mode  atomic.Value // "up", "down", "slow"
	calls atomic.Int32
	// rotationOff flips des-eastus's rotationToLatestKeyVersionEnabled: new DES data for the tests
	// that watch the background audit run again on a refresh.
	rotationOff atomic.Bool
	// caFile is the PEM of the server's certificate (valid for 127.0.0.1 and *.vault.azure.net);
	// proxy is an HTTPS proxy that sends every CONNECT to the server, so that a Key Vault URL under
	// vault.azure.net reaches it with the SDK's challenge resource check on.
	caFile, proxy string
}

const tenant = "e2e-tenant"

func newFakeARM(t *testing.T) *fakeARM {
	f := &fakeARM{}
	f.mode.Store("up")
	mux := http.NewServeMux()
	mux.HandleFunc("/"+tenant+"/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host + "/" + tenant
		writeJSON(w, map[string]any{"token_endpoint": base + "/oauth2/v2.0/token", "issuer": base + "/v2.0",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize"})
	})
	mux.HandleFunc("/"+tenant+"/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": "e2e-token"})
	})
	mux.HandleFunc("/subscriptions/", func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		switch f.mode.Load() {
		case "down":
			http.Error(w, `{"error":{"code":"ServiceUnavailable","message":"e2e outage"}}`, http.StatusServiceUnavailable)
			return
		case "slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		if r.Header.Get("Authorization") != "Bearer e2e-token" {
			http.Error(w, `{"error":{"code":"AuthenticationFailed"}}`, http.StatusUnauthorized)
			return
		}
		p := strings.ToLower(r.URL.Path)
		switch {
		case strings.HasSuffix(p, "/locations"):
			// The webhook only fetches VM sizes of the subscription's own locations.
			var locs []any
			for _, l := range []string{"eastus", "westus2", "southcentralus", "westcentralus"} {
				locs = append(locs, map[string]any{"name": l, "displayName": l, "type": "Region"})
			}
			writeJSON(w, map[string]any{"value": locs})
		case strings.HasSuffix(p, "/providers/microsoft.compute/skus"):
			loc := strings.TrimSuffix(strings.TrimPrefix(r.URL.Query().Get("$filter"), "location eq '"), "'")
			// Live data that differs from the embedded catalog, so the test can tell which answered.
			writeJSON(w, map[string]any{"value": []any{
				sku("Standard_Live_v9", loc, "True"), sku("Standard_D2s_v3", loc, "False"), sku("Standard_D4s_v3", loc, "True"),
			}})
		case f.serveMachines(w, r, p):
		case f.serveDES(w, r, p):
		case strings.Contains(p, "/diskencryptionsets/des-westus2"):
			writeJSON(w, map[string]any{"id": r.URL.Path, "name": "des-westus2", "location": "westus2",
				"properties": map[string]any{"encryptionType": "EncryptionAtRestWithCustomerKey", "rotationToLatestKeyVersionEnabled": false}})
		case strings.Contains(p, "/diskencryptionsets/"):
			http.Error(w, `{"error":{"code":"ResourceNotFound","message":"not found"}}`, http.StatusNotFound)
		default:
			http.NotFound(w, r)
		}
	})
	mux.HandleFunc("/keys/", f.serveKeyVault)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.TLS, f.caFile = azureTLS(t)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.proxy = connectProxy(t, f.srv.Listener.Addr().String())
	return f
}

func sku(name, loc, eah string) map[string]any {
	return map[string]any{"resourceType": "virtualMachines", "name": name, "locations": []string{loc},
		"capabilities": []any{map[string]any{"name": "EncryptionAtHostSupported", "value": eah}}, "restrictions": []any{}}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// review posts one AdmissionReview straight to the webhook (not through the apiserver, so that the
// webhook's own latency is what is measured) and returns the response and its log line.
func review(t *testing.T, w *webhookProcess, path string, obj map[string]any) (*admissionv1.AdmissionResponse, time.Duration) {
	t.Helper()
	r := testsupport.Review{UID: fmt.Sprintf("azure-e2e-%d", time.Now().UnixNano()), Kind: "AzureMachineTemplate", Resource: "azuremachinetemplates",
		Namespace: testNS, Name: obj["metadata"].(map[string]any)["name"].(string), Object: obj}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: pki.ClientTLS()}}
	start := time.Now()
	resp, err := r.Post(c, fmt.Sprintf("https://127.0.0.1:%d%s", w.webhookPort, path))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	return resp, took
}

// lineOf returns the decision line of one request (nil if it does not appear within 5s).
func lineOf(w *webhookProcess, uid types.UID) map[string]any {
	return w.auditLine(5*time.Second, func(l map[string]any) bool { return l["uid"] == string(uid) })
}

// TestLiveAzureData runs the binary against the local ARM server: live VM sizes replace the embedded
// ones, live Disk Encryption Set facts drive des-location-mismatch and des-key-rotation, an outage
// keeps the decisions coming from the last good data (recorded as live-stale), and a slow Azure does
// not slow admission.
func TestLiveAzureData(t *testing.T) {
	arm := newFakeARM(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "arm-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: arm.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The binary trusts the local ARM server through SSL_CERT_FILE and authenticates with a client
	// secret against the local authority: no call leaves the machine.
	t.Setenv("SSL_CERT_FILE", caFile)
	t.Setenv("AZURE_TENANT_ID", tenant)
	t.Setenv("AZURE_CLIENT_ID", "e2e-client")
	t.Setenv("AZURE_CLIENT_SECRET", "e2e-secret")
	w, err := newWebhookProcess(hook.bin, hook.kubeconfig, hook.certDir, policyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Readiness must not depend on Azure: the webhook starts while Azure is down.
	arm.mode.Store("down")
	if err := w.start("--azure-subscription-id", sub, "--azure-credential", "environment",
		"--azure-arm-endpoint", arm.srv.URL, "--azure-authority-host", arm.srv.URL+"/", "--azure-disable-instance-discovery",
		"--sku-refresh-interval", "1s", "--azure-retry-backoff", "200ms", "--azure-timeout", "2s"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.stop)
	arm.mode.Store("up")

	machine := func(name, size, des string) map[string]any {
		spec := map[string]any{"vmSize": size, "osDisk": map[string]any{"osType": "Linux", "managedDisk": map[string]any{}}}
		if des != "" {
			spec["osDisk"].(map[string]any)["managedDisk"] = map[string]any{"diskEncryptionSet": map[string]any{"id": des}}
		}
		return map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachineTemplate",
			"metadata": map[string]any{"name": name, "namespace": testNS, "annotations": map[string]any{"capz-encryption-webhook.io/location": "eastus"}},
			"spec":     map[string]any{"template": map[string]any{"spec": spec}}}
	}

	t.Run("live VM sizes replace the embedded catalog", func(t *testing.T) {
		// Standard_Live_v9 exists only in the live data. Nothing here asks for encryption at host,
		// so the size is not judged and the object passes either way; what changes once the region
		// has been fetched is the source that answers for it.
		eventually(t, 20*time.Second, func() error {
			resp, _ := review(t, w, "/validate", machine("live-size", "Standard_Live_v9", ""))
			if !resp.Allowed {
				return fmt.Errorf("denied: %s", resp.Result.Message)
			}
			if src := lineOf(w, resp.UID)["catalogSource"]; src != "live" {
				return fmt.Errorf("catalog source = %v, want live once the region is fetched", src)
			}
			return nil
		})
	})

	des := "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des-westus2"
	t.Run("live Disk Encryption Set facts", func(t *testing.T) {
		eventually(t, 20*time.Second, func() error {
			resp, _ := review(t, w, "/validate", machine("des-west", "Standard_Live_v9", des))
			if resp.Allowed || !strings.Contains(resp.Result.Message, "[des-location-mismatch]") {
				return fmt.Errorf("not yet denied for the region: allowed=%v %v", resp.Allowed, resp.Result)
			}
			if !strings.Contains(strings.Join(resp.Warnings, "\n"), "[des-key-rotation]") {
				return fmt.Errorf("no key-rotation warning: %v", resp.Warnings)
			}
			return nil
		})
		missing := "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/missing"
		eventually(t, 20*time.Second, func() error {
			resp, _ := review(t, w, "/validate", machine("des-missing", "Standard_Live_v9", missing))
			if resp.Allowed || !strings.Contains(resp.Result.Message, "[des-not-found]") {
				return fmt.Errorf("not yet denied as missing: %v", resp.Result)
			}
			return nil
		})
	})

	t.Run("Azure down: decisions continue from the last good data", func(t *testing.T) {
		arm.mode.Store("down")
		eventually(t, 20*time.Second, func() error {
			resp, _ := review(t, w, "/validate", machine("during-outage", "Standard_Live_v9", ""))
			if !resp.Allowed {
				return fmt.Errorf("denied during the outage: %v", resp.Result)
			}
			if src := lineOf(w, resp.UID)["catalogSource"]; src != "live-stale" {
				return fmt.Errorf("catalog source %v, want live-stale once a refresh has failed", src)
			}
			return nil
		})
	})

	t.Run("Azure slow: admission is answered from the cache", func(t *testing.T) {
		arm.mode.Store("slow")
		before := arm.calls.Load()
		eventually(t, 10*time.Second, func() error {
			if arm.calls.Load() == before {
				return fmt.Errorf("no refresh has reached the slow Azure yet")
			}
			return nil
		})
		// Azure now takes 5 s per call; requests must not wait for it.
		var worst time.Duration
		for i := 0; i < 20; i++ {
			resp, took := review(t, w, "/validate", machine(fmt.Sprintf("while-slow-%d", i), "Standard_Live_v9", ""))
			if !resp.Allowed {
				t.Fatalf("denied while Azure is slow: %v", resp.Result)
			}
			worst = max(worst, took)
		}
		if worst > 2*time.Second {
			t.Errorf("slowest admission took %s while Azure answered in 5s: Azure is on the request path", worst)
		}
		t.Logf("slowest of 20 admissions while Azure takes 5s per call: %s", worst)
		arm.mode.Store("up")
	})
}
