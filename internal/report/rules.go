package report

import (
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// RulesURL is where the rules are documented (the README's rule table).
const RulesURL = "https://github.com/capz-encryption-webhook/capz-encryption-webhook#rules"

// ruleHelp says, per rule, when it hits and how to fix it: the help text of SARIF rules, which code
// scanning shows next to every alert. It follows the README's rule table; a test requires an entry
// for every rule of the policy (and a title in ruleTitle).
var ruleHelp = map[policy.RuleID]string{
	policy.RuleDESIDMalformed: "A Disk Encryption Set ID (OS disk, data disk or confidential OS disk) is not " +
		"/subscriptions/{GUID}/resourceGroups/{rg}/providers/Microsoft.Compute/diskEncryptionSets/{name}: a documentation " +
		"placeholder, a Key Vault key URL, a disk ID, a trailing slash or an empty string. Put the resource ID of the DES.",
	policy.RuleEAHSKUUnsupported: "encryptionAtHost: true on a VM size that cannot do encryption at host in the region " +
		"(no EncryptionAtHostSupported=True, or restricted NotAvailableForSubscription there). Pick a size that supports it, " +
		"or rely on a Disk Encryption Set without encryption at host. Only a warning when the catalog's evidence is old.",
	policy.RuleSKUUnknown: "Encryption at host is asked for or would be injected, and a complete listing of the region does " +
		"not offer the VM size: likely a typo in vmSize. Only a warning when that listing is old.",
	policy.RuleCatalogRegionMissing: "No VM-size catalog layer covers the object's region (or its data there lacks the size): " +
		"the catalog's gap, not a mistake in the manifest. Supply a catalog (--sku-catalog) to have it verified.",
	policy.RuleLocationAnnotationIgnored: "The object's capz-encryption-webhook.io/location annotation names another region " +
		"than its cluster's (or an AzureMachinePool's own spec.location), which is used instead.",
	policy.RuleLocationMismatch: "An AzureMachinePool's spec.location is not its cluster's AzureCluster.spec.location.",
	policy.RuleAKSTarget: "Encryption settings aimed at an AKS cluster (encryptionAtHost on an AzureManagedMachinePool, a " +
		"DES patch on an AzureManagedControlPlane, or machines of a Cluster that is AKS): not supported for AKS on this platform.",
	policy.RuleADEExtension: "vmExtensions holds Azure Disk Encryption (Microsoft.Azure.Security / AzureDiskEncryption*), " +
		"which is not supported for any Azure cluster: use a Disk Encryption Set or encryption at host.",
	policy.RuleDESRequired: "The policy requires customer-managed keys and a managed disk has no Disk Encryption Set, and " +
		"no organisation default supplies one.",
	policy.RuleDESSubscriptionNotAllowed: "The Disk Encryption Set lives in a subscription the policy's " +
		"allowedDESSubscriptions does not list.",
	policy.RuleDESLocationMismatch: "(live Azure data) The Disk Encryption Set is in another region than the machine.",
	policy.RuleDESNotFound:         "(live Azure data) The Disk Encryption Set does not exist.",
	policy.RuleDESEncryptionType:   "(live Azure data) A confidential-VM Disk Encryption Set on a regular disk, or the reverse.",
	policy.RuleDESKeyRotation: "(live Azure data) The Disk Encryption Set has automatic key rotation off, or its last " +
		"rotation failed: an expired Key Vault key breaks cluster operations.",
	policy.RuleDESKeyExpiry: "(live Azure and Key Vault data) The Disk Encryption Set's active Key Vault key is expired or " +
		"disabled, or expires soon with nothing to replace it in time: rotate the key, or enable automatic key rotation.",
	policy.RuleCreatedBeforeDefault: "(audit) An organisation default applies to a stored object, but it lacks what the default " +
		"injects: it was created before the default existed, or while the webhook was absent.",
	policy.RuleAzureDiskNotCustomerKey: "(audit with Azure) A managed disk of the machine's VM or scale set is encrypted with " +
		"platform-managed keys only, while the object or the default names a Disk Encryption Set.",
	policy.RuleAzureDiskDESMismatch: "(audit with Azure) A managed disk is encrypted with another Disk Encryption Set than the " +
		"object's (or the default's).",
	policy.RuleAzureEAHDisabled: "(audit with Azure) The VM or scale set has encryption at host off while the object (or the " +
		"default) asks for it.",
	policy.RuleDefaultNotApplied: "An organisation default could not be injected (a size without encryption at host, an " +
		"ephemeral OS disk, a confidential VM, a data disk without managedDisk, or encryptionAtHost: false set by the user).",
	policy.RuleRepave: "An update changes encryption settings: every machine will be replaced.",
}

// ruleTitle is the one-line title of each rule (SARIF shortDescription).
var ruleTitle = map[policy.RuleID]string{
	policy.RuleDESIDMalformed:            "Disk Encryption Set ID is malformed",
	policy.RuleEAHSKUUnsupported:         "VM size cannot do encryption at host in the region",
	policy.RuleSKUUnknown:                "VM size not offered in the region",
	policy.RuleCatalogRegionMissing:      "Region not covered by the VM-size catalog",
	policy.RuleLocationAnnotationIgnored: "Location annotation overridden by the cluster's region",
	policy.RuleLocationMismatch:          "AzureMachinePool location differs from its cluster's",
	policy.RuleAKSTarget:                 "Encryption settings aimed at an AKS cluster",
	policy.RuleADEExtension:              "Azure Disk Encryption extension",
	policy.RuleDESRequired:               "Customer-managed key (Disk Encryption Set) required",
	policy.RuleDESSubscriptionNotAllowed: "Disk Encryption Set in a subscription the policy does not allow",
	policy.RuleDESLocationMismatch:       "Disk Encryption Set in another region",
	policy.RuleDESNotFound:               "Disk Encryption Set not found",
	policy.RuleDESEncryptionType:         "Disk Encryption Set of the wrong encryption type",
	policy.RuleDESKeyRotation:            "Disk Encryption Set without automatic key rotation",
	policy.RuleDESKeyExpiry:              "Disk Encryption Set key expired or expiring",
	policy.RuleCreatedBeforeDefault:      "Stored object lacks an organisation default",
	policy.RuleAzureDiskNotCustomerKey:   "Azure disk without a customer-managed key",
	policy.RuleAzureDiskDESMismatch:      "Azure disk encrypted with another Disk Encryption Set",
	policy.RuleAzureEAHDisabled:          "Azure VM without encryption at host",
	policy.RuleDefaultNotApplied:         "Organisation default could not be injected",
	policy.RuleRepave:                    "Encryption change replaces every machine",
}

// RuleTitle returns the title of a rule; a rule without one gets its ID.
func RuleTitle(r policy.RuleID) string {
	if t, ok := ruleTitle[r]; ok {
		return t
	}
	return string(r)
}

// RuleHelp returns the help text of a rule; a rule without one (added later) gets a pointer to the
// documentation instead of nothing.
func RuleHelp(r policy.RuleID) string {
	if h, ok := ruleHelp[r]; ok {
		return h
	}
	return "See " + RulesURL + "."
}
