package celpolicy

import (
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// WebhookMatchConditionName names the condition WebhookMatchCondition returns.
const WebhookMatchConditionName = "capz-encryption-webhook-needs-data"

// WebhookScope is what the webhook configurations' condition must know besides the object: facts of
// the deployment and of the policy that the Helm chart knows from its values. ScopeFor derives them
// from a policy; the chart computes the same from its values, and a chart test holds the two to each
// other.
type WebhookScope struct {
	// LiveAzure: the webhook reads Azure (serve --azure-subscription-id), so every Disk Encryption Set
	// ID an object names is looked up (des-not-found, des-location-mismatch, des-encryption-type,
	// des-key-rotation).
	LiveAzure bool
	// EveryMachine: the policy needs the webhook for every machine object: a default whose
	// application depends on the region or the namespace (the compiled policies inject only a default
	// for every region and namespace), a default that sets encryptionAtHost (whether it is injected
	// depends on the size in the machine's region, and why it was not is a finding), or one of the
	// region rules (catalog-region-missing, location-annotation-ignored, location-mismatch) at deny.
	EveryMachine bool
	// DefaultDES: the policy's one default sets a Disk Encryption Set. The compiled policies inject it
	// where the webhook would; a machine that still lacks one (an ephemeral or confidential OS disk, a
	// data disk without managedDisk) gets the webhook's reason (default-not-applied).
	DefaultDES bool
}

// regionRules are the rules that compare the machine's region with something; at deny, every
// machine object needs the webhook.
var regionRules = []policy.RuleID{policy.RuleCatalogRegionMissing, policy.RuleLocationAnnotationIgnored, policy.RuleLocationMismatch}

// ScopeFor says what the webhook must see of objects under p, with or without live Azure data.
func ScopeFor(p *policy.Policy, liveAzure bool) WebhookScope {
	if p == nil {
		p = policy.DefaultPolicy()
	}
	s := WebhookScope{LiveAzure: liveAzure}
	for _, r := range regionRules {
		if p.ActionFor(r) == policy.ActionDeny {
			s.EveryMachine = true
		}
	}
	if len(p.Defaults) > 0 {
		d, _ := universalDefault(p)
		switch {
		case d == nil, d.EncryptionAtHost:
			s.EveryMachine = true
		default:
			s.DefaultDES = d.DiskEncryptionSetID != "" || d.DataDiskEncryptionSetID != ""
		}
	}
	return s
}

// WebhookMatchCondition is a matchCondition for both webhook configurations, for a deployment where
// the compiled admission policies enforce what they can and the webhook serves only the objects that
// need data the apiserver cannot give them: the webhook's failurePolicy can then be Ignore without
// losing what is compiled. It is exact where it leaves an object out: for those objects the webhook
// would reach the decision and the patch the compiled policies reach (its warnings about catalog
// gaps and region conflicts aside, at warn or audit). When in doubt, the webhook sees the object.
//
// AzureMachineTemplate, AzureMachine, AzureMachinePool:
//   - on UPDATE, when the spec changes (ratcheting, repave warnings, regional verdicts);
//   - on CREATE, always when scope.EveryMachine; else when the object asks for encryption at host (the
//     size's verdict depends on the region: sku-unknown in a region's complete listing, mixed support,
//     old evidence), names a Disk Encryption Set and scope.LiveAzure (it is looked up), or lacks one
//     and scope.DefaultDES (the webhook says why the default could not fill it).
//
// Left out: objects being deleted (exempt). Whether a machine belongs to an AKS cluster depends on its
// Cluster too, but is not a reason on its own: the compiled policies treat such machines like any
// other (see Result.NotCompiled).
//
// AzureManagedMachinePool: never (aks-target is compiled exactly). AzureManagedControlPlane: when a
// patch has a JSON escape, or mentions diskEncryptionSet (in any case) without matching
// AKSPatchPattern (CEL cannot decode JSON). Any other kind, and DELETE: always.
//
// The expression uses no variables and no parameters, which webhook matchConditions do not have, and
// compiles at the oldest compatibility version the chart supports (1.29, a 1.30 apiserver).
func WebhookMatchCondition(scope WebhookScope) admissionregistrationv1.MatchCondition {
	undecidedPatch := `x.contains("\\") || (x.matches(` + rawRegex(lowerClasses("diskencryptionset")) + `) && !x.matches(` + rawRegex(AKSPatchPattern) + `))`
	machines := make([]string, 0, len(machineKinds))
	names := make([]string, 0, len(machineKinds))
	for _, k := range machineKinds {
		machines = append(machines, "(object.kind == "+str(k.kind)+" && "+machineNeedsWebhook(k, scope)+")")
		names = append(names, k.kind)
	}
	expr := `object == null || !has(object.metadata.deletionTimestamp) && (` +
		`object.kind in ` + strList(names) + ` ? (request.operation == "UPDATE" ? ` + specChanged + ` : ` + strings.Join(machines, " || ") + `) : ` +
		`object.kind == ` + str(azureManagedMachinePool.kind) + ` ? false : ` +
		`object.kind == ` + str(azureManagedControlPlane.kind) + ` ? object.?spec.?asoManagedClusterPatches.orValue([]).exists(x, ` + undecidedPatch + `) : ` +
		`true)`
	return admissionregistrationv1.MatchCondition{Name: WebhookMatchConditionName, Expression: expr}
}

// specChanged is the webhook's (and the compiled policies') metadata-only exemption, reversed.
const specChanged = `(has(object.spec) != has(oldObject.spec) || (has(object.spec) && object.spec != oldObject.spec))`

// machineNeedsWebhook is the CREATE condition for one machine kind.
func machineNeedsWebhook(k kindSpec, scope WebhookScope) string {
	if scope.EveryMachine {
		return "true"
	}
	m := opt("object", k.machine...)
	disks := opt(m, "dataDisks") + ".orValue([])"
	osID := opt(m, "osDisk", "managedDisk", "diskEncryptionSet", "id") + `.orValue("")`
	cvmID := opt(m, "osDisk", "managedDisk", "securityProfile", "diskEncryptionSet", "id") + `.orValue("")`
	dataID := `d.?managedDisk.?diskEncryptionSet.?id.orValue("")`
	parts := []string{opt(m, "securityProfile", "encryptionAtHost") + ".orValue(false) == true"}
	if scope.LiveAzure {
		parts = append(parts, osID+` != ""`, cvmID+` != ""`, disks+`.exists(d, `+dataID+` != "")`)
	}
	if scope.DefaultDES {
		// The default fills osDisk.managedDisk.diskEncryptionSet only; where it cannot (an ephemeral or
		// confidential OS disk, even one with its own confidential-VM set), the webhook says why.
		parts = append(parts, "!"+opt(m, "osDisk")+".hasValue()", osID+` == ""`, disks+`.exists(d, `+dataID+` == "")`)
	}
	return "(" + strings.Join(parts, " || ") + ")"
}
