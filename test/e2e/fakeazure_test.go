package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What the fake Azure holds for the audit tests. VMs and the scale set live in rgEast, the resource
// group of AzureCluster "east" of the audit namespace; keys in vault kvHost.
const (
	rgEast  = "rg-east"
	kvHost  = "e2e-keys.vault.azure.net"
	desExp  = "/subscriptions/" + sub + "/resourceGroups/keys-eastus/providers/Microsoft.Compute/diskEncryptionSets/des-expired"
	vmBad   = "vm-platform-key" // its OS disk is encrypted with platform keys only
	vmGood  = "vm-customer-key" // its OS disk uses des-eastus; encryption at host on
	poolBad = "pool-no-des"     // its scale-set model has no Disk Encryption Set
)

func providerID(vm string) string {
	return "azure:///subscriptions/" + sub + "/resourceGroups/" + rgEast + "/providers/Microsoft.Compute/virtualMachines/" + vm
}

// azureTLS is the fake Azure's certificate: valid for 127.0.0.1 (Resource Manager, Entra ID) and
// *.vault.azure.net (Key Vault, reached through the proxy), self-signed, so that it is its own CA.
func azureTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake azure"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"*.vault.azure.net"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "azure-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, file
}

// connectProxy is an HTTPS proxy (HTTP CONNECT) that tunnels every connection to target. The
// webhook reaches Key Vault hosts through it (HTTPS_PROXY); loopback addresses (Resource Manager,
// the apiserver) are never proxied by Go.
func connectProxy(t *testing.T, target string) string {
	t.Helper()
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || !strings.HasSuffix(r.Host, ".vault.azure.net:443") {
			http.Error(w, "only CONNECT to Key Vault", http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			_ = up.Close()
			return
		}
		w.WriteHeader(http.StatusOK)
		down, _, err := hj.Hijack()
		if err != nil {
			_ = up.Close()
			return
		}
		go func() { _, _ = io.Copy(up, down); _ = up.Close() }()
		go func() { _, _ = io.Copy(down, up); _ = down.Close() }()
	}))
	t.Cleanup(p.Close)
	return p.URL
}

// azureFlags points the webhook at the fake Azure (trusting its certificate, authenticating with a
// client secret against its authority, reaching Key Vault through its proxy) and returns the flags
// that turn live Azure data on. No call leaves the machine.
func azureFlags(t *testing.T, arm *fakeARM) []string {
	t.Helper()
	t.Setenv("SSL_CERT_FILE", arm.caFile)
	t.Setenv("AZURE_TENANT_ID", tenant)
	t.Setenv("AZURE_CLIENT_ID", "e2e-client")
	t.Setenv("AZURE_CLIENT_SECRET", "e2e-secret")
	t.Setenv("HTTPS_PROXY", arm.proxy)
	return []string{"--azure-subscription-id", sub, "--azure-credential", "environment",
		"--azure-arm-endpoint", arm.srv.URL, "--azure-authority-host", arm.srv.URL + "/", "--azure-disable-instance-discovery",
		"--azure-retry-backoff", "200ms", "--azure-timeout", "5s"}
}

// serveDES answers the Disk Encryption Sets of the audit tests: des-eastus (its key is valid) and
// des-expired (its key expired yesterday).
func (f *fakeARM) serveDES(w http.ResponseWriter, r *http.Request, p string) bool {
	var name, keyURL string
	rotation := true
	switch {
	case strings.HasSuffix(p, "/diskencryptionsets/des-eastus"):
		name, keyURL, rotation = "des-eastus", "https://"+kvHost+"/keys/disk-key/v1", !f.rotationOff.Load()
	case strings.HasSuffix(p, "/diskencryptionsets/des-expired"):
		name, keyURL = "des-expired", "https://"+kvHost+"/keys/expired-key/v1"
	default:
		return false
	}
	writeJSON(w, map[string]any{"id": r.URL.Path, "name": name, "location": "eastus", "properties": map[string]any{
		"encryptionType": "EncryptionAtRestWithCustomerKey", "rotationToLatestKeyVersionEnabled": rotation,
		"activeKey": map[string]any{"keyUrl": keyURL}}})
	return true
}

// serveMachines answers the VMs, managed disks and scale set of the audit namespace.
func (f *fakeARM) serveMachines(w http.ResponseWriter, r *http.Request, p string) bool {
	base := "/subscriptions/" + sub + "/resourceGroups/" + rgEast + "/providers/Microsoft.Compute/"
	disk := func(name, typ, des string) map[string]any {
		enc := map[string]any{"type": typ}
		if des != "" {
			enc["diskEncryptionSetId"] = des
		}
		return map[string]any{"id": base + "disks/" + name, "name": name, "location": "eastus", "properties": map[string]any{"encryption": enc}}
	}
	vm := func(name string, eah bool) map[string]any {
		return map[string]any{"id": base + "virtualMachines/" + name, "name": name, "location": "eastus", "properties": map[string]any{
			"securityProfile": map[string]any{"encryptionAtHost": eah},
			"storageProfile": map[string]any{"osDisk": map[string]any{"name": name + "-os", "createOption": "FromImage",
				"managedDisk": map[string]any{"id": base + "disks/" + name + "-os"}}}}}
	}
	switch strings.TrimPrefix(p, strings.ToLower(base)) {
	case "virtualmachines/" + vmBad:
		writeJSON(w, vm(vmBad, true))
	case "virtualmachines/" + vmGood:
		writeJSON(w, vm(vmGood, true))
	case "disks/" + vmBad + "-os":
		writeJSON(w, disk(vmBad+"-os", "EncryptionAtRestWithPlatformKey", ""))
	case "disks/" + vmGood + "-os":
		writeJSON(w, disk(vmGood+"-os", "EncryptionAtRestWithCustomerKey", desEast))
	case "virtualmachinescalesets/" + poolBad:
		writeJSON(w, map[string]any{"id": base + "virtualMachineScaleSets/" + poolBad, "name": poolBad, "location": "eastus", "properties": map[string]any{
			"virtualMachineProfile": map[string]any{"storageProfile": map[string]any{"osDisk": map[string]any{"createOption": "FromImage",
				"managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}}}}})
	default:
		if strings.HasPrefix(p, strings.ToLower(base)) {
			http.Error(w, `{"error":{"code":"ResourceNotFound","message":"not found"}}`, http.StatusNotFound)
			return true
		}
		return false
	}
	return true
}

// serveKeyVault is Key Vault's data plane: the bearer challenge (which names the tenant and the
// audience, https://vault.azure.net), Get Key (a version, or the latest) and Get Key Rotation Policy.
func (f *fakeARM) serveKeyVault(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.Host, ".vault.azure.net") {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer e2e-token" {
		w.Header().Set("WWW-Authenticate", `Bearer authorization="https://127.0.0.1/`+tenant+`", resource="https://vault.azure.net"`)
		http.Error(w, `{"error":{"code":"Unauthorized"}}`, http.StatusUnauthorized)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // keys, NAME[, VERSION | rotationpolicy]
	if len(parts) < 2 {
		http.NotFound(w, r)
		return
	}
	expires := map[string]time.Time{"disk-key": time.Now().Add(200 * 24 * time.Hour), "expired-key": time.Now().Add(-24 * time.Hour)}
	exp, ok := expires[parts[1]]
	if !ok {
		http.Error(w, `{"error":{"code":"KeyNotFound"}}`, http.StatusNotFound)
		return
	}
	if len(parts) == 3 && parts[2] == "rotationpolicy" {
		http.Error(w, `{"error":{"code":"KeyNotFound","message":"no rotation policy"}}`, http.StatusNotFound)
		return
	}
	writeJSON(w, map[string]any{
		"key":        map[string]any{"kid": "https://" + kvHost + "/keys/" + parts[1] + "/v1", "kty": "RSA"},
		"attributes": map[string]any{"enabled": true, "exp": exp.Unix(), "created": time.Now().Add(-300 * 24 * time.Hour).Unix()},
	})
}
