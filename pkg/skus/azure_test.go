package skus

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8/fake"
)

func vm(name, loc, eah string) *armcompute.ResourceSKU {
	return &armcompute.ResourceSKU{ResourceType: to.Ptr("virtualMachines"), Name: to.Ptr(name), Locations: []*string{to.Ptr(loc)},
		Capabilities: []*armcompute.ResourceSKUCapabilities{{Name: to.Ptr(CapabilityEncryptionAtHost), Value: to.Ptr(eah)}}}
}

// throttleFirst answers the first request for each location with a real 429, as ARM does, before
// handing over to the SDK's fake server (whose own injected errors are marked non-retriable, so they
// cannot show that the pipeline retries).
type throttleFirst struct {
	mu   sync.Mutex
	seen map[string]bool
	next policy.Transporter
}

func (t *throttleFirst) Do(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	key := req.URL.Query().Get("$filter")
	first := !t.seen[key]
	t.seen[key] = true
	t.mu.Unlock()
	if first && strings.Contains(key, "westus2") {
		return &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": []string{"0"}},
			Body: http.NoBody, Request: req}, nil
	}
	return t.next.Do(req)
}

func fakeClient(t *testing.T, srv *fake.ResourceSKUsServer) *armcompute.ResourceSKUsClient {
	t.Helper()
	client, err := armcompute.NewResourceSKUsClient("sub", &azfake.TokenCredential{}, &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Transport: &throttleFirst{seen: map[string]bool{}, next: fake.NewResourceSKUsServerTransport(srv)},
		Retry:     policy.RetryOptions{MaxRetries: 3, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func TestFetchAzure(t *testing.T) {
	var mu sync.Mutex
	var filters []string
	srv := &fake.ResourceSKUsServer{
		NewListPager: func(opts *armcompute.ResourceSKUsClientListOptions) (resp azfake.PagerResponder[armcompute.ResourceSKUsClientListResponse]) {
			mu.Lock()
			defer mu.Unlock()
			filters = append(filters, *opts.Filter)
			loc := strings.TrimSuffix(strings.TrimPrefix(*opts.Filter, "location eq '"), "'")
			resp.AddPage(http.StatusOK, armcompute.ResourceSKUsClientListResponse{ResourceSKUsResult: armcompute.ResourceSKUsResult{Value: []*armcompute.ResourceSKU{
				vm("Standard_D2s_v3", loc, "True"), {ResourceType: to.Ptr("disks"), Name: to.Ptr("Premium_LRS")},
			}}}, nil)
			resp.AddPage(http.StatusOK, armcompute.ResourceSKUsClientListResponse{ResourceSKUsResult: armcompute.ResourceSKUsResult{Value: []*armcompute.ResourceSKU{
				vm("Standard_D2_v3", loc, "False"),
			}}}, nil)
			return resp
		},
	}
	got, err := FetchAzure(context.Background(), fakeClient(t, srv), []string{"eastus", "West US 2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("want 2 VM sizes x 2 regions over 2 pages each, got %d", len(got))
	}
	if filters[0] != "location eq 'eastus'" || filters[1] != "location eq 'westus2'" {
		t.Errorf("filters = %v", filters)
	}
	skus, err := FromSDK(got)
	if err != nil {
		t.Fatal(err)
	}
	c := NewStatic(skus, SourceInfo{Name: "live"})
	if s, ok := c.Lookup("westus2", "Standard_D2_v3"); !ok || s.EncryptionAtHostSupported() {
		t.Errorf("westus2 D2_v3 = %+v %v", s, ok)
	}
}

func TestFetchAzureError(t *testing.T) {
	srv := &fake.ResourceSKUsServer{
		NewListPager: func(*armcompute.ResourceSKUsClientListOptions) (resp azfake.PagerResponder[armcompute.ResourceSKUsClientListResponse]) {
			resp.AddResponseError(http.StatusForbidden, "AuthorizationFailed")
			return resp
		},
	}
	_, err := FetchAzure(context.Background(), fakeClient(t, srv), []string{"eastus"})
	if err == nil || !strings.Contains(err.Error(), "eastus") || !strings.Contains(err.Error(), "AuthorizationFailed") {
		t.Fatalf("error = %v, want the location and Azure's code", err)
	}
}
