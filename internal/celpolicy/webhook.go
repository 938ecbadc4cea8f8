package celpolicy

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// WebhookMatchConditionName names the condition WebhookMatchCondition returns.
const WebhookMatchConditionName = "not-decided-by-admission-policies"

// WebhookMatchCondition is a matchCondition for the webhook configurations that sends the webhook
// only the objects the compiled policies cannot decide on their own, for a deployment where the
// webhook serves only what CEL cannot (its failurePolicy can then be Ignore without losing what is
// compiled). It is conservative: when in doubt, the webhook sees the object.
//
//   - AzureMachineTemplate, AzureMachine, AzureMachinePool: always. policy.Evaluate judges every VM
//     size against the catalog in the object's region (sku-unknown), whatever else the object holds,
//     and the region comes from the Cluster. Narrowing this (to objects that ask for encryption at
//     host, or that a default could give it, name a Disk Encryption Set to look up, or need a
//     regional default) needs sku-unknown to apply only where the size's capabilities matter, as
//     DESIGN.md describes it.
//   - AzureManagedMachinePool: never: aks-target is compiled exactly.
//   - AzureManagedControlPlane: when a patch has a JSON escape, or mentions diskEncryptionSet (in any
//     case) without matching AKSPatchPattern: CEL cannot decode JSON, and for valid JSON without
//     escapes the pattern and the webhook agree.
//   - Any other kind: always.
//
// The expression uses no variables and no parameters, which webhook matchConditions do not have.
func WebhookMatchCondition() admissionregistrationv1.MatchCondition {
	undecidedPatch := `x.contains("\\") || (x.matches(` + rawRegex(lowerClasses("diskencryptionset")) + `) && !x.matches(` + rawRegex(AKSPatchPattern) + `))`
	return admissionregistrationv1.MatchCondition{
		Name: WebhookMatchConditionName,
		Expression: `object == null || !(object.kind in ` + strList([]string{azureManagedMachinePool.kind, azureManagedControlPlane.kind}) + `) || ` +
			`(object.kind == ` + str(azureManagedControlPlane.kind) + ` && object.?spec.?asoManagedClusterPatches.orValue([]).exists(x, ` + undecidedPatch + `))`,
	}
}
