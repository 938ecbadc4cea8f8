package policy

import (
	"slices"
	"strings"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
)

// Group is the API group of every object the policy decides on: CAPI's infrastructure group.
const Group = capiref.GroupInfra

// KindInfo is one kind the policy decides on, as everything outside the policy needs to know it.
// The table below is the one place a kind is declared: the admission handler's filter (Handles),
// `check`, and — through test/chart — the chart's webhook rules and RBAC derive from it. Adding a
// CAPZ kind is one entry in kindTable and one test.
type KindInfo struct {
	Kind string
	// Resource is the lower-case plural the webhook rules and RBAC name.
	Resource string
	Group    string
	// Versions are the versions of the pinned CAPZ CRDs. The handler accepts every version of the
	// group: the fields the policy reads have the same paths in all of them.
	Versions []string
	// BasePath is where the kind keeps the machine settings (vmSize, osDisk, ...), dotted; empty for
	// the AKS kinds, which have none.
	BasePath string
	// Mutable kinds get the organisation defaults injected on CREATE.
	Mutable bool
}

// kindSpec is a kind's entry: what the world sees of it, and how the policy reads it.
type kindSpec struct {
	KindInfo
	// machine is BasePath as a path; nil for AKS kinds.
	machine fieldPath
	// locationField is where the object itself names its region, if it can.
	locationField fieldPath
	// validate runs the kind's rules.
	validate func(*evaluation)
}

var kindTable = []kindSpec{
	machineKind("AzureMachineTemplate", "azuremachinetemplates", pathOf("spec", "template", "spec"), nil),
	machineKind("AzureMachine", "azuremachines", pathOf("spec"), nil),
	machineKind("AzureMachinePool", "azuremachinepools", pathOf("spec", "template"), pathOf("spec", "location")),
	// AKS, in every API generation CAPZ ships: the managed kinds and their ClusterClass templates,
	// and the ASO-based kinds (v1alpha1 and v1beta1), whose spec.resources[] embed ASO objects.
	aksKind("AzureManagedMachinePool", pathOf("spec"), nil, "v1beta1"),
	aksKind("AzureManagedMachinePoolTemplate", pathOf("spec", "template", "spec"), nil, "v1beta1"),
	aksKind("AzureManagedControlPlane", pathOf("spec"), pathOf("spec", "location"), "v1beta1"),
	aksKind("AzureManagedControlPlaneTemplate", pathOf("spec", "template", "spec"), pathOf("spec", "template", "spec", "location"), "v1beta1"),
	aksKind("AzureASOManagedMachinePool", pathOf("spec"), nil, "v1alpha1", "v1beta1"),
	aksKind("AzureASOManagedMachinePoolTemplate", pathOf("spec", "template", "spec"), nil, "v1alpha1", "v1beta1"),
	aksKind("AzureASOManagedControlPlane", pathOf("spec"), nil, "v1alpha1", "v1beta1"),
	aksKind("AzureASOManagedControlPlaneTemplate", pathOf("spec", "template", "spec"), nil, "v1alpha1", "v1beta1"),
}

// aksKind is an entry for an AKS kind: nothing is injected, and aks-target denies the encryption
// settings it can carry at spec (spec.template.spec for templates).
func aksKind(kind string, spec, location fieldPath, versions ...string) kindSpec {
	return kindSpec{
		KindInfo:      KindInfo{Kind: kind, Resource: strings.ToLower(kind) + "s", Group: Group, Versions: versions},
		locationField: location,
		validate:      func(e *evaluation) { e.validateAKS(spec) },
	}
}

// machineKind is an entry for a kind that describes virtual machines: it gets defaults injected and
// the machine rules at base.
func machineKind(kind, resource string, base, location fieldPath) kindSpec {
	return kindSpec{
		KindInfo: KindInfo{Kind: kind, Resource: resource, Group: Group, Versions: []string{"v1beta1"}, BasePath: base.String(), Mutable: true},
		machine:  base, locationField: location,
		validate: func(e *evaluation) { e.validateMachine(base) },
	}
}

// Kinds lists the kinds the policy decides on, in the table's order.
func Kinds() []KindInfo {
	out := make([]KindInfo, len(kindTable))
	for i, k := range kindTable {
		out[i] = k.KindInfo
		out[i].Versions = slices.Clone(k.Versions)
	}
	return out
}

func lookupKind(kind string) (kindSpec, bool) {
	for _, k := range kindTable {
		if k.Kind == kind {
			return k, true
		}
	}
	return kindSpec{}, false
}

// Handles reports whether the policy decides on objects of this apiVersion and kind. Every version of
// the group is accepted (see KindInfo.Versions).
func Handles(apiVersion, kind string) bool {
	group, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return false
	}
	k, ok := lookupKind(kind)
	return ok && group == k.Group
}

func kindNames() string {
	names := make([]string, len(kindTable))
	for i, k := range kindTable {
		names[i] = k.Kind
	}
	return strings.Join(names, ", ")
}

// aksKinds identify a Cluster that runs on AKS, where this platform supports neither customer-managed
// disk keys nor encryption at host: the infrastructure and control-plane kinds of managed clusters.
var aksKinds = []string{"AzureManagedCluster", "AzureASOManagedCluster", "AzureManagedControlPlane", "AzureASOManagedControlPlane"}

// IsAKSKind reports whether a Cluster's infrastructure or control-plane ref of this kind means AKS.
func IsAKSKind(kind string) bool { return slices.Contains(aksKinds, kind) }
