package celpolicy

import "strings"

// kindSpec says where a kind keeps what the rules read. It repeats policy's (unexported) table; the
// parity tests compare the field paths of every finding with policy.Evaluate's, so a drift fails.
type kindSpec struct {
	kind     string
	resource string   // lower-case plural, as resourceRules name it
	machine  []string // path of the VM settings; nil for the AKS kinds
	// mutable kinds get the organisation defaults injected.
	mutable bool
}

var (
	azureMachineTemplate     = kindSpec{kind: "AzureMachineTemplate", resource: "azuremachinetemplates", machine: []string{"spec", "template", "spec"}, mutable: true}
	azureMachine             = kindSpec{kind: "AzureMachine", resource: "azuremachines", machine: []string{"spec"}, mutable: true}
	azureMachinePool         = kindSpec{kind: "AzureMachinePool", resource: "azuremachinepools", machine: []string{"spec", "template"}, mutable: true}
	azureManagedMachinePool  = kindSpec{kind: "AzureManagedMachinePool", resource: "azuremanagedmachinepools"}
	azureManagedControlPlane = kindSpec{kind: "AzureManagedControlPlane", resource: "azuremanagedcontrolplanes"}

	machineKinds = []kindSpec{azureMachineTemplate, azureMachine, azureMachinePool}
)

// dotted is the machine path as findings print it: spec.template.spec.
func (k kindSpec) dotted() string { return strings.Join(k.machine, ".") }

// pointer is the machine path as a JSON pointer: /spec/template/spec.
func (k kindSpec) pointer() string { return "/" + strings.Join(k.machine, "/") }

// lower is the kind in lower case, for object names.
func (k kindSpec) lower() string { return strings.ToLower(k.kind) }
