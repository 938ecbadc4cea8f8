package azure

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/skus"
)

// SKUCache is a skus.Catalog of live resource-SKU data, one region at a time. A region it has never
// fetched is absent (HasRegion false), so a Layered catalog falls through to the file or embedded
// data; asking for it queues a fetch.
type SKUCache struct {
	clients      *Clients
	subscription string
	timeout      time.Duration
	log          logr.Logger
	*refresher

	mu      sync.RWMutex
	regions map[string]*regionData
}

type regionData struct {
	catalog *skus.Static
	fetched time.Time
	tried   time.Time
	err     error
}

// NewSKUCache refreshes each wanted region every ttl; a failed fetch is retried after backoff.
func NewSKUCache(clients *Clients, ttl, backoff time.Duration, log logr.Logger) *SKUCache {
	c := &SKUCache{clients: clients, subscription: clients.cfg.SubscriptionID, timeout: clients.cfg.Timeout, log: log, regions: map[string]*regionData{}}
	c.refresher = newRefresher(ttl, backoff, c.fetch, c.age)
	metrics.Registry.MustRegister(c)
	return c
}

func (c *SKUCache) age(region string) (time.Time, time.Time, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	rd, ok := c.regions[region]
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	return rd.fetched, rd.tried, !rd.fetched.IsZero()
}

func (c *SKUCache) fetch(ctx context.Context, region string) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	now := c.now()
	client, err := c.clients.skus(c.subscription)
	var catalog *skus.Static
	if err == nil {
		var records []*armcompute.ResourceSKU
		records, err = skus.FetchAzure(ctx, client, []string{region})
		if err == nil {
			var list []skus.SKU
			if list, err = skus.FromSDK(records); err == nil {
				catalog = skus.NewStatic(list, skus.SourceInfo{Name: "live", Detail: "Azure subscription " + c.subscription, AsOf: now})
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rd := c.regions[region]
	if rd == nil {
		rd = &regionData{}
		c.regions[region] = rd
	}
	rd.tried = now
	if err != nil {
		// Keep the last good data: an outage must not turn known sizes into unknown ones.
		rd.err = err
		c.log.Error(err, "refreshing VM sizes failed; keeping the last good data", "region", region, "lastGood", rd.fetched)
		return
	}
	rd.catalog, rd.fetched, rd.err = catalog, now, nil
	c.log.Info("VM sizes refreshed", "region", region, "sizes", catalog.Len())
}

func (c *SKUCache) data(region string) *regionData {
	region = skus.NormalizeRegion(region)
	c.mu.RLock()
	rd := c.regions[region]
	c.mu.RUnlock()
	if rd == nil || rd.catalog == nil {
		c.Want(region)
		return nil
	}
	return rd
}

func (c *SKUCache) Lookup(region, size string) (skus.SKU, bool) {
	if rd := c.data(region); rd != nil {
		return rd.catalog.Lookup(region, size)
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

func (c *SKUCache) HasRegion(region string) bool { return c.data(region) != nil }

func (c *SKUCache) Regions() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	for r, rd := range c.regions {
		if rd.catalog != nil {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

func (c *SKUCache) SKUs(region string) []skus.SKU {
	if rd := c.data(region); rd != nil {
		return rd.catalog.SKUs(region)
	}
	return nil
}

// Source is "live" with the fetch time, or "live-stale" with the error when the last refresh failed.
func (c *SKUCache) Source(region string) skus.SourceInfo {
	if region == "" {
		return skus.SourceInfo{Name: "live", Detail: "Azure subscription " + c.subscription}
	}
	rd := c.data(region)
	if rd == nil {
		return skus.SourceInfo{Name: "none"}
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if rd.err != nil {
		return skus.SourceInfo{Name: "live-stale", Detail: fmt.Sprintf("last refresh failed: %v", rd.err), AsOf: rd.fetched}
	}
	return skus.SourceInfo{Name: "live", Detail: "Azure subscription " + c.subscription, AsOf: rd.fetched}
}

var catalogAgeDesc = prometheus.NewDesc("capz_encryption_webhook_sku_catalog_age_seconds",
	"Age of the live VM-size data per region (since the last successful refresh).", []string{"region"}, nil)

func (c *SKUCache) Describe(ch chan<- *prometheus.Desc) { ch <- catalogAgeDesc }

// Collect reports ages at scrape time, so a stuck refresher shows as a growing number.
func (c *SKUCache) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	now := c.now()
	for r, rd := range c.regions {
		if !rd.fetched.IsZero() {
			ch <- prometheus.MustNewConstMetric(catalogAgeDesc, prometheus.GaugeValue, now.Sub(rd.fetched).Seconds(), r)
		}
	}
}

// metricsRegistryUnregister removes a cache's collector (tests build several caches).
func metricsRegistryUnregister(c *SKUCache) bool { return metrics.Registry.Unregister(c) }
