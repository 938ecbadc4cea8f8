package azure

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/desid"
	pol "github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

// countingStore is a store whose loads are recorded, on a clock the test moves.
func countingStore(t *testing.T, limits Limits) (*store[string], *[]string, *time.Time) {
	t.Helper()
	var mu sync.Mutex
	loads := &[]string{}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s := newStore("test", "test", time.Hour, time.Minute, time.Second, func(_ context.Context, k string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		*loads = append(*loads, k)
		return "value of " + k, nil
	}, logr.Discard())
	s.limits = limits
	s.now = func() time.Time { return now }
	return s, loads, &now
}

func (s *store[V]) keys() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for k := range s.want {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestStoreBoundsRequestKeys: keys named by requests are capped (least recently used out first) and
// expire when unused; pinned keys are neither counted nor evicted nor expired.
func TestStoreBoundsRequestKeys(t *testing.T) {
	s, loads, now := countingStore(t, Limits{MaxKeys: 3, Idle: 30 * time.Minute})
	reg := prometheus.NewRegistry()
	s.metrics = NewMetrics(reg)
	ctx := context.Background()
	s.Pin("pinned")
	s.Want("a", "b", "c")
	*now = now.Add(time.Minute)
	s.get("a") // a is now the most recently used
	*now = now.Add(time.Minute)
	s.Want("d") // full: b, the least recently used, goes
	if got := strings.Join(s.keys(), ","); got != "a,c,d,pinned" {
		t.Fatalf("keys after the bound = %s, want a,c,d,pinned", got)
	}
	// A flood of new keys never grows the store past the bound, nor pushes out the pinned key.
	for i := range 1000 {
		s.Want(fmt.Sprintf("flood-%d", i))
	}
	if keys := s.keys(); len(keys) != 4 || !slices.Contains(keys, "pinned") {
		t.Fatalf("after a flood: %v", keys)
	}
	s.once(ctx)
	if len(*loads) != 4 {
		t.Fatalf("loaded %d keys, want the 4 kept: %v", len(*loads), *loads)
	}

	// Keys nobody uses expire and are no longer refreshed; the pinned one stays.
	*now = now.Add(31 * time.Minute)
	s.get("flood-999")
	*loads = nil
	*now = now.Add(2 * time.Hour) // everything is due for a refresh, flood-999 is idle now too
	s.get("pinned")
	s.once(ctx)
	if got := strings.Join(s.keys(), ","); got != "pinned" {
		t.Errorf("keys after idle = %s, want pinned only", got)
	}
	if got := strings.Join(*loads, ","); got != "pinned" {
		t.Errorf("refreshed %s, want only the pinned key", got)
	}
	if e := s.peek("flood-998"); e.loaded {
		t.Error("an expired key's value is still held")
	}
	if v := testutil.ToFloat64(s.metrics.evictions.WithLabelValues("test", "capacity")); v < 1000 {
		t.Errorf("capacity evictions = %v", v)
	}
	if v := testutil.ToFloat64(s.metrics.evictions.WithLabelValues("test", "idle")); v != 3 {
		t.Errorf("idle evictions = %v, want 3", v)
	}

	// Unpinning makes a key an ordinary one: it expires when unused.
	s.Pin()
	*now = now.Add(31 * time.Minute)
	s.once(ctx)
	if keys := s.keys(); len(keys) != 0 {
		t.Errorf("an unpinned, unused key is kept: %v", keys)
	}
}

// TestSKUCacheOnlyFetchesTheSubscriptionsRegions: a region name that is not one of the subscription's
// locations — as any user can write into an annotation — costs no Azure call and no metric series.
func TestSKUCacheOnlyFetchesTheSubscriptionsRegions(t *testing.T) {
	clients, _, calls := newFakeClients(t)
	c := NewSKUCache(clients, time.Hour, time.Minute, logr.Discard())
	ctx := context.Background()

	// Before Azure has listed the locations, no request-named region is fetched.
	c.HasRegion("eastus")
	c.once(ctx)
	if calls.Load() != 0 {
		t.Fatalf("fetched a region before the locations were known: %d calls", calls.Load())
	}
	c.locations.once(ctx)
	for _, r := range []string{"eastus", "attacker-chosen", "notaregion", "eastus'or'1", strings.Repeat("x", 500)} {
		c.HasRegion(r)
		c.Source(r)
		c.Lookup(r, "Standard_D2s_v3")
	}
	c.once(ctx)
	if calls.Load() != 1 {
		t.Errorf("%d SKU list calls, want 1 (eastus)", calls.Load())
	}
	if got := strings.Join(c.keys(), ","); got != "eastus" {
		t.Errorf("regions kept: %s", got)
	}
	if n := testutil.CollectAndCount(c, "capz_encryption_webhook_sku_catalog_age_seconds"); n != 1 {
		t.Errorf("catalog age series = %d, want 1", n)
	}
	// The policy's regions are pinned whatever the list says (the platform team named them).
	c.Pin("westcentralus")
	c.once(ctx)
	if calls.Load() != 2 {
		t.Errorf("a pinned region was not fetched: %d calls", calls.Load())
	}
}

// TestDESScope: Disk Encryption Sets are looked up only in the allowed subscriptions, or, with no
// allow-list, only in the webhook's own.
func TestDESScope(t *testing.T) {
	own := SubscriptionScope(sub, noList)
	listed := SubscriptionScope(sub, func() []string { return []string{testsupport.OtherSubscription} })
	other := mustParse(t, strings.Replace(desWest, sub, testsupport.OtherSubscription, 1))
	mine := mustParse(t, desWest)
	if !own(mine) || own(other) {
		t.Error("empty allow-list: only the webhook's own subscription is in scope")
	}
	if listed(mine) || !listed(other) {
		t.Error("allow-list: exactly its subscriptions are in scope")
	}
}

// TestNoOracleOutsideTheAllowedSubscriptions: a user names a Disk Encryption Set in a subscription
// the policy does not allow. The webhook's identity can read it (the fake would say it is in westus2,
// without key rotation), yet Azure is not asked and no message carries what Azure knows.
func TestNoOracleOutsideTheAllowedSubscriptions(t *testing.T) {
	clients, _, _ := newFakeClients(t)
	p, err := pol.Parse("p.yaml", []byte("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nallowedDESSubscriptions: ["+sub+"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	gets := 0
	c := NewDESCache(clients, time.Hour, time.Minute, logr.Discard(), WithDESScope(SubscriptionScope(sub, func() []string { return p.AllowedDESSubscriptions })))
	c.load = func(load func(context.Context, string) (desFacts, error)) func(context.Context, string) (desFacts, error) {
		return func(ctx context.Context, k string) (desFacts, error) { gets++; return load(ctx, k) }
	}(c.load)
	foreign := strings.Replace(desWest, sub, testsupport.OtherSubscription, 1)
	evaluate := func(des string) *pol.Decision {
		obj := `{"apiVersion":"infrastructure.cluster.x-k8s.io/v1beta1","kind":"AzureMachine","metadata":{"name":"m","namespace":"d"},
		  "spec":{"vmSize":"Standard_D2s_v3","osDisk":{"osType":"Linux","managedDisk":{"diskEncryptionSet":{"id":"` + des + `"}}}}}`
		d, err := pol.Evaluate(p, pol.Request{Operation: pol.OperationCreate, Object: []byte(obj)},
			pol.Environment{Catalog: skucatalog.Embedded(), DES: c, Locations: []pol.LocationCandidate{{Location: "eastus", Source: "cluster"}}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	evaluate(foreign)
	c.once(context.Background())
	d := evaluate(foreign)
	if gets != 0 {
		t.Errorf("Azure was asked %d times about a Disk Encryption Set outside the allowed subscriptions", gets)
	}
	var rules []string
	for _, f := range d.Findings {
		rules = append(rules, string(f.Rule))
		if strings.Contains(f.Message, "westus2") || strings.Contains(f.Message, "rotation") {
			t.Errorf("message reveals Azure facts: %s", f.Message)
		}
	}
	if got := strings.Join(rules, ","); got != "des-subscription-not-allowed" {
		t.Errorf("findings = %s, want des-subscription-not-allowed only", got)
	}
	// The same set in the allowed subscription is looked up, and its facts are the user's to see.
	evaluate(desWest)
	c.once(context.Background())
	if d := evaluate(desWest); gets != 1 || d.Allowed {
		t.Errorf("allowed subscription: %d lookups, allowed=%v", gets, d.Allowed)
	}
}

func mustParse(t *testing.T, s string) desid.ID {
	t.Helper()
	id, err := desid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
