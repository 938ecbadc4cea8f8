package policy

import "strings"

// Group is the API group of every object the policy handles.
const Group = "infrastructure.cluster.x-k8s.io"

// kindSpec says where a kind keeps the machine settings the policy reads and writes.
type kindSpec struct {
	kind string
	// machine is the path of the VM settings (vmSize, osDisk, ...); nil for AKS kinds, which have
	// none of them.
	machine fieldPath
	// mutable is true for kinds the policy injects defaults into.
	mutable bool
	// locationField is where the object itself names its region, if it can.
	locationField fieldPath
}

var kinds = map[string]kindSpec{
	"AzureMachineTemplate":     {kind: "AzureMachineTemplate", machine: pathOf("spec", "template", "spec"), mutable: true},
	"AzureMachine":             {kind: "AzureMachine", machine: pathOf("spec"), mutable: true},
	"AzureMachinePool":         {kind: "AzureMachinePool", machine: pathOf("spec", "template"), mutable: true, locationField: pathOf("spec", "location")},
	"AzureManagedMachinePool":  {kind: "AzureManagedMachinePool"},
	"AzureManagedControlPlane": {kind: "AzureManagedControlPlane"},
}

// Kinds lists the kinds the policy handles.
func Kinds() []string {
	return []string{"AzureMachineTemplate", "AzureMachine", "AzureMachinePool", "AzureManagedMachinePool", "AzureManagedControlPlane"}
}

// Handles reports whether the policy decides on objects of this apiVersion and kind. Every version of
// the CAPZ group is accepted: the fields the policy reads have the same paths in all served versions,
// and the webhook registers with matchPolicy Equivalent.
func Handles(apiVersion, kind string) bool {
	group, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return false
	}
	_, ok := kinds[kind]
	return ok && group == Group
}

// aksInfrastructureKinds and aksControlPlaneKinds identify a Cluster that runs on AKS, where this
// platform supports neither customer-managed disk keys nor encryption at host.
var (
	aksInfrastructureKinds = []string{"AzureManagedCluster", "AzureASOManagedCluster"}
	aksControlPlaneKinds   = []string{"AzureManagedControlPlane", "AzureASOManagedControlPlane"}
)

// IsAKSKind reports whether a Cluster's infrastructure or control-plane ref of this kind means AKS.
func IsAKSKind(kind string) bool {
	for _, k := range aksInfrastructureKinds {
		if k == kind {
			return true
		}
	}
	for _, k := range aksControlPlaneKinds {
		if k == kind {
			return true
		}
	}
	return false
}
