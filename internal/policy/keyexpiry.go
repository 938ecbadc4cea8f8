package policy

import (
	"fmt"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/desid"
)

// checkKeyExpiry judges the active Key Vault key of a Disk Encryption Set (des-key-expiry): an
// expired or disabled key breaks every disk operation of the set — creating a machine, starting a
// deallocated one, a repave — so new machines are denied; a key that expires within the policy's
// keyExpiryWarning warns unless something replaces it in time. On UPDATE of an existing object the
// rule only warns: the machines exist already, and the fix is in Key Vault, not in the object.
func (e *evaluation) checkKeyExpiry(s desSlot, id desid.ID, info DESInfo) {
	k, now := info.Key, e.env.Now
	if now.IsZero() || !k.Known {
		return
	}
	ceiling := ActionWarn
	if e.req.Operation == OperationCreate || e.stored {
		ceiling = ActionDeny
	}
	window := e.policy.KeyExpiryWindow()
	switch {
	case !k.Enabled:
		e.reportAtMost(RuleDESKeyExpiry, ceiling, s.field,
			"the active key of Disk Encryption Set %s (%s) is disabled in Key Vault: Azure cannot create, start or repave disks with it; enable the key version, or rotate the key and point the set at the new version",
			id.Name, k.URL)
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		e.reportAtMost(RuleDESKeyExpiry, ceiling, s.field,
			"the active key of Disk Encryption Set %s (%s) expired on %s: Azure cannot create, start or repave disks with it; rotate the key and point the set at the new version (or enable automatic key rotation on the set)",
			id.Name, k.URL, k.Expires.UTC().Format(time.RFC3339))
	case !k.Expires.IsZero() && k.Expires.Sub(now) <= window:
		replaced, why := keyReplacedInTime(info, now)
		if replaced {
			return
		}
		e.reportAtMost(RuleDESKeyExpiry, ActionWarn, s.field,
			"the active key of Disk Encryption Set %s (%s) expires on %s, in %s (keyExpiryWarning %s), and nothing replaces it in time: %s. Once it expires, cluster operations on these disks fail",
			id.Name, k.URL, k.Expires.UTC().Format(time.RFC3339), roundDays(k.Expires.Sub(now)), roundDays(window), why)
	}
}

// keyReplacedInTime says whether an expiring key will stop being the set's active key before it
// expires, and if not, why. Only a set with automatic key rotation (rotationToLatestKeyVersionEnabled)
// moves to a newer key version by itself; the newer version comes either from a version that exists
// already or from Key Vault's rotation policy.
func keyReplacedInTime(info DESInfo, now time.Time) (bool, string) {
	k := info.Key
	if !info.RotationToLatestKeyVersion {
		if k.NewerVersion {
			return false, "a newer key version exists, but the set has automatic key rotation off and keeps using this one; point the set at the newer version, or enable rotationToLatestKeyVersionEnabled"
		}
		return false, "the set has automatic key rotation off; rotate the key and point the set at the new version, or enable rotationToLatestKeyVersionEnabled with a Key Vault rotation policy"
	}
	if k.NewerVersion && (k.NewerExpires.IsZero() || k.NewerExpires.After(k.Expires)) {
		return true, ""
	}
	switch {
	case k.NextRotation.IsZero():
		return false, "the key's Key Vault rotation policy has no Rotate action; add one that rotates before expiry (e.g. timeBeforeExpiry P30D)"
	case !k.NextRotation.Before(k.Expires):
		return false, "the key's Key Vault rotation policy rotates it only on " + k.NextRotation.UTC().Format(time.RFC3339) + ", after it expires; rotate earlier (e.g. timeBeforeExpiry P30D)"
	case k.NextRotation.Before(now.Add(-24 * time.Hour)):
		return false, "the key's Key Vault rotation policy should have rotated it on " + k.NextRotation.UTC().Format(time.RFC3339) + " but no newer version exists; check the vault's rotation (and the set's autoKeyRotationError)"
	}
	return true, ""
}

// roundDays prints a duration the way key expiry is planned: in days, or in hours under two days.
func roundDays(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24+0.5))
}
