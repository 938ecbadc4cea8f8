package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// keyRef is a Key Vault key version named by a Disk Encryption Set's activeKey.keyUrl:
// https://VAULT.vault.azure.net/keys/NAME/VERSION (the version may be absent).
type keyRef struct {
	vault, name, version string
}

func parseKeyURL(raw string) (keyRef, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return keyRef{}, fmt.Errorf("key URL %q is not https://VAULT/keys/NAME[/VERSION]", raw)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "keys" || parts[1] == "" {
		return keyRef{}, fmt.Errorf("key URL %q is not https://VAULT/keys/NAME[/VERSION]", raw)
	}
	k := keyRef{vault: "https://" + u.Host, name: parts[1]}
	if len(parts) == 3 {
		k.version = parts[2]
	}
	return k, nil
}

// readKey reads what des-key-expiry needs about the key version a Disk Encryption Set uses: the
// version's attributes, the key's latest version (a newer one replaces it when the set rotates to the
// latest version by itself) and the key's rotation policy (when Key Vault will create the next
// version). Everything is read-only: Get Key and Get Rotation Policy (data actions
// Microsoft.KeyVault/vaults/keys/read and Microsoft.KeyVault/vaults/keyrotationpolicies/read).
func (c *DESCache) readKey(ctx context.Context, keyURL string) (policy.KeyInfo, error) {
	info := policy.KeyInfo{URL: keyURL}
	ref, err := parseKeyURL(keyURL)
	if err != nil {
		return info, err
	}
	client, err := c.clients.keyVault(ref.vault)
	if err != nil {
		return info, err
	}
	active, err := client.GetKey(ctx, ref.name, ref.version, nil)
	if err != nil {
		return info, fmt.Errorf("reading key %s: %w", keyURL, err)
	}
	attrs := active.Attributes
	if attrs == nil {
		attrs = &azkeys.KeyAttributes{}
	}
	info.Enabled = attrs.Enabled == nil || *attrs.Enabled
	if attrs.Expires != nil {
		info.Expires = attrs.Expires.UTC()
	}
	if ref.version != "" {
		latest, err := client.GetKey(ctx, ref.name, "", nil)
		if err != nil {
			return info, fmt.Errorf("reading the latest version of key %s: %w", ref.name, err)
		}
		if latest.Key != nil && latest.Key.KID != nil && latest.Key.KID.Version() != ref.version &&
			latest.Attributes != nil && (latest.Attributes.Enabled == nil || *latest.Attributes.Enabled) {
			info.NewerVersion = true
			if latest.Attributes.Expires != nil {
				info.NewerExpires = latest.Attributes.Expires.UTC()
			}
		}
	}
	rp, err := client.GetKeyRotationPolicy(ctx, ref.name, nil)
	var re *azcore.ResponseError
	switch {
	case errors.As(err, &re) && re.StatusCode == http.StatusNotFound:
		// No rotation policy: Key Vault never rotates the key by itself.
	case err != nil:
		return info, fmt.Errorf("reading the rotation policy of key %s: %w", ref.name, err)
	default:
		var created time.Time
		if attrs.Created != nil {
			created = *attrs.Created
		}
		if info.NextRotation, err = nextRotation(rp.KeyRotationPolicy, created, info.Expires); err != nil {
			return info, fmt.Errorf("the rotation policy of key %s: %w", ref.name, err)
		}
	}
	info.Known = true
	return info, nil
}

// nextRotation is when a key rotation policy's Rotate action next fires for a version created at
// created that expires at expires: timeAfterCreate after the creation, or timeBeforeExpiry before the
// expiry, whichever comes first; zero when the policy has no Rotate action that can fire.
func nextRotation(p azkeys.KeyRotationPolicy, created, expires time.Time) (time.Time, error) {
	var next time.Time
	for _, a := range p.LifetimeActions {
		if a == nil || a.Action == nil || a.Action.Type == nil || a.Trigger == nil ||
			!strings.EqualFold(string(*a.Action.Type), string(azkeys.KeyRotationPolicyActionRotate)) {
			continue
		}
		var at time.Time
		switch {
		case a.Trigger.TimeAfterCreate != nil && !created.IsZero():
			t, err := addISODuration(created, *a.Trigger.TimeAfterCreate, 1)
			if err != nil {
				return time.Time{}, err
			}
			at = t
		case a.Trigger.TimeBeforeExpiry != nil && !expires.IsZero():
			t, err := addISODuration(expires, *a.Trigger.TimeBeforeExpiry, -1)
			if err != nil {
				return time.Time{}, err
			}
			at = t
		default:
			continue
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next.UTC(), nil
}

// addISODuration adds sign times an ISO 8601 duration (PnYnMnWnDTnHnMnS, as Key Vault writes
// rotation triggers: P90D, P1Y, PT48H, P1Y10D) to t. Calendar parts move the date as time.AddDate
// does. Written by hand: the Go standard library parses no ISO 8601 durations, and a dependency for
// thirty lines is not worth it.
func addISODuration(t time.Time, s string, sign int) (time.Time, error) {
	bad := fmt.Errorf("%q is not an ISO 8601 duration such as P90D or PT48H", s)
	rest, ok := strings.CutPrefix(strings.ToUpper(s), "P")
	if !ok || rest == "" || rest == "T" {
		return time.Time{}, bad
	}
	var years, months, days int
	var clock time.Duration
	inTime, timeParts := false, 0
	units := "YMWD"
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return time.Time{}, bad
			}
			inTime, units, rest = true, "HMS", rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 6 {
			return time.Time{}, bad
		}
		n, _ := strconv.Atoi(rest[:i])
		unit := rest[i]
		at := strings.IndexByte(units, unit)
		if at < 0 {
			return time.Time{}, bad
		}
		units = units[at+1:] // each unit once, in order
		rest = rest[i+1:]
		if inTime {
			timeParts++
		}
		switch {
		case !inTime && unit == 'Y':
			years = n
		case !inTime && unit == 'M':
			months = n
		case !inTime && unit == 'W':
			days += 7 * n
		case !inTime && unit == 'D':
			days += n
		case unit == 'H':
			clock += time.Duration(n) * time.Hour
		case unit == 'M':
			clock += time.Duration(n) * time.Minute
		case unit == 'S':
			clock += time.Duration(n) * time.Second
		}
	}
	if inTime && timeParts == 0 {
		return time.Time{}, bad
	}
	return t.AddDate(sign*years, sign*months, sign*days).Add(time.Duration(sign) * clock), nil
}
