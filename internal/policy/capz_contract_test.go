package policy

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	infrav1alpha "sigs.k8s.io/cluster-api-provider-azure/api/v1alpha1"
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

// TestContractAKSKinds builds every AKS kind CAPZ ships, in every API version, with CAPZ's Go types
// and encryption settings in each place CAPZ lets them be written, and expects aks-target at each.
func TestContractAKSKinds(t *testing.T) {
	meta := metav1.ObjectMeta{Name: "aks", Namespace: "default"}
	tm := func(gv schema.GroupVersion, kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: gv.String(), Kind: kind}
	}
	eahPatch := []string{`{"spec":{"enableEncryptionAtHost":true}}`}
	desPatch := []string{`{"spec":{"diskEncryptionSetReference":{"armId":"` + desEast + `"}}}`}
	pool := infrav1.AzureManagedMachinePoolClassSpec{Mode: "System", SKU: "Standard_D4s_v3", EnableEncryptionAtHost: ptr.To(true), ASOManagedClustersAgentPoolPatches: eahPatch}
	cp := infrav1.AzureManagedControlPlaneClassSpec{Version: "v1.33.2", ASOManagedClusterPatches: desPatch}
	raw := func(o map[string]any) runtime.RawExtension { return runtime.RawExtension{Raw: typed(t, o)} }
	agentPool := raw(map[string]any{"apiVersion": "containerservice.azure.com/v1api20240901", "kind": "ManagedClustersAgentPool",
		"metadata": map[string]any{"name": "pool0"}, "spec": map[string]any{"enableEncryptionAtHost": true}})
	cluster := raw(map[string]any{"apiVersion": "containerservice.azure.com/v1api20240901", "kind": "ManagedCluster",
		"metadata": map[string]any{"name": "aks"}, "spec": map[string]any{
			"diskEncryptionSetReference": map[string]any{"armId": desEast},
			"agentPoolProfiles":          []any{map[string]any{"name": "pool0", "enableEncryptionAtHost": true}}}})
	const aso = "spec.resources[0].spec."
	const asoT = "spec.template.spec.resources[0].spec."
	cases := []struct {
		obj    any
		fields []string
	}{
		{&infrav1.AzureManagedMachinePool{TypeMeta: tm(infrav1.GroupVersion, "AzureManagedMachinePool"), ObjectMeta: meta,
			Spec: infrav1.AzureManagedMachinePoolSpec{AzureManagedMachinePoolClassSpec: pool}},
			[]string{"spec.asoManagedClustersAgentPoolPatches[0]", "spec.enableEncryptionAtHost"}},
		{&infrav1.AzureManagedMachinePoolTemplate{TypeMeta: tm(infrav1.GroupVersion, "AzureManagedMachinePoolTemplate"), ObjectMeta: meta,
			Spec: infrav1.AzureManagedMachinePoolTemplateSpec{Template: infrav1.AzureManagedMachinePoolTemplateResource{
				Spec: infrav1.AzureManagedMachinePoolTemplateResourceSpec{AzureManagedMachinePoolClassSpec: pool}}}},
			[]string{"spec.template.spec.asoManagedClustersAgentPoolPatches[0]", "spec.template.spec.enableEncryptionAtHost"}},
		{&infrav1.AzureManagedControlPlane{TypeMeta: tm(infrav1.GroupVersion, "AzureManagedControlPlane"), ObjectMeta: meta,
			Spec: infrav1.AzureManagedControlPlaneSpec{AzureManagedControlPlaneClassSpec: cp}},
			[]string{"spec.asoManagedClusterPatches[0]"}},
		{&infrav1.AzureManagedControlPlaneTemplate{TypeMeta: tm(infrav1.GroupVersion, "AzureManagedControlPlaneTemplate"), ObjectMeta: meta,
			Spec: infrav1.AzureManagedControlPlaneTemplateSpec{Template: infrav1.AzureManagedControlPlaneTemplateResource{
				Spec: infrav1.AzureManagedControlPlaneTemplateResourceSpec{AzureManagedControlPlaneClassSpec: cp}}}},
			[]string{"spec.template.spec.asoManagedClusterPatches[0]"}},
		{&infrav1.AzureASOManagedMachinePool{TypeMeta: tm(infrav1.GroupVersion, "AzureASOManagedMachinePool"), ObjectMeta: meta,
			Spec: infrav1.AzureASOManagedMachinePoolSpec{AzureASOManagedMachinePoolTemplateResourceSpec: infrav1.AzureASOManagedMachinePoolTemplateResourceSpec{
				Resources: []runtime.RawExtension{agentPool}}}},
			[]string{aso + "enableEncryptionAtHost"}},
		{&infrav1alpha.AzureASOManagedMachinePool{TypeMeta: tm(infrav1alpha.GroupVersion, "AzureASOManagedMachinePool"), ObjectMeta: meta,
			Spec: infrav1alpha.AzureASOManagedMachinePoolSpec{AzureASOManagedMachinePoolTemplateResourceSpec: infrav1alpha.AzureASOManagedMachinePoolTemplateResourceSpec{
				Resources: []runtime.RawExtension{agentPool}}}},
			[]string{aso + "enableEncryptionAtHost"}},
		{&infrav1.AzureASOManagedMachinePoolTemplate{TypeMeta: tm(infrav1.GroupVersion, "AzureASOManagedMachinePoolTemplate"), ObjectMeta: meta,
			Spec: infrav1.AzureASOManagedMachinePoolTemplateSpec{Template: infrav1.AzureASOManagedControlPlaneResource{
				Spec: infrav1.AzureASOManagedControlPlaneTemplateResourceSpec{Resources: []runtime.RawExtension{agentPool}}}}},
			[]string{asoT + "enableEncryptionAtHost"}},
		{&infrav1alpha.AzureASOManagedMachinePoolTemplate{TypeMeta: tm(infrav1alpha.GroupVersion, "AzureASOManagedMachinePoolTemplate"), ObjectMeta: meta,
			Spec: infrav1alpha.AzureASOManagedMachinePoolTemplateSpec{Template: infrav1alpha.AzureASOManagedControlPlaneResource{
				Spec: infrav1alpha.AzureASOManagedControlPlaneTemplateResourceSpec{Resources: []runtime.RawExtension{agentPool}}}}},
			[]string{asoT + "enableEncryptionAtHost"}},
		{&infrav1.AzureASOManagedControlPlane{TypeMeta: tm(infrav1.GroupVersion, "AzureASOManagedControlPlane"), ObjectMeta: meta,
			Spec: infrav1.AzureASOManagedControlPlaneSpec{AzureASOManagedControlPlaneTemplateResourceSpec: infrav1.AzureASOManagedControlPlaneTemplateResourceSpec{
				Resources: []runtime.RawExtension{cluster}}}},
			[]string{aso + "agentPoolProfiles[0].enableEncryptionAtHost", aso + "diskEncryptionSetReference"}},
		{&infrav1alpha.AzureASOManagedControlPlane{TypeMeta: tm(infrav1alpha.GroupVersion, "AzureASOManagedControlPlane"), ObjectMeta: meta,
			Spec: infrav1alpha.AzureASOManagedControlPlaneSpec{AzureASOManagedControlPlaneTemplateResourceSpec: infrav1alpha.AzureASOManagedControlPlaneTemplateResourceSpec{
				Resources: []runtime.RawExtension{cluster}}}},
			[]string{aso + "agentPoolProfiles[0].enableEncryptionAtHost", aso + "diskEncryptionSetReference"}},
		{&infrav1.AzureASOManagedControlPlaneTemplate{TypeMeta: tm(infrav1.GroupVersion, "AzureASOManagedControlPlaneTemplate"), ObjectMeta: meta,
			Spec: infrav1.AzureASOManagedControlPlaneTemplateSpec{Template: infrav1.AzureASOManagedControlPlaneResource{
				Spec: infrav1.AzureASOManagedControlPlaneTemplateResourceSpec{Resources: []runtime.RawExtension{cluster}}}}},
			[]string{asoT + "agentPoolProfiles[0].enableEncryptionAtHost", asoT + "diskEncryptionSetReference"}},
		{&infrav1alpha.AzureASOManagedControlPlaneTemplate{TypeMeta: tm(infrav1alpha.GroupVersion, "AzureASOManagedControlPlaneTemplate"), ObjectMeta: meta,
			Spec: infrav1alpha.AzureASOManagedControlPlaneTemplateSpec{Template: infrav1alpha.AzureASOManagedControlPlaneResource{
				Spec: infrav1alpha.AzureASOManagedControlPlaneTemplateResourceSpec{Resources: []runtime.RawExtension{cluster}}}}},
			[]string{asoT + "agentPoolProfiles[0].enableEncryptionAtHost", asoT + "diskEncryptionSetReference"}},
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		b := typed(t, tc.obj)
		var head struct{ APIVersion, Kind string }
		if err := json.Unmarshal(b, &head); err != nil {
			t.Fatal(err)
		}
		t.Run(head.APIVersion+"/"+head.Kind, func(t *testing.T) {
			covered[head.Kind+" "+strings.TrimPrefix(head.APIVersion, Group+"/")] = true
			d, err := Evaluate(DefaultPolicy(), Request{Operation: OperationCreate, Object: b}, Environment{})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, f := range tc.fields {
				want = append(want, string(RuleAKSTarget)+"@"+f)
			}
			if got := rulesAt(d); !slices.Equal(got, want) {
				t.Errorf("findings %v, want %v", got, want)
			}
			if d.Allowed || len(d.Patch) != 0 {
				t.Errorf("allowed %v, patch %v: want a denial and nothing injected", d.Allowed, d.Patch)
			}
		})
	}
	// Every AKS kind of the table, in every version it lists, has a case.
	for _, k := range Kinds() {
		if k.Mutable {
			continue
		}
		for _, v := range k.Versions {
			if !covered[k.Kind+" "+v] {
				t.Errorf("no contract case for %s %s", k.Kind, v)
			}
		}
	}
}

func withKind(tm metav1.TypeMeta, kind string) metav1.TypeMeta {
	tm.Kind = kind
	return tm
}
