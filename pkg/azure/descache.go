package azure

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/go-logr/logr"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/desid"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/policy"
)

// DESCache is a policy.DESCatalog of Disk Encryption Sets read from Azure. An ID it has not fetched
// yet answers DESUnknown (the live rules skip) and is queued; the next request sees the facts.
type DESCache struct {
	clients *Clients
	timeout time.Duration
	log     logr.Logger
	*refresher

	mu      sync.RWMutex
	entries map[string]*desEntry // canonical lower-case ID
}

type desEntry struct {
	info    policy.DESInfo
	state   policy.DESState
	fetched time.Time
	tried   time.Time
	err     error
}

func NewDESCache(clients *Clients, ttl, backoff time.Duration, log logr.Logger) *DESCache {
	c := &DESCache{clients: clients, timeout: clients.cfg.Timeout, log: log, entries: map[string]*desEntry{}}
	c.refresher = newRefresher(ttl, backoff, c.fetch, c.age)
	return c
}

func key(id string) string {
	if parsed, err := desid.Parse(id); err == nil {
		return strings.ToLower(parsed.String())
	}
	return ""
}

// LookupDES answers from the cache only.
func (c *DESCache) LookupDES(id string) (policy.DESInfo, policy.DESState) {
	k := key(id)
	if k == "" {
		return policy.DESInfo{}, policy.DESUnknown
	}
	c.mu.RLock()
	e := c.entries[k]
	c.mu.RUnlock()
	if e == nil || e.fetched.IsZero() {
		c.Want(k)
		return policy.DESInfo{}, policy.DESUnknown
	}
	return e.info, e.state
}

func (c *DESCache) age(k string) (time.Time, time.Time, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[k]
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	return e.fetched, e.tried, !e.fetched.IsZero()
}

func (c *DESCache) fetch(ctx context.Context, k string) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	now := c.now()
	id, err := desid.Parse(k)
	var info policy.DESInfo
	state := policy.DESUnknown
	if err == nil {
		info, state, err = c.get(ctx, id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		e = &desEntry{}
		c.entries[k] = e
	}
	e.tried = now
	if err != nil {
		e.err = err
		c.log.Error(err, "reading Disk Encryption Set failed; keeping the last good data", "id", k)
		return
	}
	info.Source = "live"
	e.info, e.state, e.fetched, e.err = info, state, now, nil
}

func (c *DESCache) get(ctx context.Context, id desid.ID) (policy.DESInfo, policy.DESState, error) {
	client, err := c.clients.diskEncryptionSets(id.SubscriptionID)
	if err != nil {
		return policy.DESInfo{}, policy.DESUnknown, err
	}
	resp, err := client.Get(ctx, id.ResourceGroup, id.Name, nil)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return policy.DESInfo{}, policy.DESNotFound, nil
	}
	if err != nil {
		return policy.DESInfo{}, policy.DESUnknown, err
	}
	info := policy.DESInfo{}
	if resp.Location != nil {
		info.Location = *resp.Location
	}
	if p := resp.Properties; p != nil {
		if p.EncryptionType != nil {
			info.EncryptionType = string(*p.EncryptionType)
		}
		info.RotationToLatestKeyVersion = p.RotationToLatestKeyVersionEnabled != nil && *p.RotationToLatestKeyVersionEnabled
		if e := p.AutoKeyRotationError; e != nil {
			msg := ""
			if e.Code != nil {
				msg = *e.Code
			}
			if e.Message != nil {
				msg = strings.TrimSpace(msg + ": " + *e.Message)
			}
			info.AutoKeyRotationError = msg
		}
	}
	return info, policy.DESFound, nil
}
