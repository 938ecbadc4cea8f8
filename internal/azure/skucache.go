package azure

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// SKUCache is a skus.Catalog of live resource-SKU data, one region at a time. A region it has never
// fetched is absent (HasRegion false), so a Layered catalog falls through to the file or embedded
// data; asking for it queues a fetch — but only for a region the subscription has: region names come
// from objects, i.e. from users, and an arbitrary string must cost neither an Azure call nor a
// metric series. The subscription's locations are read from Azure too (and refreshed like the
// rest); until they are known, only pinned regions (the policy's, the AzureClusters') are fetched.
type SKUCache struct {
	subscription string
	*store[*skus.Static]
	locations *store[map[string]bool]
}

var _ skus.Catalog = (*SKUCache)(nil)

// NewSKUCache refreshes each wanted region every ttl; a failed fetch is retried after backoff.
func NewSKUCache(clients *Clients, ttl, backoff time.Duration, log logr.Logger, opts ...Option) *SKUCache {
	o := options(opts)
	c := &SKUCache{subscription: clients.cfg.SubscriptionID}
	c.locations = newStore("Azure locations", "locations", ttl, backoff, clients.cfg.Timeout, func(ctx context.Context, sub string) (map[string]bool, error) {
		return fetchLocations(ctx, clients, sub)
	}, log)
	c.locations.metrics = clients.cfg.Metrics
	c.locations.Pin(c.subscription)
	c.store = newStore("VM sizes", "skus", ttl, backoff, clients.cfg.Timeout, func(ctx context.Context, region string) (*skus.Static, error) {
		client, err := clients.skus(c.subscription)
		if err != nil {
			return nil, err
		}
		records, err := FetchAzure(ctx, client, []string{region})
		if err != nil {
			return nil, err
		}
		list, err := skucatalog.FromSDK(records)
		if err != nil {
			return nil, err
		}
		return skus.NewStatic(list, skus.SourceInfo{Name: "live", Detail: "Azure subscription " + c.subscription, AsOf: c.now()}), nil
	}, log)
	c.store.same = sameSKUs
	c.limits, c.metrics, c.accept = o.limits, clients.cfg.Metrics, c.KnownRegion
	return c
}

// sameSKUs compares the records of two snapshots (not their fetch times).
func sameSKUs(a, b *skus.Static) bool {
	if !slices.Equal(a.Regions(), b.Regions()) {
		return false
	}
	for _, r := range a.Regions() {
		if !reflect.DeepEqual(a.SKUs(r), b.SKUs(r)) {
			return false
		}
	}
	return true
}

// Ensure fetches the regions not fetched yet, now: for one-shot commands such as `audit`, which run
// no background refresh. It returns whether anything new was loaded.
// The subscription's locations come first: only regions among them are fetched.
func (c *SKUCache) Ensure(ctx context.Context, regions ...string) bool {
	c.locations.Ensure(ctx, c.subscription)
	keys := make([]string, 0, len(regions))
	for _, r := range regions {
		keys = append(keys, skus.NormalizeRegion(r))
	}
	return c.store.Ensure(ctx, keys...)
}

// Subscription is the subscription the cache reads.
func (c *SKUCache) Subscription() string { return c.subscription }

// KnownRegion reports whether region (normalised) is one of the subscription's locations; false
// until Azure has listed them.
func (c *SKUCache) KnownRegion(region string) bool {
	if !validLocation(region) {
		return false
	}
	e := c.locations.peek(c.subscription)
	return e.loaded && e.value[region]
}

// fetchLocations lists the subscription's locations (normalised names).
func fetchLocations(ctx context.Context, clients *Clients, sub string) (map[string]bool, error) {
	client, err := clients.subscriptions()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	pager := client.NewListLocationsPager(sub, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing the locations of subscription %s: %w", sub, err)
		}
		for _, l := range page.Value {
			if l != nil && l.Name != nil {
				out[skus.NormalizeRegion(*l.Name)] = true
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("subscription %s lists no locations", sub)
	}
	return out, nil
}

// Run refreshes the locations and the wanted regions until ctx ends.
func (c *SKUCache) Run(ctx context.Context) {
	go c.locations.Run(ctx)
	c.store.Run(ctx)
}

// data returns the region's snapshot, or false (queuing a fetch) when it has none yet.
func (c *SKUCache) data(region string) (entry[*skus.Static], bool) {
	e := c.get(skus.NormalizeRegion(region))
	return e, e.loaded
}

func (c *SKUCache) Lookup(region, size string) (skus.SKU, bool) {
	if e, ok := c.data(region); ok {
		return e.value.Lookup(region, size)
	}
	return skus.SKU{}, false
}

func (c *SKUCache) LookupAll(size string) []skus.SKU {
	var out []skus.SKU
	for _, r := range c.Regions() {
		if s, ok := c.Lookup(r, size); ok {
			out = append(out, s)
		}
	}
	return out
}

func (c *SKUCache) HasRegion(region string) bool {
	_, ok := c.data(region)
	return ok
}

func (c *SKUCache) Regions() []string { return c.loadedKeys() }

func (c *SKUCache) SKUs(region string) []skus.SKU {
	if e, ok := c.data(region); ok {
		return e.value.SKUs(region)
	}
	return nil
}

// Source is "live" with the fetch time, or "live-stale" with the error when the last refresh failed.
func (c *SKUCache) Source(region string) skus.SourceInfo {
	if region == "" {
		return skus.SourceInfo{Name: "live", Detail: "Azure subscription " + c.subscription}
	}
	e, ok := c.data(region)
	switch {
	case !ok:
		return skus.SourceInfo{Name: "none"}
	case e.err != nil:
		return skus.SourceInfo{Name: "live-stale", Detail: fmt.Sprintf("last refresh failed: %v", e.err), AsOf: e.fetched}
	default:
		return skus.SourceInfo{Name: "live", Detail: "Azure subscription " + c.subscription, AsOf: e.fetched}
	}
}

var catalogAgeDesc = prometheus.NewDesc("capz_encryption_webhook_sku_catalog_age_seconds",
	"Age of the live VM-size data per region (since the last successful refresh).", []string{"region"}, nil)

// refreshIntervalDesc exports --sku-refresh-interval, so that an alert can compare the age above with
// the interval this process really runs with (a flag in extraArgs included) instead of a copy of it.
var refreshIntervalDesc = prometheus.NewDesc("capz_encryption_webhook_sku_refresh_interval_seconds",
	"How old live VM-size data may get before it is refreshed (--sku-refresh-interval).", nil, nil)

// SKUCache is a prometheus.Collector of the age of its data; `serve` registers it.
var _ prometheus.Collector = (*SKUCache)(nil)

func (c *SKUCache) Describe(ch chan<- *prometheus.Desc) {
	ch <- catalogAgeDesc
	ch <- refreshIntervalDesc
}

// Collect reports ages at scrape time, so a stuck refresher shows as a growing number.
func (c *SKUCache) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(refreshIntervalDesc, prometheus.GaugeValue, c.ttl.Seconds())
	now := c.now()
	for _, r := range c.loadedKeys() {
		e := c.peek(r)
		ch <- prometheus.MustNewConstMetric(catalogAgeDesc, prometheus.GaugeValue, now.Sub(e.fetched).Seconds(), r)
	}
}
