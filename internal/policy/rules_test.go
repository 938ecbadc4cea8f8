package policy

import (
	"strings"
	"testing"
)

type ruleCase struct {
	name   string
	object obj
	env    Environment
	policy *Policy
	// wantRule/wantField/wantAction describe the finding expected; wantRule "" means no finding of
	// the rule under test.
	wantRule    RuleID
	wantField   string
	wantAction  Action
	wantMessage []string // substrings of the message
	wantAllowed bool
}

func runRuleCases(t *testing.T, rule RuleID, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.policy
			if p == nil {
				p = DefaultPolicy()
			}
			env := tc.env
			if env.Catalog == nil {
				env = eastEnv()
			}
			d := create(t, p, tc.object, env)
			got := findingsOf(d, rule)
			if tc.wantRule == "" {
				if len(got) != 0 {
					t.Fatalf("want no %s finding, got %+v", rule, got)
				}
			} else {
				if len(got) != 1 {
					t.Fatalf("want one %s finding, got %+v (all: %+v)", rule, got, d.Findings)
				}
				f := got[0]
				if f.Field != tc.wantField {
					t.Errorf("field = %q, want %q", f.Field, tc.wantField)
				}
				if f.Action != tc.wantAction {
					t.Errorf("action = %q, want %q", f.Action, tc.wantAction)
				}
				for _, s := range tc.wantMessage {
					if !strings.Contains(f.Message, s) {
						t.Errorf("message %q does not contain %q", f.Message, s)
					}
				}
			}
			if d.Allowed != tc.wantAllowed {
				t.Errorf("allowed = %v, want %v; findings: %+v", d.Allowed, tc.wantAllowed, d.Findings)
			}
		})
	}
}

func TestRuleDESIDMalformed(t *testing.T) {
	osDES := tpl("osDisk.managedDisk.diskEncryptionSet.id")
	cvmDES := tpl("osDisk.managedDisk.securityProfile.diskEncryptionSet.id")
	cvm := func(id any) obj {
		return template().set(tpl("osDisk.managedDisk.securityProfile"), map[string]any{
			"securityEncryptionType": "DiskWithVMGuestState", "diskEncryptionSet": map[string]any{"id": id},
		})
	}
	runRuleCases(t, RuleDESIDMalformed, []ruleCase{
		{name: "valid OS disk DES", object: template().set(osDES, desEast), wantAllowed: true},
		{name: "docs placeholder on OS disk", object: template().set(osDES, desPlaceholder),
			wantRule: RuleDESIDMalformed, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"OS disk", "subscription"}},
		{name: "empty placeholder with no default", object: template().set(osDES, ""),
			wantRule: RuleDESIDMalformed, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"empty"}},
		{name: "diskEncryptionSet without id", object: template().set(tpl("osDisk.managedDisk.diskEncryptionSet"), map[string]any{}),
			wantRule: RuleDESIDMalformed, wantField: osDES, wantAction: ActionDeny},
		{name: "key vault key URL", object: template().set(osDES, keyVaultURL),
			wantRule: RuleDESIDMalformed, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"Key Vault"}},
		{name: "disk ID", object: template().set(osDES, diskID),
			wantRule: RuleDESIDMalformed, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"disks"}},
		{name: "not a string", object: template().set(osDES, 42),
			wantRule: RuleDESIDMalformed, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"must be a string"}},
		{name: "valid confidential DES", object: cvm(desEast), wantAllowed: true},
		{name: "malformed confidential DES", object: cvm(desEast + "/"),
			wantRule: RuleDESIDMalformed, wantField: cvmDES, wantAction: ActionDeny, wantMessage: []string{"confidential"}},
		{name: "valid data disks", object: template().set(tpl("dataDisks"), []any{dataDisk(desEast), dataDisk(desData)}), wantAllowed: true},
		{name: "second data disk malformed", object: template().set(tpl("dataDisks"), []any{dataDisk(desEast), dataDisk(keyVaultURL)}),
			wantRule: RuleDESIDMalformed, wantField: tpl("dataDisks[1].managedDisk.diskEncryptionSet.id"), wantAction: ActionDeny, wantMessage: []string{"data disk 1"}},
		{name: "action warn", object: template().set(osDES, desPlaceholder),
			policy:   mustPolicy(t, policyHeader+"rules:\n  des-id-malformed: warn\n"),
			wantRule: RuleDESIDMalformed, wantField: osDES, wantAction: ActionWarn, wantAllowed: true},
		{name: "action audit", object: template().set(osDES, desPlaceholder),
			policy:   mustPolicy(t, policyHeader+"rules:\n  des-id-malformed: audit\n"),
			wantRule: RuleDESIDMalformed, wantField: osDES, wantAction: ActionAudit, wantAllowed: true},
	})
}

func TestRuleEAHSKUUnsupported(t *testing.T) {
	eah := tpl("securityProfile.encryptionAtHost")
	sized := func(size string) obj { return template().set(tpl("vmSize"), size).set(eah, true) }
	noRegion := Environment{Catalog: testCatalog()}
	west := Environment{Catalog: testCatalog(), Locations: []LocationCandidate{{Location: "westus2", Source: "cluster", Cluster: true}}}
	runRuleCases(t, RuleEAHSKUUnsupported, []ruleCase{
		{name: "supported size", object: sized("Standard_D4s_v3"), wantAllowed: true},
		{name: "size without the capability", object: sized("Standard_D2_v3"),
			wantRule: RuleEAHSKUUnsupported, wantField: eah, wantAction: ActionDeny,
			wantMessage: []string{"Standard_D2_v3", "eastus", "EncryptionAtHostSupported", "Standard_D4s_v3"}},
		{name: "capability missing entirely", object: sized("Standard_D2_v3"), env: west,
			wantRule: RuleEAHSKUUnsupported, wantField: eah, wantAction: ActionDeny},
		{name: "EAH false is fine on any size", object: sized("Standard_D2_v3").set(eah, false), wantAllowed: true},
		{name: "restricted for the subscription in eastus", object: sized("Standard_M8-2ms"),
			wantRule: RuleEAHSKUUnsupported, wantField: eah, wantAction: ActionDeny, wantMessage: []string{"NotAvailableForSubscription", "zones 2"}},
		{name: "same size unrestricted in westus2", object: sized("Standard_M8-2ms"), env: west, wantAllowed: true},
		{name: "case-insensitive size", object: sized("standard_d2_V3"),
			wantRule: RuleEAHSKUUnsupported, wantField: eah, wantAction: ActionDeny},
		{name: "no region, supported everywhere", object: sized("Standard_D4s_v3"), env: noRegion, wantAllowed: true},
		{name: "no region, supported nowhere", object: sized("Standard_D2_v3"), env: noRegion,
			wantRule: RuleEAHSKUUnsupported, wantField: eah, wantAction: ActionDeny, wantMessage: []string{"none of the catalog regions", "eastus (test)", "westus2 (test)", "region is unknown"}},
		{name: "no region, mixed support warns", object: sized("Standard_Mixed"), env: noRegion,
			wantRule: RuleEAHSKUUnsupported, wantField: eah, wantAction: ActionWarn, wantAllowed: true,
			wantMessage: []string{"only in eastus", "westus2"}},
	})
}

// TestRuleSKUUnknown: sku-unknown judges the size only when the decision needs its capabilities
// (encryption at host asked for or injected), and denies only when a complete, current listing of
// the region lacks it. Without EAH, a size that does not exist is CAPZ's to report.
func TestRuleSKUUnknown(t *testing.T) {
	size := tpl("vmSize")
	eah := func(o obj) obj { return o.set(tpl("securityProfile.encryptionAtHost"), true) }
	runRuleCases(t, RuleSKUUnknown, []ruleCase{
		{name: "known size", object: eah(template()), wantAllowed: true},
		{name: "size not offered in region, EAH asked for", object: eah(template().set(size, "Standard_Nope_v9")),
			wantRule: RuleSKUUnknown, wantField: size, wantAction: ActionDeny, wantMessage: []string{"Standard_Nope_v9", "not offered in region \"eastus\"", "check the spelling"}},
		{name: "size offered elsewhere only", object: eah(template().set(size, "Standard_D4s_v3")), env: ageEnv("centralus"),
			wantRule: RuleSKUUnknown, wantField: size, wantAction: ActionDeny, wantMessage: []string{"not offered in region \"centralus\"", "it is offered in eastus"}},
		{name: "size not offered, nothing needs it", object: template().set(size, "Standard_Nope_v9"), wantAllowed: true},
		{name: "empty size, EAH asked for", object: eah(template().set(size, "")),
			wantRule: RuleSKUUnknown, wantField: size, wantAction: ActionDeny, wantMessage: []string{"vmSize is empty"}},
		{name: "empty size, nothing needs it", object: template().set(size, ""), wantAllowed: true},
		{name: "not a string", object: template().set(size, 4),
			wantRule: RuleSKUUnknown, wantField: size, wantAction: ActionDeny, wantMessage: []string{"must be a string"}},
		{name: "no region and unknown everywhere only warns", object: eah(template().set(size, "Standard_Nope_v9")), env: Environment{Catalog: testCatalog()},
			wantRule: RuleSKUUnknown, wantField: size, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"no region of the VM-size catalog", "test catalog of eastus, westus2"}},
		{name: "policy says warn", object: eah(template().set(size, "Standard_Nope_v9")),
			policy:   mustPolicy(t, policyHeader+"rules:\n  sku-unknown: warn\n"),
			wantRule: RuleSKUUnknown, wantField: size, wantAction: ActionWarn, wantAllowed: true},
	})
}

func TestRuleADEExtension(t *testing.T) {
	ext := func(publisher, name string) obj {
		return template().set(tpl("vmExtensions"), []any{
			map[string]any{"name": "CustomScript", "publisher": "Microsoft.Azure.Extensions", "version": "2.1"},
			map[string]any{"name": name, "publisher": publisher, "version": "1.4"},
		})
	}
	runRuleCases(t, RuleADEExtension, []ruleCase{
		{name: "other extensions", object: ext("Microsoft.Azure.Monitor", "AzureMonitorLinuxAgent"), wantAllowed: true},
		{name: "ADE for Linux", object: ext("Microsoft.Azure.Security", "AzureDiskEncryptionForLinux"),
			wantRule: RuleADEExtension, wantField: tpl("vmExtensions[1]"), wantAction: ActionDeny, wantMessage: []string{"Azure Disk Encryption", "Disk Encryption Set"}},
		{name: "ADE for Windows, odd casing", object: ext("microsoft.azure.security", "azurediskencryption"),
			wantRule: RuleADEExtension, wantField: tpl("vmExtensions[1]"), wantAction: ActionDeny},
		{name: "same name, other publisher", object: ext("Contoso", "AzureDiskEncryption"), wantAllowed: true},
	})
}

func TestRuleAKSTarget(t *testing.T) {
	ammp := func(eah any) obj {
		o := obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureManagedMachinePool",
			"metadata": map[string]any{"name": "pool0", "namespace": "default"}, "spec": map[string]any{"mode": "System", "sku": "Standard_D4s_v3"}}
		if eah != nil {
			o.set("spec.enableEncryptionAtHost", eah)
		}
		return o
	}
	amcp := func(patches ...any) obj {
		return obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureManagedControlPlane",
			"metadata": map[string]any{"name": "cp", "namespace": "default"},
			"spec":     map[string]any{"location": "eastus", "version": "v1.33.2", "asoManagedClusterPatches": patches}}
	}
	aks := eastEnv()
	aks.Cluster = ClusterInfo{Name: "aks1", Found: true, AKS: true, InfrastructureKind: "AzureManagedCluster", ControlPlaneKind: "AzureManagedControlPlane"}
	runRuleCases(t, RuleAKSTarget, []ruleCase{
		{name: "AKS pool without EAH", object: ammp(nil), wantAllowed: true},
		{name: "AKS pool EAH false", object: ammp(false), wantAllowed: true},
		{name: "AKS pool EAH true", object: ammp(true),
			wantRule: RuleAKSTarget, wantField: "spec.enableEncryptionAtHost", wantAction: ActionDeny, wantMessage: []string{"AKS"}},
		{name: "AKS control plane, unrelated patch", object: amcp(`{"spec":{"sku":{"tier":"Standard"}}}`), wantAllowed: true},
		{name: "AKS control plane, DES patch", object: amcp(`{"spec":{"sku":{"tier":"Standard"}}}`, `{"spec":{"diskEncryptionSetReference":{"armId":"`+desEast+`"}}}`),
			wantRule: RuleAKSTarget, wantField: "spec.asoManagedClusterPatches[1]", wantAction: ActionDeny, wantMessage: []string{"diskEncryptionSetReference"}},
		{name: "AKS control plane, DES patch that is not JSON", object: amcp(`{spec: diskEncryptionSetReference`),
			wantRule: RuleAKSTarget, wantField: "spec.asoManagedClusterPatches[0]", wantAction: ActionDeny},
		{name: "AKS pool, patch setting EAH", object: ammp(nil).set("spec.asoManagedClustersAgentPoolPatches", []any{`{"spec":{"enableEncryptionAtHost":true}}`}),
			wantRule: RuleAKSTarget, wantField: "spec.asoManagedClustersAgentPoolPatches[0]", wantAction: ActionDeny, wantMessage: []string{"ManagedClustersAgentPool"}},
		{name: "AKS pool, patch setting EAH false", object: ammp(nil).set("spec.asoManagedClustersAgentPoolPatches", []any{`{"spec":{"enableEncryptionAtHost":false}}`}), wantAllowed: true},
		{name: "AKS pool, patch that is not JSON", object: ammp(nil).set("spec.asoManagedClustersAgentPoolPatches", []any{`{spec: {enableEncryptionAtHost: true}}`}),
			wantRule: RuleAKSTarget, wantField: "spec.asoManagedClustersAgentPoolPatches[0]", wantAction: ActionDeny},
		{name: "AKS control plane, patch enabling EAH on agent pool profiles", object: amcp(`{"spec":{"agentPoolProfiles":[{"name":"p","enableEncryptionAtHost":true}]}}`),
			wantRule: RuleAKSTarget, wantField: "spec.asoManagedClusterPatches[0]", wantAction: ActionDeny, wantMessage: []string{"agentPoolProfiles"}},
		{name: "ASO control plane without encryption", object: obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1", "kind": "AzureASOManagedControlPlane",
			"metadata": map[string]any{"name": "cp", "namespace": "default"}, "spec": map[string]any{"resources": []any{
				map[string]any{"kind": "ManagedCluster", "spec": map[string]any{"agentPoolProfiles": []any{map[string]any{"name": "p", "enableEncryptionAtHost": false}}}}}}}, wantAllowed: true},
		{name: "ASO pool template with EAH", object: obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureASOManagedMachinePoolTemplate",
			"metadata": map[string]any{"name": "p", "namespace": "default"}, "spec": map[string]any{"template": map[string]any{"spec": map[string]any{"resources": []any{
				map[string]any{"kind": "ManagedClustersAgentPool", "spec": map[string]any{"enableEncryptionAtHost": true}}}}}}},
			wantRule: RuleAKSTarget, wantField: "spec.template.spec.resources[0].spec.enableEncryptionAtHost", wantAction: ActionDeny},
		{name: "template of an AKS cluster without encryption", object: template(), env: aks, wantAllowed: true},
		{name: "template of an AKS cluster with a DES", object: template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast), env: aks,
			wantRule: RuleAKSTarget, wantField: tpl("osDisk.managedDisk.diskEncryptionSet.id"), wantAction: ActionDeny,
			wantMessage: []string{`"aks1"`, "AzureManagedCluster"}},
		{name: "template of an AKS cluster with EAH", object: template().set(tpl("securityProfile.encryptionAtHost"), true), env: aks,
			wantRule: RuleAKSTarget, wantField: tpl("securityProfile.encryptionAtHost"), wantAction: ActionDeny},
	})
}

func TestRuleDESRequired(t *testing.T) {
	require := mustPolicy(t, policyHeader+"requireCustomerManagedKeys: true\n")
	requireWithDefault := mustPolicy(t, policyHeader+"requireCustomerManagedKeys: true\ndefaults:\n- name: all\n  diskEncryptionSetID: "+desEast+"\n")
	osDES := tpl("osDisk.managedDisk.diskEncryptionSet.id")
	runRuleCases(t, RuleDESRequired, []ruleCase{
		{name: "not required", object: template(), wantAllowed: true},
		{name: "required, missing on OS disk", object: template(), policy: require,
			wantRule: RuleDESRequired, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"customer-managed keys"}},
		{name: "required, set by user", object: template().set(osDES, desEast), policy: require, wantAllowed: true},
		{name: "required, filled by the default", object: template().set(tpl("dataDisks"), []any{dataDisk(nil)}), policy: requireWithDefault, wantAllowed: true},
		{name: "required, confidential slot counts", object: template().set(tpl("osDisk.managedDisk.securityProfile"), map[string]any{
			"securityEncryptionType": "DiskWithVMGuestState", "diskEncryptionSet": map[string]any{"id": desEast}}), policy: require, wantAllowed: true},
		{name: "required, data disk missing", object: template().set(osDES, desEast).set(tpl("dataDisks"), []any{dataDisk(desEast), dataDisk(nil)}), policy: require,
			wantRule: RuleDESRequired, wantField: tpl("dataDisks[1].managedDisk.diskEncryptionSet.id"), wantAction: ActionDeny},
		{name: "required, ephemeral OS disk", object: template().set(tpl("osDisk.diffDiskSettings"), map[string]any{"option": "Local"}), policy: require,
			wantRule: RuleDESRequired, wantField: tpl("osDisk.diffDiskSettings"), wantAction: ActionDeny, wantMessage: []string{"ephemeral"}},
		// A ClusterClass's template makes no machine: its per-cluster copies are judged.
		{name: "required, template of a ClusterClass", object: template(), policy: require, env: classEnv("quick-start"),
			wantRule: RuleDESRequired, wantField: osDES, wantAction: ActionAudit, wantMessage: []string{"ClusterClass quick-start", "copies"}, wantAllowed: true},
		{name: "required, template of a ClusterClass and of a cluster", object: template(), policy: require,
			env:      func() Environment { e := classEnv("quick-start"); e.Cluster.Name = "c1"; return e }(),
			wantRule: RuleDESRequired, wantField: osDES, wantAction: ActionDeny},
	})
}

func classEnv(class string) Environment {
	e := eastEnv()
	e.Cluster.Class = class
	return e
}

func TestRuleDESSubscriptionNotAllowed(t *testing.T) {
	p := mustPolicy(t, policyHeader+"allowedDESSubscriptions: ["+strings.ToUpper(sub)+"]\n")
	osDES := tpl("osDisk.managedDisk.diskEncryptionSet.id")
	runRuleCases(t, RuleDESSubscriptionNotAllowed, []ruleCase{
		{name: "allowed subscription (case-insensitive)", object: template().set(osDES, desEast), policy: p, wantAllowed: true},
		{name: "no list means any", object: template().set(osDES, desOther), wantAllowed: true},
		{name: "other subscription", object: template().set(osDES, desOther), policy: p,
			wantRule: RuleDESSubscriptionNotAllowed, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{otherSub}},
	})
}

// fakeDES is a DESCatalog over a fixed map, as the live cache would be.
type fakeDES map[string]DESInfo

func (f fakeDES) LookupDES(id string) (DESInfo, DESState) {
	for k, v := range f {
		if strings.EqualFold(k, id) {
			return v, DESFound
		}
	}
	if strings.Contains(strings.ToLower(id), "missing") {
		return DESInfo{}, DESNotFound
	}
	return DESInfo{}, DESUnknown
}

func TestRulesFromLiveDES(t *testing.T) {
	missing := "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/missing"
	cvmSet := "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/cvm"
	env := eastEnv()
	env.DES = fakeDES{
		desEast: {Location: "eastus", EncryptionType: "EncryptionAtRestWithCustomerKey", RotationToLatestKeyVersion: true},
		desWest: {Location: "West US 2", EncryptionType: "EncryptionAtRestWithCustomerKey", RotationToLatestKeyVersion: true},
		desData: {Location: "eastus", EncryptionType: "EncryptionAtRestWithCustomerKey", RotationToLatestKeyVersion: false},
		cvmSet:  {Location: "eastus", EncryptionType: "ConfidentialVmEncryptedWithCustomerKey", RotationToLatestKeyVersion: true},
	}
	osDES := tpl("osDisk.managedDisk.diskEncryptionSet.id")
	t.Run("location mismatch", func(t *testing.T) {
		runRuleCases(t, RuleDESLocationMismatch, []ruleCase{
			{name: "same region", object: template().set(osDES, desEast), env: env, wantAllowed: true},
			{name: "other region", object: template().set(osDES, desWest), env: env,
				wantRule: RuleDESLocationMismatch, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"westus2", "eastus", "cluster"}},
			{name: "unknown DES is not judged", object: template().set(osDES, desOther), env: env, wantAllowed: true},
		})
	})
	t.Run("not found", func(t *testing.T) {
		runRuleCases(t, RuleDESNotFound, []ruleCase{
			{name: "missing set", object: template().set(osDES, missing), env: env,
				wantRule: RuleDESNotFound, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"does not exist"}},
			{name: "missing set, policy audits", object: template().set(osDES, missing), env: env,
				policy:   mustPolicy(t, policyHeader+"rules:\n  des-not-found: audit\n"),
				wantRule: RuleDESNotFound, wantField: osDES, wantAction: ActionAudit, wantAllowed: true},
		})
	})
	t.Run("key rotation", func(t *testing.T) {
		runRuleCases(t, RuleDESKeyRotation, []ruleCase{
			{name: "rotation off warns", object: template().set(osDES, desData), env: env,
				wantRule: RuleDESKeyRotation, wantField: osDES, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"expires", "auto key rotation"}},
			{name: "rotation error warns", object: template().set(osDES, desEast), env: func() Environment {
				e := env
				e.DES = fakeDES{desEast: {Location: "eastus", RotationToLatestKeyVersion: true, AutoKeyRotationError: "Forbidden: key vault access"}}
				return e
			}(), wantRule: RuleDESKeyRotation, wantField: osDES, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"Forbidden"}},
		})
	})
	t.Run("encryption type", func(t *testing.T) {
		cvmField := tpl("osDisk.managedDisk.securityProfile.diskEncryptionSet.id")
		cvm := func(id string) obj {
			return template().set(tpl("osDisk.managedDisk.securityProfile"), map[string]any{
				"securityEncryptionType": "DiskWithVMGuestState", "diskEncryptionSet": map[string]any{"id": id}})
		}
		runRuleCases(t, RuleDESEncryptionType, []ruleCase{
			{name: "confidential set on confidential disk", object: cvm(cvmSet), env: env, wantAllowed: true},
			{name: "regular set on confidential disk", object: cvm(desEast), env: env,
				wantRule: RuleDESEncryptionType, wantField: cvmField, wantAction: ActionDeny, wantMessage: []string{"ConfidentialVmEncryptedWithCustomerKey"}},
			{name: "confidential set on a regular disk", object: template().set(osDES, cvmSet), env: env,
				wantRule: RuleDESEncryptionType, wantField: osDES, wantAction: ActionDeny},
		})
	})
}
