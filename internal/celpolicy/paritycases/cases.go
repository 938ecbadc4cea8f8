// Package paritycases holds the cases that hold the compiled admission policies (package celpolicy)
// to the webhook (package policy): the policies, the VM-size catalog and the objects, with what each
// case expects. The unit tests of celpolicy run them through the apiserver's own CEL code; the e2e
// suite runs them through a real kube-apiserver, once with the compiled policies alone and once with
// the webhook alone. It is test data, imported by tests only.
package paritycases

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

const (
	Sub      = "6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90"
	OtherSub = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
	DESOS    = "/subscriptions/" + Sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des-os"
	DESData  = "/subscriptions/" + Sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des-data"
)

// FullPolicy turns on every rule that can be compiled: customer-managed keys required, an allow
// list of subscriptions, and one default for every region and namespace.
const FullPolicy = `apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
requireCustomerManagedKeys: true
allowedDESSubscriptions: [` + Sub + `]
defaults:
  - name: everywhere
    diskEncryptionSetID: ` + DESOS + `
    dataDiskEncryptionSetID: ` + DESData + `
    encryptionAtHost: true
`

// PaletteValues is a Palette pack-values file: one default, a DES and encryption at host.
const PaletteValues = `cloud:
  azure:
    diskEncryptionSetID: ` + DESOS + `
    encryptionAtHost: true
`

// DESOnlyPolicy has one default for every namespace (an empty selector) with a DES only.
const DESOnlyPolicy = `apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
defaults:
  - name: des-only
    namespaceSelector: {}
    diskEncryptionSetID: ` + DESOS + `
`

// EAHOnlyPolicy has one default with encryption at host only.
const EAHOnlyPolicy = `apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
defaults:
  - name: eah-only
    encryptionAtHost: true
`

// Now is when the unit tests judge the age of catalog evidence: the embedded eastus listing (2020)
// and eastus2 selection (2022) are more than policy.EvidenceMaxAgeYears old then, the other captures
// are not.
var Now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// SiteCatalogJSON is a catalog file of the user's subscription (`az vm list-skus --all -o json`) for
// two regions the embedded catalog lacks, with sizes whose verdicts the embedded data does not show:
//   - Standard_Mixed_v1 supports encryption at host in testeast, not in testwest (mixed);
//   - Standard_Restricted_v1 supports it, but the subscription may not use it in testwest, the only
//     region that lists it: refused there and with the region unknown, allowed in a region no layer
//     covers (mixed);
//   - Standard_Fresh_v1 supports it in neither (unsupported, current evidence).
var SiteCatalogJSON = siteCatalog()

func siteCatalog() string {
	type kv struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	type restriction struct {
		Type       string   `json:"type"`
		ReasonCode string   `json:"reasonCode"`
		Values     []string `json:"values"`
	}
	type record struct {
		ResourceType string        `json:"resourceType"`
		Name         string        `json:"name"`
		Tier         string        `json:"tier"`
		Family       string        `json:"family"`
		Locations    []string      `json:"locations"`
		Capabilities []kv          `json:"capabilities"`
		Restrictions []restriction `json:"restrictions"`
	}
	rec := func(name, region, eah string, restricted bool) record {
		r := record{ResourceType: skucatalog.ResourceTypeVM, Name: name, Tier: "Standard", Family: "testFamily", Locations: []string{region},
			Capabilities: []kv{{Name: skus.CapabilityEncryptionAtHost, Value: eah}}, Restrictions: []restriction{}}
		if restricted {
			r.Restrictions = []restriction{{Type: skus.RestrictionTypeLocation, ReasonCode: skus.ReasonNotAvailableForSub, Values: []string{region}}}
		}
		return r
	}
	out, err := json.MarshalIndent([]record{
		rec("Standard_Mixed_v1", "testeast", "True", false),
		rec("Standard_Mixed_v1", "testwest", "False", false),
		rec("Standard_Restricted_v1", "testwest", "True", true),
		rec("Standard_Fresh_v1", "testeast", "False", false),
		rec("Standard_Fresh_v1", "testwest", "False", false),
	}, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(out)
}

// Catalog is SiteCatalogJSON, captured a month before Now, over the embedded catalog: what
// skucatalog.Build makes of --sku-catalog.
func Catalog() skus.Catalog {
	list, err := skucatalog.ParseAzCLI([]byte(SiteCatalogJSON))
	if err != nil {
		panic(err)
	}
	file := skus.NewStatic(list, skus.SourceInfo{Name: "file", Detail: "site-skus.json", AsOf: Now.AddDate(0, -1, 0)})
	return skus.NewLayered(file, skucatalog.Embedded())
}

// Case is one object (for UPDATE: and the stored one) and what the compiled validating policies and
// the webhook make of it, with the region unknown.
type Case struct {
	Name     string
	Settings string // the machine settings (for the AKS kinds: spec), YAML
	// Old makes the request an UPDATE of a stored object with these settings; MetadataOnly makes it
	// an UPDATE whose only change is a label.
	Old          string
	MetadataOnly bool
	Deleting     bool
	Annotations  map[string]string
	DryRun       bool
	// Deny lists the rules that must hit (at the action the policy gives them); every other
	// compiled rule must pass.
	Deny []policy.RuleID
	// Warn lists the rules that must hit at most at warn: old evidence only warns.
	Warn []policy.RuleID
	// Preexisting lists the rules whose findings the stored object already had: ratcheted, they
	// pass, except where the rule's action is audit (policy.Evaluate ratchets only what it enforces).
	Preexisting []policy.RuleID
	// Diverge lists rules where, knowingly, the compiled policy enforces nothing (or what Warn says)
	// and policy.Evaluate enforces the rule's action, capped at the given one (see
	// celpolicy.Result.NotCompiled).
	Diverge map[policy.RuleID]policy.Action
}

// MutationCase is one object that the organisation default may fill.
type MutationCase struct {
	Name        string
	Settings    string
	Annotations map[string]string
	// Injected is what FullPolicy's default fills (policy.Decision.Injected), so that a case means
	// what its name says.
	Injected []string
}

// PlainOS is an OS disk with a managed disk and no Disk Encryption Set.
const PlainOS = "osDisk:\n  osType: Linux\n  managedDisk:\n    storageAccountType: Premium_LRS\n"

// VMOK is a size that supports encryption at host everywhere.
const VMOK = "vmSize: Standard_D4s_v3\n"

// Quoted renders s as a YAML (JSON) string.
func Quoted(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// OSDES is an OS disk with a managed disk and this Disk Encryption Set ID.
func OSDES(id string) string {
	return "osDisk:\n  osType: Linux\n  managedDisk:\n    storageAccountType: Premium_LRS\n    diskEncryptionSet:\n      id: " + Quoted(id) + "\n"
}

// DataDisk is one item of dataDisks (indented for a list under the settings).
func DataDisk(nameSuffix string, lun int, id string) string {
	return "  - nameSuffix: " + Quoted(nameSuffix) + "\n    lun: " + fmt.Sprint(lun) + "\n    diskSizeGB: 64\n    managedDisk:\n      storageAccountType: Premium_LRS\n      diskEncryptionSet:\n        id: " + Quoted(id) + "\n"
}

// Kind says where a CAPZ kind keeps the settings the cases write.
type Kind struct {
	Kind    string
	Machine []string // path of the VM settings; nil for the AKS kinds (spec)
}

// The kinds, as the cases write them.
var (
	AzureMachineTemplate     = Kind{"AzureMachineTemplate", []string{"spec", "template", "spec"}}
	AzureMachine             = Kind{"AzureMachine", []string{"spec"}}
	AzureMachinePool         = Kind{"AzureMachinePool", []string{"spec", "template"}}
	AzureManagedMachinePool  = Kind{Kind: "AzureManagedMachinePool"}
	AzureManagedControlPlane = Kind{Kind: "AzureManagedControlPlane"}
	MachineKinds             = []Kind{AzureMachineTemplate, AzureMachine, AzureMachinePool}
)

// Object builds a CAPZ object of kind k whose machine settings (for the AKS kinds: spec) are the
// YAML settings.
func Object(k Kind, name, namespace, settings string) (map[string]any, error) {
	var s map[string]any
	if err := yaml.Unmarshal([]byte(settings), &s); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if s == nil {
		s = map[string]any{}
	}
	path := k.Machine
	if path == nil {
		path = []string{"spec"}
	}
	var v any = s
	for i := len(path) - 1; i >= 0; i-- {
		v = map[string]any{path[i]: v}
	}
	obj := v.(map[string]any)
	obj["apiVersion"] = policy.Group + "/v1beta1"
	obj["kind"] = k.Kind
	obj["metadata"] = map[string]any{"name": name, "namespace": namespace}
	return obj, nil
}

// The cases.

// Machine are the cases of the machine kinds (AzureMachineTemplate, AzureMachine, AzureMachinePool).
var Machine = []Case{
	{Name: "compliant", Settings: VMOK + OSDES(DESOS)},
	{Name: "keywords in other cases, upper-case GUID", Settings: VMOK + OSDES("/SUBSCRIPTIONS/"+strings.ToUpper(Sub)+"/resourcegroups/keys/PROVIDERS/microsoft.compute/DISKENCRYPTIONSETS/des-os")},
	{Name: "keyword with a Kelvin sign, which EqualFold folds to k", Settings: VMOK + OSDES("/subscriptions/"+Sub+"/resourceGroups/keys/providers/Microsoft.Compute/dis\u212AEncryptionSets/des")},
	{Name: "empty DES ID (Palette preset)", Settings: VMOK + OSDES(""), Deny: []policy.RuleID{policy.RuleDESIDMalformed, policy.RuleDESRequired}},
	{Name: "diskEncryptionSet without id", Settings: VMOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    diskEncryptionSet: {}\n", Deny: []policy.RuleID{policy.RuleDESIDMalformed, policy.RuleDESRequired}},
	{Name: "documentation placeholder", Settings: VMOK + OSDES("/subscriptions/subscriptionId/resourceGroups/resourceGroup/providers/Microsoft.Compute/diskEncryptionSets/diskEncryptionSet"), Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "Key Vault key URL", Settings: VMOK + OSDES("https://kv.vault.azure.net/keys/disk-key/4f8b2c1d9e7a4b3c8d2e1f0a9b8c7d6e"), Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "trailing slash", Settings: VMOK + OSDES(DESOS+"/"), Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "resource group ending in a dot", Settings: VMOK + OSDES("/subscriptions/"+Sub+"/resourceGroups/keys./providers/Microsoft.Compute/diskEncryptionSets/d"), Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "line break in the ID", Settings: VMOK + OSDES(DESOS+"\nx"), Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "malformed confidential OS disk DES", Settings: VMOK + OSDES(DESOS) + "    securityProfile:\n      securityEncryptionType: VMGuestStateOnly\n      diskEncryptionSet:\n        id: des-name-only\n", Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "malformed data disk DES", Settings: VMOK + OSDES(DESOS) + "dataDisks:\n" + DataDisk("a", 0, DESData) + DataDisk("b", 1, "des-name-only"), Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "data disk without managedDisk", Settings: VMOK + OSDES(DESOS) + "dataDisks:\n  - nameSuffix: c\n    diskSizeGB: 64\n", Deny: []policy.RuleID{policy.RuleDESRequired}},
	{Name: "data disk without DES", Settings: VMOK + OSDES(DESOS) + "dataDisks:\n  - nameSuffix: c\n    diskSizeGB: 64\n    managedDisk:\n      storageAccountType: Premium_LRS\n", Deny: []policy.RuleID{policy.RuleDESRequired}},
	{Name: "OS DES in another subscription", Settings: VMOK + OSDES(strings.Replace(DESOS, Sub, OtherSub, 1)), Deny: []policy.RuleID{policy.RuleDESSubscriptionNotAllowed}},
	{Name: "data DES in another subscription", Settings: VMOK + OSDES(DESOS) + "dataDisks:\n" + DataDisk("a", 0, strings.Replace(DESData, Sub, strings.ToUpper(OtherSub), 1)), Deny: []policy.RuleID{policy.RuleDESSubscriptionNotAllowed}},
	{Name: "confidential DES only, in another subscription", Settings: VMOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    securityProfile:\n      securityEncryptionType: VMGuestStateOnly\n      diskEncryptionSet:\n        id: " + strings.Replace(DESOS, Sub, OtherSub, 1) + "\n", Deny: []policy.RuleID{policy.RuleDESSubscriptionNotAllowed}},
	{Name: "confidential DES only", Settings: VMOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    securityProfile:\n      securityEncryptionType: VMGuestStateOnly\n      diskEncryptionSet:\n        id: " + DESOS + "\n"},
	{Name: "ADE extension", Settings: VMOK + OSDES(DESOS) + "vmExtensions:\n  - name: AzureDiskEncryptionForLinux\n    publisher: Microsoft.Azure.Security\n    version: \"1.1\"\n", Deny: []policy.RuleID{policy.RuleADEExtension}},
	{Name: "ADE extension in other cases, Kelvin sign in the name", Settings: VMOK + OSDES(DESOS) + "vmExtensions:\n  - name: CustomScript\n    publisher: Microsoft.Azure.Extensions\n    version: \"2.1\"\n  - name: \"azuredis\u212Aencryption\"\n    publisher: MICROSOFT.AZURE.SECURITY\n    version: \"2.2\"\n", Deny: []policy.RuleID{policy.RuleADEExtension}},
	{Name: "extensions that are not ADE", Settings: VMOK + OSDES(DESOS) + "vmExtensions:\n  - name: CustomScript\n    publisher: Microsoft.Azure.Extensions\n    version: \"2.1\"\n  - name: AzureSecurityLinuxAgent\n    publisher: Microsoft.Azure.Security\n    version: \"2.0\"\n  - name: Not-AzureDiskEncryption\n    publisher: Microsoft.Azure.Security\n    version: \"1.0\"\n"},
	{Name: "no DES anywhere", Settings: VMOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    storageAccountType: Premium_LRS\n", Deny: []policy.RuleID{policy.RuleDESRequired}},
	{Name: "no osDisk", Settings: VMOK, Deny: []policy.RuleID{policy.RuleDESRequired}},
	{Name: "ephemeral OS disk without DES", Settings: VMOK + "osDisk:\n  osType: Linux\n  diffDiskSettings:\n    option: Local\n", Deny: []policy.RuleID{policy.RuleDESRequired}},
	{Name: "EAH on a size without it in any region", Settings: "vmSize: Standard_A0\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n", Deny: []policy.RuleID{policy.RuleEAHSKUUnsupported}},
	{Name: "EAH on such a size, spelt loosely", Settings: "vmSize: \" standard_a0 \"\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n", Deny: []policy.RuleID{policy.RuleEAHSKUUnsupported}},
	{Name: "EAH on another size without it, current evidence", Settings: "vmSize: Standard_Fresh_v1\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n", Deny: []policy.RuleID{policy.RuleEAHSKUUnsupported}},
	{Name: "EAH on a size without it, old evidence only", Settings: "vmSize: Standard_D4a_v4\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n", Warn: []policy.RuleID{policy.RuleEAHSKUUnsupported}},
	// Current evidence says no in southcentralus, the eastus listing of 2020 too: refused with the
	// region unknown, but only a warning in eastus, so the compiled policies warn.
	{Name: "EAH on a size without it, old evidence in one region", Settings: "vmSize: Standard_D2_v2\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n",
		Diverge: map[policy.RuleID]policy.Action{policy.RuleEAHSKUUnsupported: policy.ActionDeny}, Warn: []policy.RuleID{policy.RuleEAHSKUUnsupported}},
	{Name: "EAH on a size with mixed support", Settings: "vmSize: Standard_Mixed_v1\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n",
		Diverge: map[policy.RuleID]policy.Action{policy.RuleEAHSKUUnsupported: policy.ActionWarn}},
	{Name: "EAH on a size restricted for the subscription where it is listed", Settings: "vmSize: Standard_Restricted_v1\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n",
		Diverge: map[policy.RuleID]policy.Action{policy.RuleEAHSKUUnsupported: policy.ActionDeny}},
	{Name: "EAH on a size restricted in the embedded captures only", Settings: "vmSize: Standard_M8-2ms\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n"},
	{Name: "EAH on a size with it everywhere", Settings: VMOK + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n"},
	{Name: "EAH false on a size without it", Settings: "vmSize: Standard_A0\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: false\n"},
	{Name: "EAH on a size the catalog lacks", Settings: "vmSize: Standard_Nope\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n"},
	{Name: "size without EAH, EAH not asked for", Settings: "vmSize: Standard_Fresh_v1\n" + OSDES(DESOS)},
	{Name: "update changes the size under EAH, old size doubtful", Settings: "vmSize: Standard_A0\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n",
		Old: "vmSize: Standard_D4a_v4\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n", Preexisting: []policy.RuleID{policy.RuleEAHSKUUnsupported}},
	{Name: "update asks for EAH on a size without it", Settings: "vmSize: Standard_A0\n" + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: true\n",
		Old: "vmSize: Standard_A0\n" + OSDES(DESOS), Deny: []policy.RuleID{policy.RuleEAHSKUUnsupported}},

	// UPDATE: exemptions and ratcheting.
	{Name: "metadata-only update of a non-compliant object", Settings: VMOK + OSDES("bad") + "vmExtensions:\n  - name: AzureDiskEncryption\n    publisher: Microsoft.Azure.Security\n    version: \"1\"\n", MetadataOnly: true},
	{Name: "unrelated change of an object with a malformed DES", Settings: "vmSize: Standard_D2s_v3\n" + OSDES("bad"), Old: VMOK + OSDES("bad"), Preexisting: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "malformed DES replaced by another malformed one", Settings: VMOK + OSDES("worse"), Old: VMOK + OSDES("bad"), Preexisting: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "update adds a malformed data disk to an object with a malformed OS DES", Settings: VMOK + OSDES("bad") + "dataDisks:\n" + DataDisk("new", 0, "bad"), Old: VMOK + OSDES("bad"),
		Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "data disks reordered, identity by nameSuffix", Settings: VMOK + OSDES(DESOS) + "dataDisks:\n" + DataDisk("b", 1, DESData) + DataDisk("a", 0, "bad"), Old: VMOK + OSDES(DESOS) + "dataDisks:\n" + DataDisk("a", 0, "bad") + DataDisk("b", 1, DESData), Preexisting: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "data disk identified by lun after an insertion", Settings: VMOK + OSDES(DESOS) + "dataDisks:\n" + DataDisk("x", 0, DESData) + DataDisk("", 2, "bad"), Old: VMOK + OSDES(DESOS) + "dataDisks:\n" + DataDisk("", 2, "bad"), Preexisting: []policy.RuleID{policy.RuleDESIDMalformed}},
	{Name: "update adds an ADE extension next to an old one", Settings: VMOK + OSDES(DESOS) + "vmExtensions:\n  - name: AzureDiskEncryption\n    publisher: Microsoft.Azure.Security\n    version: \"1\"\n  - name: AzureDiskEncryptionForLinux\n    publisher: Microsoft.Azure.Security\n    version: \"1\"\n",
		Old: VMOK + OSDES(DESOS) + "vmExtensions:\n  - name: AzureDiskEncryption\n    publisher: Microsoft.Azure.Security\n    version: \"1\"\n", Deny: []policy.RuleID{policy.RuleADEExtension}},
	{Name: "update removes the required DES", Settings: VMOK + "osDisk:\n  osType: Linux\n", Old: VMOK + OSDES(DESOS), Deny: []policy.RuleID{policy.RuleDESRequired}},
	{Name: "update fixes a malformed DES", Settings: VMOK + OSDES(DESOS), Old: VMOK + OSDES("bad")},
	{Name: "update of an object being deleted", Settings: "vmSize: Standard_D2s_v3\n" + OSDES("bad"), Old: VMOK + OSDES(DESOS), Deleting: true},
	{Name: "CAPI topology dry-run", Settings: VMOK + OSDES("bad"), Annotations: map[string]string{policy.AnnotationTopologyDryRun: ""}, DryRun: true},
	{Name: "topology annotation on a real request", Settings: VMOK + OSDES("bad"), Annotations: map[string]string{policy.AnnotationTopologyDryRun: ""}, Deny: []policy.RuleID{policy.RuleDESIDMalformed}},
}

const DESPatch = `{"spec":{"diskEncryptionSetReference":{"armId":"` + DESOS + `"}}}`

// ManagedMachinePool are the cases of AzureManagedMachinePool.
var ManagedMachinePool = []Case{
	{Name: "encryption at host on AKS", Settings: "mode: User\nenableEncryptionAtHost: true\n", Deny: []policy.RuleID{policy.RuleAKSTarget}},
	{Name: "encryption at host off", Settings: "mode: User\nenableEncryptionAtHost: false\n"},
	{Name: "encryption at host unset", Settings: "mode: System\n"},
	{Name: "old pool with it, other change", Settings: "mode: System\nenableEncryptionAtHost: true\n", Old: "mode: User\nenableEncryptionAtHost: true\n", Preexisting: []policy.RuleID{policy.RuleAKSTarget}},
	{Name: "update turns it on", Settings: "mode: User\nenableEncryptionAtHost: true\n", Old: "mode: User\n", Deny: []policy.RuleID{policy.RuleAKSTarget}},
}

// ManagedControlPlane are the cases of AzureManagedControlPlane.
var ManagedControlPlane = []Case{
	{Name: "DES patch", Settings: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(DESPatch) + "\n", Deny: []policy.RuleID{policy.RuleAKSTarget}},
	{Name: "second patch sets it, other spelling and spacing", Settings: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(`{"spec":{"networkProfile":{"podCidr":"10.0.0.0/16"}}}`) + "\n  - " + Quoted(`{ "spec" : { "DiskEncryptionSetID" : "x" } }`) + "\n", Deny: []policy.RuleID{policy.RuleAKSTarget}},
	{Name: "Kelvin sign in the key", Settings: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted("{\"spec\":{\"dis\u212AEncryptionSetReference\":{\"armId\":\"x\"}}}") + "\n", Deny: []policy.RuleID{policy.RuleAKSTarget}},
	{Name: "patch removes it (null)", Settings: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(`{"spec":{"diskEncryptionSetReference":null}}`) + "\n"},
	{Name: "the word in a value", Settings: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(`{"spec":{"tags":{"note":"no diskEncryptionSet here"}}}`) + "\n"},
	{Name: "unrelated patch", Settings: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(`{"spec":{"networkProfile":{"podCidr":"10.0.0.0/16"}}}`) + "\n"},
	{Name: "key written with a JSON escape", Settings: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(`{"spec":{"disk\u0045ncryptionSetReference":{"armId":"x"}}}`) + "\n",
		Diverge: map[policy.RuleID]policy.Action{policy.RuleAKSTarget: policy.ActionDeny}},
	{Name: "not JSON, mentions it", Settings: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(`spec.diskEncryptionSetReference = x`) + "\n",
		Diverge: map[policy.RuleID]policy.Action{policy.RuleAKSTarget: policy.ActionDeny}},
	{Name: "old DES patch kept, another added", Settings: "version: v1.34.0\nasoManagedClusterPatches:\n  - " + Quoted(DESPatch) + "\n  - " + Quoted(`{"spec":{"networkProfile":{"podCidr":"10.0.0.0/16"}}}`) + "\n", Old: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(DESPatch) + "\n", Preexisting: []policy.RuleID{policy.RuleAKSTarget}},
	{Name: "old DES patch rewritten", Settings: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(strings.Replace(DESPatch, "des-os", "des-2", 1)) + "\n", Old: "version: v1.33.0\nasoManagedClusterPatches:\n  - " + Quoted(DESPatch) + "\n", Deny: []policy.RuleID{policy.RuleAKSTarget}},
}

// What the default injects, as the annotation records it.
const (
	injectedOSDES = "osDisk.managedDisk.diskEncryptionSet.id"
	injectedEAH   = "securityProfile.encryptionAtHost"
)

// Mutation are the cases of the organisation default, for the machine kinds.
var Mutation = []MutationCase{
	{Name: "nothing set", Settings: VMOK + PlainOS + "dataDisks:\n  - nameSuffix: a\n    diskSizeGB: 64\n    managedDisk:\n      storageAccountType: Premium_LRS\n  - nameSuffix: b\n    diskSizeGB: 64\n  - nameSuffix: c\n    diskSizeGB: 64\n    managedDisk:\n      diskEncryptionSet:\n        id: \"\"\n  - nameSuffix: d\n    diskSizeGB: 64\n    managedDisk:\n      diskEncryptionSet: {}\n",
		Injected: []string{injectedOSDES, "dataDisks[0].managedDisk.diskEncryptionSet.id", "dataDisks[2].managedDisk.diskEncryptionSet.id", "dataDisks[3].managedDisk.diskEncryptionSet.id", injectedEAH}},
	{Name: "OS disk without managedDisk", Settings: VMOK + "osDisk:\n  osType: Linux\n", Injected: []string{injectedOSDES, injectedEAH}},
	{Name: "empty DES placeholder", Settings: VMOK + OSDES(""), Injected: []string{injectedOSDES, injectedEAH}},
	{Name: "diskEncryptionSet without id", Settings: VMOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    diskEncryptionSet: {}\n", Injected: []string{injectedOSDES, injectedEAH}},
	{Name: "ephemeral OS disk", Settings: VMOK + "osDisk:\n  osType: Linux\n  diffDiskSettings:\n    option: Local\n", Injected: []string{injectedEAH}},
	{Name: "confidential OS disk", Settings: VMOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    securityProfile:\n      securityEncryptionType: VMGuestStateOnly\n", Injected: []string{injectedEAH}},
	{Name: "confidential OS disk with the VM guest state", Settings: VMOK + "osDisk:\n  osType: Linux\n  managedDisk:\n    securityProfile:\n      securityEncryptionType: DiskWithVMGuestState\n"},
	{Name: "securityProfile without encryptionAtHost", Settings: VMOK + OSDES(DESOS) + "securityProfile:\n  securityType: TrustedLaunch\n", Injected: []string{injectedEAH}},
	{Name: "encryptionAtHost false", Settings: VMOK + OSDES(DESOS) + "securityProfile:\n  encryptionAtHost: false\n"},
	{Name: "size without encryption at host", Settings: "vmSize: Standard_A0\n" + PlainOS, Injected: []string{injectedOSDES}},
	{Name: "size with mixed support", Settings: "vmSize: Standard_Mixed_v1\n" + PlainOS, Injected: []string{injectedOSDES}},
	{Name: "size without encryption at host, old evidence", Settings: "vmSize: Standard_D4a_v4\n" + PlainOS, Injected: []string{injectedOSDES}},
	{Name: "size restricted in the embedded captures only", Settings: "vmSize: Standard_M8-2ms\n" + PlainOS, Injected: []string{injectedOSDES, injectedEAH}},
	{Name: "size the catalog lacks", Settings: "vmSize: Standard_Nope\n" + PlainOS, Injected: []string{injectedOSDES}},
	{Name: "size spelt loosely", Settings: "vmSize: \" standard_d4s_v3 \"\n" + OSDES(DESOS), Injected: []string{injectedEAH}},
	{Name: "earlier record merged", Settings: VMOK + PlainOS, Annotations: map[string]string{policy.AnnotationInjected: "zeta,dataDisks[9].managedDisk.diskEncryptionSet.id,osDisk.managedDisk.diskEncryptionSet.id", "other": "x"},
		Injected: []string{injectedOSDES, injectedEAH}},
	{Name: "empty earlier record", Settings: VMOK + PlainOS, Annotations: map[string]string{policy.AnnotationInjected: ""}, Injected: []string{injectedOSDES, injectedEAH}},
	{Name: "other annotations only", Settings: VMOK + PlainOS, Annotations: map[string]string{"other": "x"}, Injected: []string{injectedOSDES, injectedEAH}},
	{Name: "everything set", Settings: VMOK + OSDES(DESOS) + "dataDisks:\n" + DataDisk("a", 0, DESData) + "securityProfile:\n  encryptionAtHost: true\n"},
}
