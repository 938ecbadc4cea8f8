package policy

import (
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// Policy file identity. The version is in the file so that a future format can be told apart.
const (
	APIVersion = "policy.capz-encryption-webhook.io/v1alpha1"
	Kind       = "EncryptionPolicy"
)

// Policy is the organisation's encryption policy, parsed and validated. Build one with Parse or
// Default; the zero value is not useful.
type Policy struct {
	// WarnOnly turns every deny into a warning (the decision records that it would have denied): a
	// way to roll a policy out. Not to be confused with a request's server-side dryRun.
	WarnOnly bool
	// DefaultLocation is the region used when nothing else names one.
	DefaultLocation string
	// RequireCustomerManagedKeys makes des-required deny objects whose managed disks have no DES.
	RequireCustomerManagedKeys bool
	// AllowedDESSubscriptions, when not empty, are the only subscriptions a DES may live in
	// (lower-case GUIDs).
	AllowedDESSubscriptions []string
	// Actions per rule; rules not named keep their built-in action.
	Actions map[RuleID]Action
	// KeyExpiryWarning is how long before its Key Vault key expires a Disk Encryption Set warns
	// (des-key-expiry); zero means DefaultKeyExpiryWarning.
	KeyExpiryWarning time.Duration
	// Defaults are tried in order; the first whose regions and namespace selector match applies.
	Defaults []Default
	// Source names where the policy came from (file path, "built-in"), for the audit trail.
	Source string
	// Warnings are what the parser accepted but wants changed (deprecated keys), for the logs and
	// `check`'s output.
	Warnings []string
}

// Default is one organisation default: what to inject into objects in some regions and namespaces.
type Default struct {
	Name string
	// Regions are normalised region names; empty matches every region, including an unknown one.
	Regions []string
	// Selector matches namespace labels; nil matches every namespace.
	Selector labels.Selector
	// DiskEncryptionSetID is injected into the OS disk and, unless DataDiskEncryptionSetID is set,
	// every data disk. Empty injects no DES.
	DiskEncryptionSetID     string
	DataDiskEncryptionSetID string
	// DataDiskStorageAccountType, when set, lets the default give a data disk that has no
	// managedDisk one: {storageAccountType, diskEncryptionSet}. CAPZ sends a data disk's managedDisk
	// to Azure as it is, so one is never injected without a storage type.
	DataDiskStorageAccountType string
	// EncryptionAtHost, when true, injects securityProfile.encryptionAtHost: true where the VM size
	// supports it.
	EncryptionAtHost bool
}

// builtinActions are the actions of rules the policy file does not mention. Rules that can only
// advise (key rotation, repave, a region source that lost, a gap in the catalog) warn; everything
// else denies, because a webhook that protects encryption should fail closed unless the platform
// team says otherwise.
var builtinActions = map[RuleID]Action{
	RuleDESIDMalformed:            ActionDeny,
	RuleEAHSKUUnsupported:         ActionDeny,
	RuleSKUUnknown:                ActionDeny,
	RuleAKSTarget:                 ActionDeny,
	RuleADEExtension:              ActionDeny,
	RuleDESRequired:               ActionDeny,
	RuleDESLocationMismatch:       ActionDeny,
	RuleDESSubscriptionNotAllowed: ActionDeny,
	RuleDESNotFound:               ActionDeny,
	RuleDESEncryptionType:         ActionDeny,
	RuleDESKeyRotation:            ActionWarn,
	RuleDefaultNotApplied:         ActionWarn,
	RuleRepave:                    ActionWarn,
	// Our missing data is not the user's mistake; a site that wants nothing unverified sets deny.
	RuleCatalogRegionMissing: ActionWarn,
	// The cluster's region was used anyway; the annotation is only stale or misleading.
	RuleLocationAnnotationIgnored: ActionWarn,
	RuleLocationMismatch:          ActionWarn,
	// An expired or disabled key denies new machines; one about to expire can only warn.
	RuleDESKeyExpiry:         ActionDeny,
	RuleCreatedBeforeDefault: ActionWarn,
	// What Azure built: reported by the audit only (admission never has the VM), as failures.
	RuleAzureDiskNotCustomerKey: ActionDeny,
	RuleAzureDiskDESMismatch:    ActionDeny,
	RuleAzureEAHDisabled:        ActionDeny,
}

// DefaultKeyExpiryWarning is keyExpiryWarning when the policy file does not set it.
const DefaultKeyExpiryWarning = 30 * 24 * time.Hour

// KeyExpiryWindow is how long before a key's expiry des-key-expiry warns.
func (p *Policy) KeyExpiryWindow() time.Duration {
	if p.KeyExpiryWarning > 0 {
		return p.KeyExpiryWarning
	}
	return DefaultKeyExpiryWarning
}

// Rules lists every rule ID, sorted.
func Rules() []RuleID {
	out := make([]RuleID, 0, len(builtinActions))
	for r := range builtinActions {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// DefaultPolicy returns the built-in policy: every rule at its built-in action, no defaults to inject.
func DefaultPolicy() *Policy {
	return &Policy{Actions: map[RuleID]Action{}, Source: "built-in"}
}

// ActionFor returns the configured action of rule r.
func (p *Policy) ActionFor(r RuleID) Action {
	if a, ok := p.Actions[r]; ok {
		return a
	}
	if a, ok := builtinActions[r]; ok {
		return a
	}
	return ActionDeny
}

// DefaultFor returns the first default that matches region (normalised, may be empty) and the
// namespace labels.
func (p *Policy) DefaultFor(region string, nsLabels map[string]string) (Default, bool) {
	for _, d := range p.Defaults {
		if len(d.Regions) > 0 && !slices.Contains(d.Regions, region) {
			continue
		}
		if d.Selector != nil && !d.Selector.Matches(labels.Set(nsLabels)) {
			continue
		}
		return d, true
	}
	return Default{}, false
}
