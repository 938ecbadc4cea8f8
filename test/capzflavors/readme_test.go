package capzflavors

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
)

// The facts README.md states about the flavors are computed here from the templates themselves, so
// that a CAPZ bump that changes them fails this test instead of leaving the README wrong.

const infraGroup = "infrastructure.cluster.x-k8s.io"

// machineKinds are the CAPZ kinds that describe node VMs or AKS pools, i.e. what the webhook
// judges or refuses.
var machineKinds = []string{
	"AzureMachineTemplate", "AzureMachinePool",
	"AzureManagedControlPlane", "AzureManagedControlPlaneTemplate",
	"AzureManagedMachinePool", "AzureManagedMachinePoolTemplate",
	"AzureASOManagedControlPlane", "AzureASOManagedControlPlaneTemplate",
	"AzureASOManagedMachinePool", "AzureASOManagedMachinePoolTemplate",
}

func isMachineObject(o *unstructured.Unstructured) bool {
	return o.GroupVersionKind().Group == infraGroup && slices.Contains(machineKinds, o.GetKind())
}

// abbrev keeps the kinds column readable; README.md carries the legend.
var abbrev = map[string]string{
	"KubeadmControlPlane": "KCP", "KubeadmControlPlaneTemplate": "KCPT", "MachineDeployment": "MD",
	"MachinePool": "MP", "KubeadmConfigTemplate": "KCfgT", "KubeadmConfig": "KCfg",
	"AzureClusterIdentity": "ACI", "AzureMachineTemplate": "AMT", "AzureMachinePool": "AMP",
	"AzureManagedControlPlane": "AMCP", "AzureManagedControlPlaneTemplate": "AMCPT",
	"AzureManagedMachinePool": "AMMP", "AzureManagedMachinePoolTemplate": "AMMPT",
	"AzureManagedCluster": "AMC", "AzureManagedClusterTemplate": "AMCT",
	"AzureASOManagedControlPlane": "ASOCP", "AzureASOManagedControlPlaneTemplate": "ASOCPT",
	"AzureASOManagedMachinePool": "ASOMP", "AzureASOManagedMachinePoolTemplate": "ASOMPT",
	"AzureASOManagedCluster": "ASOC", "AzureASOManagedClusterTemplate": "ASOCT",
	"AzureClusterTemplate": "ACT", "RKE2ControlPlaneTemplate": "RKE2CPT", "RKE2ConfigTemplate": "RKE2CfgT",
}

func short(o *unstructured.Unstructured) string {
	s := o.GetKind()
	if a, ok := abbrev[s]; ok {
		s = a
	}
	// Everything in the flavors is v1beta1 except where marked.
	if v := o.GroupVersionKind().Version; v != "v1beta1" {
		s += "(" + v + ")"
	}
	return s
}

// reference is an infrastructure or control-plane reference from one object to another of the
// same file.
type reference struct {
	from  int    // index of the referring object
	path  string // where the reference is
	kind  string
	name  string
	apiVs string // apiVersion of the referring object
}

// referencesIn lists the references of the file's CAPI objects (Cluster, ClusterClass,
// KubeadmControlPlane, MachineDeployment, MachinePool, ...), read where the webhook reads them:
// capiref's table, both API shapes.
func referencesIn(objs []*unstructured.Unstructured) []reference {
	var refs []reference
	for i, o := range objs {
		k, ok := capiref.Lookup(o.GroupVersionKind().Group, o.GetKind())
		if !ok {
			continue
		}
		for _, r := range k.Refs(o.Object) {
			refs = append(refs, reference{from: i, path: r.Field, kind: r.Kind, name: r.Name, apiVs: o.GetAPIVersion()})
		}
	}
	return refs
}

// machineSize is where each machine kind keeps its VM size, as the raw template writes it.
func machineSize(o *unstructured.Unstructured) string {
	for _, p := range [][]string{{"spec", "template", "spec", "vmSize"}, {"spec", "template", "vmSize"}, {"spec", "sku"}, {"spec", "template", "spec", "sku"}} {
		if s, ok, _ := unstructured.NestedString(o.Object, p...); ok {
			return s
		}
	}
	for _, p := range [][]string{{"spec", "resources"}, {"spec", "template", "spec", "resources"}} {
		rs, _, _ := unstructured.NestedSlice(o.Object, p...)
		for _, r := range rs {
			if s, ok, _ := unstructured.NestedString(r.(map[string]any), "spec", "vmSize"); ok {
				return s
			}
		}
	}
	return ""
}

// unmanagedDataDisks names the data disks that have no managedDisk (CAPZ then sends no DES).
func unmanagedDataDisks(o *unstructured.Unstructured) []string {
	var out []string
	for _, p := range [][]string{{"spec", "template", "spec", "dataDisks"}, {"spec", "template", "dataDisks"}} {
		ds, _, _ := unstructured.NestedSlice(o.Object, p...)
		for _, d := range ds {
			m := d.(map[string]any)
			if _, ok := m["managedDisk"]; !ok {
				out = append(out, fmt.Sprint(m["nameSuffix"]))
			}
		}
	}
	return out
}

const namePrefix = "${CLUSTER_NAME}-"

func role(name string) string {
	if r := strings.TrimPrefix(name, namePrefix); r != "" && r != name {
		return r
	}
	return strings.ReplaceAll(name, "${CLUSTER_NAME}", "$CLUSTER")
}

func sizeText(s string) string {
	switch s {
	case "${AZURE_CONTROL_PLANE_MACHINE_TYPE}":
		return "$CP"
	case "${AZURE_NODE_MACHINE_TYPE}":
		return "$NODE"
	case "":
		return "none"
	}
	return s
}

// flavorTable is the per-flavor table of README.md, computed from the raw templates (variables
// as written, so that sizes show which variable they come from).
func flavorTable(t *testing.T) string {
	t.Helper()
	flavors, err := Flavors()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| flavor | objects in file order | CAPZ machine objects: role, size, referenced by | data disks without managedDisk |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, f := range flavors {
		raw, err := f.Raw()
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Objects(raw)
		if err != nil {
			t.Fatal(err)
		}
		var kinds, machines, disks []string
		refs := referencesIn(objs)
		for i, o := range objs {
			kinds = append(kinds, short(o))
			if !isMachineObject(o) {
				continue
			}
			var by []string
			for _, r := range refs {
				if r.kind == o.GetKind() && r.name == o.GetName() {
					order := "before"
					if r.from > i {
						order = "after"
					}
					by = append(by, fmt.Sprintf("%s %s", short(objs[r.from]), order))
				}
			}
			if len(by) == 0 {
				by = []string{"nothing"}
			}
			m := fmt.Sprintf("%s %s, %s, ← %s", short(o), role(o.GetName()), sizeText(machineSize(o)), strings.Join(by, "+"))
			machines = append(machines, m)
			for _, d := range unmanagedDataDisks(o) {
				disks = append(disks, role(o.GetName())+": "+d)
			}
		}
		if len(machines) == 0 {
			machines = []string{"—"}
		}
		if len(disks) == 0 {
			disks = []string{"—"}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", f.Name, strings.Join(kinds, ", "), strings.Join(machines, "; "), strings.Join(disks, ", "))
	}
	return b.String()
}

func TestREADMEFlavorTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := flavorTable(t)
	if !strings.Contains(string(readme), want) {
		t.Errorf("README.md does not hold the flavor table computed from the pinned CAPZ; replace it with:\n\n%s", want)
	}
}

// TestFlavorFactsTheWebhookReliesOn pins what issue 9's design assumes about CAPZ's flavors.
func TestFlavorFactsTheWebhookReliesOn(t *testing.T) {
	flavors, err := Flavors()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flavors {
		out, err := Render(f, DefaultVars("eastus"))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := Objects(out)
		if err != nil {
			t.Fatal(err)
		}
		refs := referencesIn(objs)
		for i, o := range objs {
			if !isMachineObject(o) {
				continue
			}
			// No flavor labels its machine objects with their cluster: the region must come from
			// whoever references them.
			if v, ok := o.GetLabels()["cluster.x-k8s.io/cluster-name"]; ok {
				t.Errorf("%s: %s %s carries cluster-name=%q", f.Name, o.GetKind(), o.GetName(), v)
			}
			// Whoever references a machine object comes first in the file: at the template's
			// CREATE, its binding is already in the apiserver (but maybe not in an informer yet).
			for _, r := range refs {
				if r.kind == o.GetKind() && r.name == o.GetName() && r.from > i {
					t.Errorf("%s: %s %s is referenced by %s at %s, which comes after it", f.Name, o.GetKind(), o.GetName(), objs[r.from].GetKind(), r.path)
				}
			}
		}
	}
}
