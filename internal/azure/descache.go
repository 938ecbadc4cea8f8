package azure

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/desid"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// DESCache is a policy.DESCatalog of Disk Encryption Sets read from Azure. An ID it has not fetched
// yet answers DESUnknown (the live rules skip) and is queued; the next request sees the facts.
//
// Only IDs in scope (WithDESScope; by default none but the pinned ones) are looked up: the IDs come
// from users, and what the webhook's identity can read must not become an oracle for them, nor its
// Azure quota theirs to spend. An ID out of scope answers DESUnknown, so no message says anything
// Azure knows about it.
type DESCache struct {
	clients *Clients
	*store[desFacts]
}

var _ policy.DESCatalog = (*DESCache)(nil)

// desFacts is what one read of a Disk Encryption Set established.
type desFacts struct {
	info  policy.DESInfo
	state policy.DESState
	// keyErr is why the set's Key Vault key could not be read (info.Key is then the last good read,
	// or unknown).
	keyErr string
}

// NewDESCache refreshes each wanted Disk Encryption Set every ttl; a failed read is retried after
// backoff.
func NewDESCache(clients *Clients, ttl, backoff time.Duration, log logr.Logger, opts ...Option) *DESCache {
	o := options(opts)
	c := &DESCache{clients: clients}
	c.store = newStore("Disk Encryption Set", "des", ttl, backoff, clients.cfg.Timeout, func(ctx context.Context, k string) (desFacts, error) {
		id, err := desid.Parse(k)
		if err != nil {
			return desFacts{}, err
		}
		info, state, err := c.read(ctx, id)
		info.Source = "live"
		facts := desFacts{info: info, state: state}
		if err == nil && state == policy.DESFound && info.Key.URL != "" {
			facts.info.Key, facts.keyErr = c.key(ctx, k, info.Key.URL, log)
		}
		return facts, err
	}, log)
	// A failed key read alone changes nothing the policy sees: the last good key facts stay.
	c.store.same = func(a, b desFacts) bool { return a.info == b.info && a.state == b.state }
	c.limits, c.metrics = o.limits, clients.cfg.Metrics
	scope := o.desScope
	if scope == nil {
		scope = func(desid.ID) bool { return false }
	}
	c.accept = func(k string) bool {
		id, err := desid.Parse(k)
		return err == nil && scope(id)
	}
	return c
}

// key reads the set's active key. Key Vault may be unreachable, or deny the webhook, while Resource
// Manager answers: the set's facts still count, and the last good facts of the same key stay in use.
func (c *DESCache) key(ctx context.Context, k, keyURL string, log logr.Logger) (policy.KeyInfo, string) {
	info, err := c.readKey(ctx, keyURL)
	if err == nil {
		return info, ""
	}
	log.Error(err, "reading the Key Vault key of a Disk Encryption Set failed; des-key-expiry uses the last good data", "des", k, "key", keyURL)
	c.mu.RLock()
	prev := c.entries[k]
	c.mu.RUnlock()
	if prev.loaded && prev.value.info.Key.URL == keyURL && prev.value.info.Key.Known {
		return prev.value.info.Key, err.Error()
	}
	return policy.KeyInfo{URL: keyURL}, err.Error()
}

// Pin keeps exactly these Disk Encryption Sets (the policy's own) fresh, whatever the scope.
func (c *DESCache) Pin(ids ...string) {
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		keys = append(keys, key(id))
	}
	c.store.Pin(keys...)
}

// SubscriptionScope is the scope of Disk Encryption Set lookups: the subscriptions allowed() returns
// (the policy's allowedDESSubscriptions, read at each lookup so that a policy reload applies at
// once), or, when it returns none, only own, the subscription the webhook is configured for. An
// empty allow-list means "any subscription" for the policy's rules, but not for the webhook's
// identity: it is not there to tell users about subscriptions the platform team never named.
func SubscriptionScope(own string, allowed func() []string) func(desid.ID) bool {
	return func(id desid.ID) bool {
		list := allowed()
		if len(list) == 0 {
			return strings.EqualFold(id.SubscriptionID, own)
		}
		for _, s := range list {
			if strings.EqualFold(s, id.SubscriptionID) {
				return true
			}
		}
		return false
	}
}

func key(id string) string {
	k, _ := desid.Key(id)
	return k
}

// LookupDES answers from the cache only.
func (c *DESCache) LookupDES(id string) (policy.DESInfo, policy.DESState) {
	k := key(id)
	if k == "" {
		return policy.DESInfo{}, policy.DESUnknown
	}
	if e := c.get(k); e.loaded {
		return e.value.info, e.value.state
	}
	return policy.DESInfo{}, policy.DESUnknown
}

// read fetches one Disk Encryption Set; a 404 is a fact (DESNotFound), not an error.
func (c *DESCache) read(ctx context.Context, id desid.ID) (policy.DESInfo, policy.DESState, error) {
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
		if p.ActiveKey != nil && p.ActiveKey.KeyURL != nil {
			info.Key.URL = *p.ActiveKey.KeyURL
		}
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

var keyExpiryDesc = prometheus.NewDesc("capz_encryption_webhook_des_key_expiry_timestamp_seconds",
	"Expiry of the active Key Vault key of each Disk Encryption Set in use, as a Unix time (sets whose key never expires are left out).",
	[]string{"des"}, nil)

// DESCache is a prometheus.Collector of its sets' key expiries; `serve` registers it.
var _ prometheus.Collector = (*DESCache)(nil)

func (c *DESCache) Describe(ch chan<- *prometheus.Desc) { ch <- keyExpiryDesc }

func (c *DESCache) Collect(ch chan<- prometheus.Metric) {
	for _, k := range c.loadedKeys() {
		e := c.peek(k)
		if key := e.value.info.Key; e.value.state == policy.DESFound && key.Known && !key.Expires.IsZero() {
			ch <- prometheus.MustNewConstMetric(keyExpiryDesc, prometheus.GaugeValue, float64(key.Expires.Unix()), k)
		}
	}
}

// Ensure loads the Disk Encryption Sets (and their keys) not loaded yet, now: for one-shot commands
// such as `audit`, which run no background refresh. It returns whether anything new was loaded.
func (c *DESCache) Ensure(ctx context.Context, ids ...string) bool {
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		keys = append(keys, key(id))
	}
	return c.store.Ensure(ctx, keys...)
}
