package azure

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/go-logr/logr"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/desid"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// DESCache is a policy.DESCatalog of Disk Encryption Sets read from Azure. An ID it has not fetched
// yet answers DESUnknown (the live rules skip) and is queued; the next request sees the facts.
type DESCache struct {
	clients *Clients
	*store[desFacts]
}

var _ policy.DESCatalog = (*DESCache)(nil)

// desFacts is what one read of a Disk Encryption Set established.
type desFacts struct {
	info  policy.DESInfo
	state policy.DESState
}

// NewDESCache refreshes each wanted Disk Encryption Set every ttl; a failed read is retried after
// backoff.
func NewDESCache(clients *Clients, ttl, backoff time.Duration, log logr.Logger) *DESCache {
	c := &DESCache{clients: clients}
	c.store = newStore("Disk Encryption Set", ttl, backoff, clients.cfg.Timeout, func(ctx context.Context, k string) (desFacts, error) {
		id, err := desid.Parse(k)
		if err != nil {
			return desFacts{}, err
		}
		info, state, err := c.read(ctx, id)
		info.Source = "live"
		return desFacts{info: info, state: state}, err
	}, log)
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
