package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	infrav1 "sigs.k8s.io/cluster-api-provider-azure/api/v1beta1"
	infrav1exp "sigs.k8s.io/cluster-api-provider-azure/exp/api/v1beta1"
)

// The policy never decodes into CAPZ's Go types (a newer CRD could carry fields they lack, and a
// round trip would drop them). These tests are the contract instead: objects built with the real
// CAPZ types and serialised as CAPZ serialises them must be read, and patched, at the paths the
// policy uses. A renamed JSON tag in a CAPZ upgrade fails here, not in a cluster.

func typed(t *testing.T, o any) []byte {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func machineSpec() infrav1.AzureMachineSpec {
	return infrav1.AzureMachineSpec{
		VMSize: "Standard_D2_v3",
		OSDisk: infrav1.OSDisk{OSType: "Linux", ManagedDisk: &infrav1.ManagedDiskParameters{
			StorageAccountType: "Premium_LRS",
			DiskEncryptionSet:  &infrav1.DiskEncryptionSetParameters{ID: desPlaceholder},
		}},
		DataDisks: []infrav1.DataDisk{{NameSuffix: "d", DiskSizeGB: 64, ManagedDisk: &infrav1.ManagedDiskParameters{
			StorageAccountType: "Premium_LRS", DiskEncryptionSet: &infrav1.DiskEncryptionSetParameters{ID: keyVaultURL},
		}}},
		SecurityProfile: &infrav1.SecurityProfile{EncryptionAtHost: ptr.To(true)},
		VMExtensions:    []infrav1.VMExtension{{Name: "AzureDiskEncryptionForLinux", Publisher: "Microsoft.Azure.Security", Version: "1.4"}},
	}
}

func rulesAt(d *Decision) []string {
	var out []string
	for _, f := range d.Findings {
		out = append(out, string(f.Rule)+"@"+f.Field)
	}
	slices.Sort(out)
	return out
}

func TestContractWithCAPZTypes(t *testing.T) {
	meta := metav1.ObjectMeta{Name: "typed", Namespace: "default"}
	tm := metav1.TypeMeta{APIVersion: infrav1.GroupVersion.String()}
	cases := []struct {
		name string
		obj  any
		base string
	}{
		{"AzureMachineTemplate", &infrav1.AzureMachineTemplate{TypeMeta: withKind(tm, "AzureMachineTemplate"), ObjectMeta: meta,
			Spec: infrav1.AzureMachineTemplateSpec{Template: infrav1.AzureMachineTemplateResource{Spec: machineSpec()}}}, "spec.template.spec."},
		{"AzureMachine", &infrav1.AzureMachine{TypeMeta: withKind(tm, "AzureMachine"), ObjectMeta: meta, Spec: machineSpec()}, "spec."},
		{"AzureMachinePool", &infrav1exp.AzureMachinePool{TypeMeta: metav1.TypeMeta{APIVersion: infrav1exp.GroupVersion.String(), Kind: "AzureMachinePool"}, ObjectMeta: meta,
			Spec: infrav1exp.AzureMachinePoolSpec{Location: "eastus", Template: infrav1exp.AzureMachinePoolMachineTemplate{
				VMSize: machineSpec().VMSize, OSDisk: machineSpec().OSDisk, DataDisks: machineSpec().DataDisks,
				SecurityProfile: machineSpec().SecurityProfile, VMExtensions: machineSpec().VMExtensions,
			}}}, "spec.template."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Evaluate(DefaultPolicy(), Request{Operation: OperationCreate, Object: typed(t, tc.obj)}, eastEnv())
			if err != nil {
				t.Fatal(err)
			}
			want := []string{
				string(RuleADEExtension) + "@" + tc.base + "vmExtensions[0]",
				string(RuleDESIDMalformed) + "@" + tc.base + "dataDisks[0].managedDisk.diskEncryptionSet.id",
				string(RuleDESIDMalformed) + "@" + tc.base + "osDisk.managedDisk.diskEncryptionSet.id",
				string(RuleEAHSKUUnsupported) + "@" + tc.base + "securityProfile.encryptionAtHost",
			}
			if got := rulesAt(d); !slices.Equal(got, want) {
				t.Fatalf("findings on the typed %s:\n got %v\nwant %v", tc.name, got, want)
			}
		})
	}
}

// TestContractPatchDecodesIntoCAPZTypes: the defaults the policy injects land in the CAPZ types'
// fields once the patched JSON is decoded by them.
func TestContractPatchDecodesIntoCAPZTypes(t *testing.T) {
	amt := &infrav1.AzureMachineTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: infrav1.GroupVersion.String(), Kind: "AzureMachineTemplate"},
		ObjectMeta: metav1.ObjectMeta{Name: "typed", Namespace: "default"},
		Spec: infrav1.AzureMachineTemplateSpec{Template: infrav1.AzureMachineTemplateResource{Spec: infrav1.AzureMachineSpec{
			VMSize: "Standard_D4s_v3", OSDisk: infrav1.OSDisk{OSType: "Linux"},
			DataDisks: []infrav1.DataDisk{{NameSuffix: "d", DiskSizeGB: 64, ManagedDisk: &infrav1.ManagedDiskParameters{StorageAccountType: "Premium_LRS"}}},
		}}},
	}
	raw := typed(t, amt)
	d, err := Evaluate(defaultsPolicy(t, ""), Request{Operation: OperationCreate, Object: raw}, eastEnv())
	if err != nil {
		t.Fatal(err)
	}
	var got infrav1.AzureMachineTemplate
	if err := json.Unmarshal(applyPatch(t, raw, d), &got); err != nil {
		t.Fatal(err)
	}
	spec := got.Spec.Template.Spec
	if spec.OSDisk.ManagedDisk == nil || spec.OSDisk.ManagedDisk.DiskEncryptionSet == nil || spec.OSDisk.ManagedDisk.DiskEncryptionSet.ID != desEast {
		t.Errorf("OS disk DES not in the CAPZ type: %+v", spec.OSDisk.ManagedDisk)
	}
	if spec.DataDisks[0].ManagedDisk.DiskEncryptionSet == nil || spec.DataDisks[0].ManagedDisk.DiskEncryptionSet.ID != desEast {
		t.Errorf("data disk DES not in the CAPZ type: %+v", spec.DataDisks[0].ManagedDisk)
	}
	if spec.SecurityProfile == nil || !ptr.Deref(spec.SecurityProfile.EncryptionAtHost, false) {
		t.Errorf("encryptionAtHost not in the CAPZ type: %+v", spec.SecurityProfile)
	}
	if !strings.Contains(got.Annotations[AnnotationInjected], "osDisk.managedDisk.diskEncryptionSet.id") {
		t.Errorf("annotation: %v", got.Annotations)
	}
}

func TestContractAKSKinds(t *testing.T) {
	ammp := &infrav1.AzureManagedMachinePool{
		TypeMeta:   metav1.TypeMeta{APIVersion: infrav1.GroupVersion.String(), Kind: "AzureManagedMachinePool"},
		ObjectMeta: metav1.ObjectMeta{Name: "pool", Namespace: "default"},
		Spec: infrav1.AzureManagedMachinePoolSpec{AzureManagedMachinePoolClassSpec: infrav1.AzureManagedMachinePoolClassSpec{
			Mode: "System", SKU: "Standard_D4s_v3", EnableEncryptionAtHost: ptr.To(true)}},
	}
	amcp := &infrav1.AzureManagedControlPlane{
		TypeMeta:   metav1.TypeMeta{APIVersion: infrav1.GroupVersion.String(), Kind: "AzureManagedControlPlane"},
		ObjectMeta: metav1.ObjectMeta{Name: "cp", Namespace: "default"},
		Spec: infrav1.AzureManagedControlPlaneSpec{AzureManagedControlPlaneClassSpec: infrav1.AzureManagedControlPlaneClassSpec{
			Version: "v1.33.2", ASOManagedClusterPatches: []string{`{"spec":{"diskEncryptionSetReference":{"armId":"x"}}}`}}},
	}
	for obj, field := range map[any]string{ammp: "spec.enableEncryptionAtHost", amcp: "spec.asoManagedClusterPatches[0]"} {
		d, err := Evaluate(DefaultPolicy(), Request{Operation: OperationCreate, Object: typed(t, obj)}, Environment{})
		if err != nil {
			t.Fatal(err)
		}
		if got := rulesAt(d); !slices.Equal(got, []string{string(RuleAKSTarget) + "@" + field}) {
			t.Errorf("%T: %v", obj, got)
		}
	}
}

func withKind(tm metav1.TypeMeta, kind string) metav1.TypeMeta {
	tm.Kind = kind
	return tm
}
