package celpolicy

import (
	"fmt"
	"strings"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Why the rules that need data outside the object are left to the webhook. An admission policy sees
// the object, the stored object, the request, the namespace and one parameter object; not the CAPI
// Cluster (hence neither the region nor whether it is AKS), and not Azure.
const needsRegion = "the machine's region, which the webhook finds through the CAPI Cluster unless the object names it " +
	"(location annotation, AzureMachinePool spec.location); admission policies cannot see the Cluster, and the compiled policies do not read the object's own region yet"

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
	add(policy.RuleSKUUnknown, "", "whether a VM size is offered depends on "+needsRegion+
		"; a compiled catalog also knows fewer sizes than live Azure data, so CEL would refuse sizes the webhook accepts")
	add(policy.RuleDefaultNotApplied, "", "it reports why the webhook's mutation left a default out; some reasons depend on the region (a size's support for encryption at host), and a MutatingAdmissionPolicy cannot return warnings")
	add(policy.RuleRepave, "", "the design places this warning where a MachineDeployment, KubeadmControlPlane or MachinePool switches to a template with other encryption settings, which needs both templates; the in-object comparison the webhook makes today is expressible in CEL and can be added")
	add(policy.RuleAKSTarget, "AzureMachineTemplate, AzureMachine and AzureMachinePool of an AKS cluster",
		"whether a machine belongs to an AKS cluster depends on its CAPI Cluster's infrastructure and control-plane kinds, which admission policies cannot see")
	add(policy.RuleAKSTarget, "AzureManagedControlPlane patches whose Disk Encryption Set key is written with JSON escapes, or that are not valid JSON",
		"CEL cannot decode JSON: the compiled rule denies only the patches it is certain about, so that it never denies what the webhook allows")

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
			add(policy.RuleEAHSKUUnsupported, fmt.Sprintf("%d VM sizes that support encryption at host in some catalog regions and not in others (%s)", n, examples(c.sizes.mixed)),
				"the verdict depends on "+needsRegion)
		}
		if n := len(c.sizes.skipped); n > 0 {
			add(policy.RuleEAHSKUUnsupported, fmt.Sprintf("%d VM sizes whose names cannot be ConfigMap keys (%s)", n, examples(c.sizes.skipped)),
				"the verdicts are looked up in a ConfigMap keyed by size name")
		}
	}

	switch d := c.def; {
	case len(c.p.Defaults) == 0:
	case d == nil:
		add("", "injection of organisation defaults", c.defReason+": which default applies depends on the namespace's labels or on "+needsRegion)
	case d.EncryptionAtHost && c.sizes == nil:
		add("", fmt.Sprintf("encryptionAtHost of default %q", d.Name), "no VM-size catalog was given, so no size is known to support encryption at host")
	case d.EncryptionAtHost:
		add("", fmt.Sprintf("encryptionAtHost of default %q on VM sizes that not every catalog region supports, or that the catalog lacks", d.Name),
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
