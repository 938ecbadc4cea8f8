package azure

import (
	"context"
	"net/http"
	"slices"
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

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

func vm(name, loc, eah string) *armcompute.ResourceSKU {
	return &armcompute.ResourceSKU{ResourceType: to.Ptr("virtualMachines"), Name: to.Ptr(name), Locations: []*string{to.Ptr(loc)},
		Capabilities: []*armcompute.ResourceSKUCapabilities{{Name: to.Ptr(skus.CapabilityEncryptionAtHost), Value: to.Ptr(eah)}}}
}

// throttle answers the first n requests whose $filter names a location with a bare 429, as ARM does
// when a subscription is over its read quota, before handing over to the SDK's fake server. The
// fake server cannot do this itself: errors injected through its responders are marked
// non-retriable, so they would never show that the client's retry policy is in play.
type throttle struct {
	mu       sync.Mutex
	n        map[string]int // location → 429s still to send
	attempts map[string]int // $filter → requests seen, retries included
	next     policy.Transporter
}

func (t *throttle) Do(req *http.Request) (*http.Response, error) {
	filter := req.URL.Query().Get("$filter")
	t.mu.Lock()
	t.attempts[filter]++
	send429 := false
	for loc, left := range t.n {
		if left > 0 && strings.Contains(filter, "'"+loc+"'") {
			t.n[loc]--
			send429 = true
		}
	}
	t.mu.Unlock()
	if send429 {
		// No Retry-After header, so the delay comes from policy.RetryOptions, kept tiny below.
		return &http.Response{StatusCode: http.StatusTooManyRequests, Status: "429 Too Many Requests", Header: http.Header{},
			Body: http.NoBody, Request: req}, nil
	}
	return t.next.Do(req)
}

const testMaxRetries = 3

func fakeClient(t *testing.T, srv *fake.ResourceSKUsServer, throttled map[string]int) (*armcompute.ResourceSKUsClient, *throttle) {
	t.Helper()
	th := &throttle{n: throttled, attempts: map[string]int{}, next: fake.NewResourceSKUsServerTransport(srv)}
	client, err := armcompute.NewResourceSKUsClient("00000000-0000-0000-0000-000000000000", &azfake.TokenCredential{}, &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Transport: th,
		Retry:     policy.RetryOptions{MaxRetries: testMaxRetries, RetryDelay: time.Millisecond, MaxRetryDelay: 5 * time.Millisecond},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return client, th
}

// twoPageServer lists, for any location, a VM size and a disk on page 1 and another VM size on
// page 2 (real names and EAH support from the embedded data), and records the filters it received.
func twoPageServer(filters *[]string, mu *sync.Mutex) *fake.ResourceSKUsServer {
	return &fake.ResourceSKUsServer{
		NewListPager: func(opts *armcompute.ResourceSKUsClientListOptions) (resp azfake.PagerResponder[armcompute.ResourceSKUsClientListResponse]) {
			filter := ""
			if opts != nil && opts.Filter != nil {
				filter = *opts.Filter
			}
			mu.Lock()
			*filters = append(*filters, filter)
			mu.Unlock()
			loc := strings.TrimSuffix(strings.TrimPrefix(filter, "location eq '"), "'")
			resp.AddPage(http.StatusOK, armcompute.ResourceSKUsClientListResponse{ResourceSKUsResult: armcompute.ResourceSKUsResult{Value: []*armcompute.ResourceSKU{
				vm("Standard_D2s_v3", loc, "True"),
				{ResourceType: to.Ptr("disks"), Name: to.Ptr("Premium_LRS"), Locations: []*string{to.Ptr(loc)}},
				nil,
			}}}, nil)
			resp.AddPage(http.StatusOK, armcompute.ResourceSKUsClientListResponse{ResourceSKUsResult: armcompute.ResourceSKUsResult{Value: []*armcompute.ResourceSKU{
				vm("Standard_D2_v3", loc, "False"),
			}}}, nil)
			return resp
		},
	}
}

func TestFetchAzure(t *testing.T) {
	for _, tc := range []struct {
		name        string
		locations   []string
		throttled   map[string]int // location → 429s before success
		wantFilters []string
		wantRecords []string // location/name, in order
		wantTries   map[string]int
	}{
		{
			name:        "two locations, two pages each, filter per location",
			locations:   []string{"eastus", "West US 2"},
			wantFilters: []string{"location eq 'eastus'", "location eq 'westus2'"},
			wantRecords: []string{"eastus/Standard_D2s_v3", "eastus/Standard_D2_v3", "westus2/Standard_D2s_v3", "westus2/Standard_D2_v3"},
			// One request per page.
			wantTries: map[string]int{"location eq 'eastus'": 2, "location eq 'westus2'": 2},
		},
		{
			name:        "duplicates and blanks are asked once",
			locations:   []string{"eastus", "", "East US", "EASTUS "},
			wantFilters: []string{"location eq 'eastus'"},
			wantRecords: []string{"eastus/Standard_D2s_v3", "eastus/Standard_D2_v3"},
			wantTries:   map[string]int{"location eq 'eastus'": 2},
		},
		{
			name:        "429 then success: the pipeline retries",
			locations:   []string{"eastus", "westus2"},
			throttled:   map[string]int{"westus2": 2},
			wantFilters: []string{"location eq 'eastus'", "location eq 'westus2'"},
			wantRecords: []string{"eastus/Standard_D2s_v3", "eastus/Standard_D2_v3", "westus2/Standard_D2s_v3", "westus2/Standard_D2_v3"},
			// Two 429s and two pages; the fake server (behind the throttle) saw one listing.
			wantTries: map[string]int{"location eq 'eastus'": 2, "location eq 'westus2'": 4},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var filters []string
			client, th := fakeClient(t, twoPageServer(&filters, &mu), tc.throttled)
			got, err := FetchAzure(context.Background(), client, tc.locations)
			if err != nil {
				t.Fatal(err)
			}
			var records []string
			for _, r := range got {
				records = append(records, *r.Locations[0]+"/"+*r.Name)
			}
			if !slices.Equal(records, tc.wantRecords) {
				t.Errorf("records = %v, want %v (VM sizes only, both pages)", records, tc.wantRecords)
			}
			if !slices.Equal(filters, tc.wantFilters) {
				t.Errorf("the server received filters %q, want %q", filters, tc.wantFilters)
			}
			for f, n := range tc.wantTries {
				if th.attempts[f] != n {
					t.Errorf("requests for %q = %d, want %d", f, th.attempts[f], n)
				}
			}
			for loc, left := range th.n {
				if left != 0 {
					t.Errorf("%s: %d 429s were never sent", loc, left)
				}
			}

			// What from-azure writes is a catalog file the webhook can read.
			data, err := skucatalog.MarshalAzCLI(got)
			if err != nil {
				t.Fatal(err)
			}
			list, err := skucatalog.ParseAzCLI(data)
			if err != nil {
				t.Fatal(err)
			}
			c := skus.NewStatic(list, skus.SourceInfo{Name: "live"})
			if s, ok := c.Lookup(skus.NormalizeRegion(tc.locations[0]), "Standard_D2_v3"); !ok || s.EncryptionAtHostSupported() {
				t.Errorf("D2_v3 after a round trip = %+v, %v", s, ok)
			}
		})
	}
}

func TestFetchAzureErrors(t *testing.T) {
	forbidden := &fake.ResourceSKUsServer{
		NewListPager: func(*armcompute.ResourceSKUsClientListOptions) (resp azfake.PagerResponder[armcompute.ResourceSKUsClientListResponse]) {
			resp.AddResponseError(http.StatusForbidden, "AuthorizationFailed")
			return resp
		},
	}
	secondPageFails := &fake.ResourceSKUsServer{
		NewListPager: func(*armcompute.ResourceSKUsClientListOptions) (resp azfake.PagerResponder[armcompute.ResourceSKUsClientListResponse]) {
			resp.AddPage(http.StatusOK, armcompute.ResourceSKUsClientListResponse{ResourceSKUsResult: armcompute.ResourceSKUsResult{Value: []*armcompute.ResourceSKU{
				vm("Standard_D2s_v3", "eastus", "True"),
			}}}, nil)
			resp.AddResponseError(http.StatusInternalServerError, "InternalServerError")
			return resp
		},
	}
	var mu sync.Mutex
	var filters []string
	for _, tc := range []struct {
		name      string
		srv       *fake.ResourceSKUsServer
		locations []string
		throttled map[string]int
		want      []string
		wantTries map[string]int
	}{
		{"Azure's error names the location", forbidden, []string{"eastus"}, nil, []string{"listing VM sizes in eastus", "AuthorizationFailed"}, nil},
		{"a failing page discards the partial result", secondPageFails, []string{"eastus"}, nil, []string{"listing VM sizes in eastus", "InternalServerError"}, nil},
		{
			"throttled beyond the retry budget", twoPageServer(&filters, &mu), []string{"eastus", "westus2"}, map[string]int{"westus2": 100},
			[]string{"listing VM sizes in westus2", "429"},
			map[string]int{"location eq 'westus2'": testMaxRetries + 1},
		},
		{"a location that could rewrite the filter is refused", twoPageServer(&filters, &mu), []string{"eastus' or location eq 'westus"}, nil, []string{"not an Azure location name"}, map[string]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, th := fakeClient(t, tc.srv, tc.throttled)
			got, err := FetchAzure(context.Background(), client, tc.locations)
			if err == nil {
				t.Fatalf("want an error, got %d records", len(got))
			}
			if got != nil {
				t.Errorf("want no records with an error, got %d", len(got))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for f, n := range tc.wantTries {
				if th.attempts[f] != n {
					t.Errorf("requests for %q = %d, want %d", f, th.attempts[f], n)
				}
			}
			if tc.wantTries != nil && len(tc.wantTries) == 0 && len(th.attempts) != 0 {
				t.Errorf("no request expected, got %v", th.attempts)
			}
		})
	}
}

func TestFetchAzureContext(t *testing.T) {
	var mu sync.Mutex
	var filters []string
	client, _ := fakeClient(t, twoPageServer(&filters, &mu), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := FetchAzure(ctx, client, []string{"eastus"}); err == nil || !strings.Contains(err.Error(), "eastus") {
		t.Errorf("cancelled context: err = %v, want an error naming eastus", err)
	}
}
