package celpolicy

import (
	"fmt"
	"strings"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Why the rules that need data outside the object are left to the webhook. An admission policy sees
// the object, the stored object, the request, the namespace and one parameter object; not the CAPI
// Cluster (hence neither the region nor whether it is AKS), and not Azure.
const needsRegion = "the machine's region, which the webhook finds through its CAPI Cluster (AzureCluster.spec.location); admission policies cannot see the Cluster. " +
	"An AzureMachinePool's spec.location and the location annotation are visible, but the compiled policies read neither: their VM-size verdicts are what holds in every region"

func needsAzure(what string) string {
	return "needs live Azure data about the Disk Encryption Set (" + what + "), which admission policies cannot see"
}

func (c *compiler) omit() {
	add := func(r policy.RuleID, scope, reason string) {
		c.res.NotCompiled = append(c.res.NotCompiled, Omission{Rule: r, Scope: scope, Reason: reason})
	}
	inactive := func(r policy.RuleID, reason string) {
		c.res.Inactive = append(c.res.Inactive, Omission{Rule: r, Reason: reason})
	}

	add(policy.RuleDESLocationMismatch, "", needsAzure("its location")+"; and "+needsRegion)
	add(policy.RuleDESNotFound, "", needsAzure("whether it exists"))
	add(policy.RuleDESEncryptionType, "", needsAzure("its encryption type"))
	add(policy.RuleDESKeyRotation, "", needsAzure("its key rotation settings and status"))
	add(policy.RuleSKUUnknown, "", "it runs only when encryption at host is asked for or injected, and whether the size is offered depends on "+needsRegion+
		" (a complete listing of the region that lacks the size denies; without a region it only warns, and in a region no catalog layer covers it does not run)")
	add(policy.RuleCatalogRegionMissing, "", "whether a catalog layer covers the machine's region depends on "+needsRegion)
	add(policy.RuleLocationAnnotationIgnored, "", "it compares the location annotation with the region of the machine's cluster (AzureCluster.spec.location), which admission policies cannot see")
	add(policy.RuleLocationMismatch, "", "it compares an AzureMachinePool's spec.location with its cluster's AzureCluster.spec.location, which admission policies cannot see")
	add(policy.RuleDefaultNotApplied, "", "it reports why the webhook's mutation left a default out; some reasons depend on the region (a size's support for encryption at host), and a MutatingAdmissionPolicy cannot return warnings")
	add(policy.RuleRepave, "", "a warning only, left to the webhook: the comparison of the object with the stored one that the webhook makes on UPDATE is expressible in CEL but not compiled; the design's binding-time check (a MachineDeployment, KubeadmControlPlane or MachinePool switched to a template with other encryption settings) needs both templates, which admission policies cannot see")
	add(policy.RuleAKSTarget, "AzureMachineTemplate, AzureMachine and AzureMachinePool of an AKS cluster",
		"whether a machine belongs to an AKS cluster depends on its CAPI Cluster's infrastructure and control-plane kinds, which admission policies cannot see")
	add(policy.RuleAKSTarget, "AzureManagedControlPlane patches whose Disk Encryption Set key is written with JSON escapes, or that are not valid JSON",
		"CEL cannot decode JSON: the compiled rule denies only the patches it is certain about, so that it never denies what the webhook allows")

	add(policy.RuleDESKeyExpiry, "", needsAzure("the expiry of its Key Vault key"))
	for _, r := range []policy.RuleID{policy.RuleCreatedBeforeDefault, policy.RuleAzureDiskNotCustomerKey, policy.RuleAzureDiskDESMismatch, policy.RuleAzureEAHDisabled} {
		add(r, "", "not an admission rule: only the audit of stored objects and of what Azure built judges it")
	}
	if d := c.def; d != nil && policy.NeedsPremiumIO(d.DataDiskStorageAccountType) {
		add("", fmt.Sprintf("the managedDisk (%s) that default %q gives data disks without one", d.DataDiskStorageAccountType, d.Name),
			"a Premium storage type is given only where the size can attach Premium SSD disks in "+needsRegion+"; des-required leaves those disks to the webhook too")
	}

	switch {
	case !c.p.RequireCustomerManagedKeys:
		inactive(policy.RuleDESRequired, "requireCustomerManagedKeys is false")
	case c.defReason != "":
		add(policy.RuleDESRequired, "", c.defReason+", and the webhook injects it before it validates: compiled alone, des-required would refuse every object that default should fill whenever the webhook is not running")
	}
	if len(c.p.AllowedDESSubscriptions) == 0 {
		inactive(policy.RuleDESSubscriptionNotAllowed, "allowedDESSubscriptions is empty")
	}

	if c.sizes == nil {
		add(policy.RuleEAHSKUUnsupported, "", "no VM-size catalog was given")
	} else {
		if n := len(c.sizes.mixed); n > 0 {
			add(policy.RuleEAHSKUUnsupported, fmt.Sprintf("%s that support encryption at host in some catalog regions and not in others (%s)", sizesCount(n), examples(c.sizes.mixed)),
				"the verdict depends on "+needsRegion)
		}
		if n := len(c.sizes.regionless); n > 0 {
			add(policy.RuleEAHSKUUnsupported, fmt.Sprintf("the refusal of %s that no catalog region supports, compiled as a warning (%s)", sizesCount(n), examples(c.sizes.regionless)),
				fmt.Sprintf("current evidence says no in some regions, but in another the only evidence is more than %d years old, which only warns there; which one applies depends on %s", policy.EvidenceMaxAgeYears, needsRegion))
		}
	}

	switch d := c.def; {
	case len(c.p.Defaults) == 0:
	case d == nil:
		add("", "injection of organisation defaults", c.defReason+": which default applies depends on the namespace's labels or on "+needsRegion)
	case d.EncryptionAtHost && c.sizes == nil:
		add("", fmt.Sprintf("encryptionAtHost of default %q", d.Name), "no VM-size catalog was given, so no size is known to support encryption at host")
	case d.EncryptionAtHost && len(c.sizes.mixed) > 0:
		add("", fmt.Sprintf("encryptionAtHost of default %q on the %s with mixed support (%s)", d.Name, sizesCount(len(c.sizes.mixed)), examples(c.sizes.mixed)),
			"whether the size supports encryption at host depends on "+needsRegion)
	}
}

// examples names the first few items of a sorted list.
func examples(items []string) string {
	const n = 5
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + ", ..."
}

func sizesCount(n int) string {
	if n == 1 {
		return "1 VM size"
	}
	return fmt.Sprintf("%d VM sizes", n)
}
