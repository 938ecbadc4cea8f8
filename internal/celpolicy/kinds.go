package celpolicy

import (
	"strings"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// kindSpec says where a kind keeps what the rules read, as policy's kind table (policy.Kinds)
// declares it; the parity tests compare the field paths of every finding with policy.Evaluate's.
type kindSpec struct {
	kind     string
	resource string   // lower-case plural, as resourceRules name it
	machine  []string // path of the VM settings; nil for the AKS kinds
	// mutable kinds get the organisation defaults injected.
	mutable bool
}

var (
	azureMachineTemplate     = specOf("AzureMachineTemplate")
	azureMachine             = specOf("AzureMachine")
	azureMachinePool         = specOf("AzureMachinePool")
	azureManagedMachinePool  = specOf("AzureManagedMachinePool")
	azureManagedControlPlane = specOf("AzureManagedControlPlane")

	// machineKinds are the kinds with VM settings: the mutable ones, in the table's order.
	machineKinds = func() []kindSpec {
		var out []kindSpec
		for _, k := range policy.Kinds() {
			if k.Mutable {
				out = append(out, specOf(k.Kind))
			}
		}
		return out
	}()
)

// specOf is the entry of a kind the policy declares. The kinds are this package's constants, so a
// missing one is a programming error, caught by every test of the package.
func specOf(kind string) kindSpec {
	for _, k := range policy.Kinds() {
		if k.Kind == kind {
			var machine []string
			if k.BasePath != "" {
				machine = strings.Split(k.BasePath, ".")
			}
			return kindSpec{kind: k.Kind, resource: k.Resource, machine: machine, mutable: k.Mutable}
		}
	}
	panic("celpolicy: the policy declares no kind " + kind)
}

// dotted is the machine path as findings print it: spec.template.spec.
func (k kindSpec) dotted() string { return strings.Join(k.machine, ".") }

// pointer is the machine path as a JSON pointer: /spec/template/spec.
func (k kindSpec) pointer() string { return "/" + strings.Join(k.machine, "/") }

// lower is the kind in lower case, for object names.
func (k kindSpec) lower() string { return strings.ToLower(k.kind) }
