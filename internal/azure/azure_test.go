package azure

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions"
	subfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions/fake"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	pol "github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

const (
	sub     = testsupport.Subscription
	desEast = "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des-east"
	desWest = "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des-west"
	desGone = "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/gone"
)

// outage makes every call fail with a 503 while down is set, ahead of the fake servers, as an outage
// would (the fake's own errors are non-retriable and would not show the retry policy at work).
type outage struct {
	down atomic.Bool
	next policy.Transporter
}

func (o *outage) Do(req *http.Request) (*http.Response, error) {
	if o.down.Load() {
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	}
	return o.next.Do(req)
}

func vmSKU(name, loc, eah string) *armcompute.ResourceSKU {
	return &armcompute.ResourceSKU{ResourceType: to.Ptr("virtualMachines"), Name: to.Ptr(name), Locations: []*string{to.Ptr(loc)},
		Capabilities: []*armcompute.ResourceSKUCapabilities{{Name: to.Ptr(skus.CapabilityEncryptionAtHost), Value: to.Ptr(eah)}}}
}

// subscriptionLocations are the locations the fake subscription lists.
var subscriptionLocations = []string{"eastus", "westus2", "southcentralus"}

// route sends the subscription's location list to one fake server and everything else to another.
type route struct{ locations, compute policy.Transporter }

func (r route) Do(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/locations") {
		return r.locations.Do(req)
	}
	return r.compute.Do(req)
}

func newFakeClients(t *testing.T) (*Clients, *outage, *atomic.Int32) {
	t.Helper()
	calls := &atomic.Int32{}
	srv := &fake.ServerFactory{
		ResourceSKUsServer: fake.ResourceSKUsServer{
			NewListPager: func(opts *armcompute.ResourceSKUsClientListOptions) (resp azfake.PagerResponder[armcompute.ResourceSKUsClientListResponse]) {
				calls.Add(1)
				loc := strings.TrimSuffix(strings.TrimPrefix(*opts.Filter, "location eq '"), "'")
				resp.AddPage(http.StatusOK, armcompute.ResourceSKUsClientListResponse{ResourceSKUsResult: armcompute.ResourceSKUsResult{
					Value: []*armcompute.ResourceSKU{vmSKU("Standard_D2s_v3", loc, "True")}}}, nil)
				resp.AddPage(http.StatusOK, armcompute.ResourceSKUsClientListResponse{ResourceSKUsResult: armcompute.ResourceSKUsResult{
					Value: []*armcompute.ResourceSKU{vmSKU("Standard_Live_v9", loc, "False")}}}, nil)
				return resp
			},
		},
		DiskEncryptionSetsServer: fake.DiskEncryptionSetsServer{
			Get: func(_ context.Context, rg, name string, _ *armcompute.DiskEncryptionSetsClientGetOptions) (resp azfake.Responder[armcompute.DiskEncryptionSetsClientGetResponse], errResp azfake.ErrorResponder) {
				switch name {
				case "gone":
					errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				case "des-east":
					resp.SetResponse(http.StatusOK, armcompute.DiskEncryptionSetsClientGetResponse{DiskEncryptionSet: armcompute.DiskEncryptionSet{
						Location: to.Ptr("eastus"), Properties: &armcompute.EncryptionSetProperties{
							EncryptionType:                    to.Ptr(armcompute.DiskEncryptionSetTypeEncryptionAtRestWithCustomerKey),
							RotationToLatestKeyVersionEnabled: to.Ptr(true)}}}, nil)
				default:
					resp.SetResponse(http.StatusOK, armcompute.DiskEncryptionSetsClientGetResponse{DiskEncryptionSet: armcompute.DiskEncryptionSet{
						Location: to.Ptr("westus2"), Properties: &armcompute.EncryptionSetProperties{
							EncryptionType:       to.Ptr(armcompute.DiskEncryptionSetTypeEncryptionAtRestWithCustomerKey),
							AutoKeyRotationError: &armcompute.APIError{Code: to.Ptr("KeyVaultAccessForbidden"), Message: to.Ptr("no access")}}}}, nil)
				}
				return
			},
		},
	}
	locations := &subfake.ServerFactory{Server: subfake.Server{
		NewListLocationsPager: func(string, *armsubscriptions.ClientListLocationsOptions) (resp azfake.PagerResponder[armsubscriptions.ClientListLocationsResponse]) {
			var list []*armsubscriptions.Location
			for _, l := range subscriptionLocations {
				list = append(list, &armsubscriptions.Location{Name: to.Ptr(l)})
			}
			resp.AddPage(http.StatusOK, armsubscriptions.ClientListLocationsResponse{LocationListResult: armsubscriptions.LocationListResult{Value: list}}, nil)
			return resp
		},
	}}
	o := &outage{next: route{locations: subfake.NewServerFactoryTransport(locations), compute: fake.NewServerFactoryTransport(srv)}}
	c, err := NewClients(Config{SubscriptionID: sub, Credential: &azfake.TokenCredential{}, Transport: o, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.opts.Retry = policy.RetryOptions{MaxRetries: 1, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}
	return c, o, calls
}

func TestSKUCache(t *testing.T) {
	clients, o, calls := newFakeClients(t)
	c := NewSKUCache(clients, time.Hour, time.Minute, logr.Discard())
	t.Cleanup(func() { unregister(c) })
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	ctx := context.Background()
	c.locations.once(ctx)

	// Unknown at first: the layered catalog answers from the embedded data, and the region is queued.
	layered := skus.NewLayered(c, skucatalog.Embedded())
	if c.HasRegion("eastus") || layered.Source("eastus").Name != "embedded" {
		t.Fatal("a region never fetched must fall through")
	}
	c.once(ctx)
	if calls.Load() != 1 {
		t.Fatalf("want one fetch for the queued region, got %d", calls.Load())
	}
	s, ok := layered.Lookup("eastus", "standard_live_v9")
	if !ok || s.EncryptionAtHostSupported() || layered.Source("eastus").Name != "live" || !layered.Source("eastus").AsOf.Equal(now) {
		t.Fatalf("live data not used: %+v %v %+v", s, ok, layered.Source("eastus"))
	}
	// Fresh data is not fetched again before its ttl.
	c.once(ctx)
	if calls.Load() != 1 {
		t.Fatalf("refetched fresh data: %d calls", calls.Load())
	}
	// Azure goes down after the ttl: the last good data stays, marked stale.
	now = now.Add(2 * time.Hour)
	o.down.Store(true)
	c.once(ctx)
	if _, ok := c.Lookup("eastus", "Standard_Live_v9"); !ok {
		t.Fatal("an outage dropped the last good data")
	}
	src := c.Source("eastus")
	if src.Name != "live-stale" || !strings.Contains(src.Detail, "503") {
		t.Fatalf("source during the outage = %+v", src)
	}
	// Within backoff the failed region is not hammered; after it, Azure is back.
	o.down.Store(false)
	c.once(ctx)
	if c.Source("eastus").Name != "live-stale" {
		t.Fatal("retried before backoff")
	}
	now = now.Add(2 * time.Minute)
	c.once(ctx)
	if src := c.Source("eastus"); src.Name != "live" || !src.AsOf.Equal(now) {
		t.Fatalf("after recovery: %+v", src)
	}
	if n := testutil.CollectAndCount(c, "capz_encryption_webhook_sku_catalog_age_seconds"); n != 1 {
		t.Errorf("catalog age metric series = %d", n)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`# HELP capz_encryption_webhook_sku_refresh_interval_seconds How old live VM-size data may get before it is refreshed (--sku-refresh-interval).
# TYPE capz_encryption_webhook_sku_refresh_interval_seconds gauge
capz_encryption_webhook_sku_refresh_interval_seconds 3600
`), "capz_encryption_webhook_sku_refresh_interval_seconds"); err != nil {
		t.Error(err)
	}
}

// noList is a policy without allowedDESSubscriptions.
func noList() []string { return nil }

func unregister(c *SKUCache) {
	// Tests build several caches; each registers its age collector.
}

func TestDESCache(t *testing.T) {
	clients, o, _ := newFakeClients(t)
	c := NewDESCache(clients, time.Hour, time.Minute, logr.Discard(), WithDESScope(SubscriptionScope(sub, noList)))
	ctx := context.Background()
	for _, id := range []string{desEast, desWest, desGone} {
		if _, state := c.LookupDES(id); state != pol.DESUnknown {
			t.Fatalf("%s known before any fetch", id)
		}
	}
	c.once(ctx)
	info, state := c.LookupDES(strings.ToUpper(desEast))
	if state != pol.DESFound || info.Location != "eastus" || !info.RotationToLatestKeyVersion || info.EncryptionType != "EncryptionAtRestWithCustomerKey" || info.Source != "live" {
		t.Errorf("des-east: %+v %v", info, state)
	}
	info, state = c.LookupDES(desWest)
	if state != pol.DESFound || info.RotationToLatestKeyVersion || !strings.Contains(info.AutoKeyRotationError, "KeyVaultAccessForbidden") {
		t.Errorf("des-west: %+v %v", info, state)
	}
	if _, state := c.LookupDES(desGone); state != pol.DESNotFound {
		t.Errorf("gone: %v", state)
	}
	if _, state := c.LookupDES("not an id"); state != pol.DESUnknown {
		t.Error("a malformed ID must be unknown (des-id-malformed reports it)")
	}
	// An outage keeps what is known.
	o.down.Store(true)
	// Past the ttl (a refresh is due), within the idle time (the ID is still kept).
	c.now = func() time.Time { return time.Now().Add(90 * time.Minute) }
	c.once(ctx)
	if _, state := c.LookupDES(desEast); state != pol.DESFound {
		t.Error("an outage dropped a known DES")
	}
}

// TestPolicyWithLiveDES: the caches plug into the policy as its DES catalog.
func TestPolicyWithLiveDES(t *testing.T) {
	clients, _, _ := newFakeClients(t)
	c := NewDESCache(clients, time.Hour, time.Minute, logr.Discard(), WithDESScope(SubscriptionScope(sub, noList)))
	c.LookupDES(desWest)
	c.once(context.Background())
	obj := `{"apiVersion":"infrastructure.cluster.x-k8s.io/v1beta1","kind":"AzureMachine","metadata":{"name":"m","namespace":"d"},
	  "spec":{"vmSize":"Standard_D2s_v3","osDisk":{"osType":"Linux","managedDisk":{"diskEncryptionSet":{"id":"` + desWest + `"}}}}}`
	d, err := pol.Evaluate(pol.DefaultPolicy(), pol.Request{Operation: pol.OperationCreate, Object: []byte(obj)},
		pol.Environment{Catalog: skucatalog.Embedded(), DES: c, Locations: []pol.LocationCandidate{{Location: "eastus", Source: "cluster"}}})
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, f := range d.Findings {
		rules = append(rules, string(f.Rule)+":"+string(f.Action))
	}
	got := strings.Join(rules, ",")
	for _, want := range []string{"des-location-mismatch:deny", "des-key-rotation:warn"} {
		if !strings.Contains(got, want) {
			t.Errorf("findings %s lack %s", got, want)
		}
	}
}

func TestCloudConfig(t *testing.T) {
	cc, err := Config{Cloud: "AzureChinaCloud"}.CloudConfig()
	if err != nil || !strings.Contains(cc.ActiveDirectoryAuthorityHost, "chinacloudapi") {
		t.Errorf("china: %+v %v", cc, err)
	}
	cc, err = Config{ARMEndpoint: "https://127.0.0.1:8443", AuthorityHost: "https://127.0.0.1:8443/"}.CloudConfig()
	if err != nil || cc.ActiveDirectoryAuthorityHost != "https://127.0.0.1:8443/" {
		t.Errorf("override: %+v %v", cc, err)
	}
	if _, err := (Config{Cloud: "Mars"}).CloudConfig(); err == nil {
		t.Error("unknown cloud accepted")
	}
}

// TestSKUCacheReadsDuringRefresh: admission reads while the refresher replaces a region's data.
// Run with -race: readers must only ever see snapshots.
func TestSKUCacheReadsDuringRefresh(t *testing.T) {
	clients, _, _ := newFakeClients(t)
	c := NewSKUCache(clients, time.Nanosecond, 0, logr.Discard(), WithLimits(Limits{Idle: time.Hour}))
	t.Cleanup(func() { unregister(c) })
	ctx := context.Background()
	c.locations.once(ctx)
	c.Want("eastus")
	c.once(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			c.once(ctx) // ttl 1ns: every pass reloads
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
			if _, ok := c.Lookup("eastus", "Standard_D2s_v3"); !ok {
				t.Fatal("a loaded region went missing during a refresh")
			}
			_ = c.Source("eastus")
		}
	}
}
