package azure

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// TestManagedIdentityHonoursAzureClientID: --azure-credential=managed-identity asks for the identity
// AZURE_CLIENT_ID names (a node may carry several), not the system-assigned one. The managed
// identity endpoint is a local server (App Service's IDENTITY_ENDPOINT), which records what it was
// asked for.
func TestManagedIdentityHonoursAzureClientID(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Query().Get("client_id"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "t", "expires_on": time.Now().Add(time.Hour).Unix(),
			"resource": "https://management.azure.com", "token_type": "Bearer"})
	}))
	t.Cleanup(srv.Close)
	t.Setenv("IDENTITY_ENDPOINT", srv.URL)
	t.Setenv("IDENTITY_HEADER", "secret")
	for _, clientID := range []string{"11111111-2222-3333-4444-555555555555", ""} {
		t.Setenv("AZURE_CLIENT_ID", clientID)
		cred, err := newCredential(Config{CredentialKind: "managed-identity"}, azpolicy.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cred.GetToken(context.Background(), azpolicy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}}); err != nil {
			t.Fatalf("GetToken: %v", err)
		}
		mu.Lock()
		got := asked[len(asked)-1]
		mu.Unlock()
		if got != clientID {
			t.Errorf("AZURE_CLIENT_ID=%q: the managed identity endpoint was asked for client_id %q", clientID, got)
		}
	}
}

// TestAzureTokenCredentials: azidentity's AZURE_TOKEN_CREDENTIALS narrows the default chain (and a
// bad value is refused there); with a named kind it must agree with the flag.
func TestAzureTokenCredentials(t *testing.T) {
	for _, c := range []struct {
		kind, env string
		wantErr   string
	}{
		{"default", "ManagedIdentityCredential", ""},
		{"default", "nonsense", "AZURE_TOKEN_CREDENTIALS"},
		{"workload-identity", "ManagedIdentityCredential", "contradicts --azure-credential=workload-identity"},
		{"managed-identity", "ManagedIdentityCredential", ""},
		{"managed-identity", "prod", ""},
		{"environment", "dev", "contradicts"},
	} {
		t.Setenv("AZURE_TOKEN_CREDENTIALS", c.env)
		_, err := newCredential(Config{CredentialKind: c.kind}, azpolicy.ClientOptions{})
		switch {
		case c.wantErr == "" && err != nil && strings.Contains(err.Error(), "AZURE_TOKEN_CREDENTIALS"):
			t.Errorf("%s with %s: %v", c.kind, c.env, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s with %s: error %v, want %q", c.kind, c.env, err, c.wantErr)
		}
	}
}
