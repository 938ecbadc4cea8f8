package policy

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
)

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       string // substring of the error, which starts with file:line
	}{
		{"empty", "", "test-policy.yaml: the file is empty"},
		{"unknown top-level key", policyHeader + "dryrun: true\n", `test-policy.yaml:3: unknown key "dryrun"`},
		{"unknown key in a default", policyHeader + "defaults:\n- name: a\n  encryptionAtHost: true\n  desID: x\n", `test-policy.yaml:6: unknown key "desID"`},
		{"wrong apiVersion", "apiVersion: v1\nkind: EncryptionPolicy\n", `apiVersion is "v1"`},
		{"wrong kind", "apiVersion: " + APIVersion + "\nkind: Policy\n", `kind is "Policy"`},
		{"unknown rule", policyHeader + "rules:\n  des-id-malformd: deny\n", `test-policy.yaml:4: rules: unknown rule "des-id-malformd"`},
		{"bad action", policyHeader + "rules:\n  sku-unknown: block\n", `test-policy.yaml:4: rules.sku-unknown: action "block"`},
		{"bad DES in a default", policyHeader + "defaults:\n- name: a\n  diskEncryptionSetID: /subscriptions/subscriptionId/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d\n", "test-policy.yaml:5: defaults[0].diskEncryptionSetID:"},
		{"default sets nothing", policyHeader + "defaults:\n- name: a\n  regions: [eastus]\n", "sets nothing"},
		{"duplicate default name", policyHeader + "defaults:\n- {name: a, encryptionAtHost: true}\n- {name: a, encryptionAtHost: true}\n", "used twice"},
		{"bad selector", policyHeader + "defaults:\n- name: a\n  encryptionAtHost: true\n  namespaceSelector: {matchExpressions: [{key: env, operator: Maybe}]}\n", "namespaceSelector"},
		{"bad subscription", policyHeader + "allowedDESSubscriptions: [my-sub]\n", "not a subscription GUID"},
		{"wrong type", policyHeader + "warnOnly: sometimes\n", "test-policy.yaml:3:"},
		{"two documents", policyHeader + "---\n" + policyHeader, "exactly one YAML document"},
		{"syntax error", policyHeader + "rules: [\n", "test-policy.yaml:"},
		{"palette: empty preset", "cloud:\n  azure:\n    diskEncryptionSetID: \"\"\n", `test-policy.yaml:3: cloud.azure.diskEncryptionSetID is empty`},
		{"palette: placeholder", "cloud:\n  azure:\n    diskEncryptionSetID: /subscriptions/subscriptionId/resourceGroups/resourceGroup/providers/Microsoft.Compute/diskEncryptionSets/diskEncryptionSet\n", "test-policy.yaml:3: cloud.azure.diskEncryptionSetID:"},
		{"palette: unknown key", "cloud:\n  azure:\n    encryptionAtHost: true\n    diskEncryptionSetId: x\n", `test-policy.yaml:4: cloud.azure.diskEncryptionSetId: unknown key`},
		{"palette: bad bool", "cloud:\n  azure:\n    encryptionAtHost: maybe\n", "test-policy.yaml:3: cloud.azure.encryptionAtHost"},
		{"palette: no azure", "cloud:\n  aws: {}\n", "cloud.azure is missing"},
		{"data disk storage type misspelt", storageDefault("premium_lrs"), `test-policy.yaml:6: defaults[0].dataDiskStorageAccountType: "premium_lrs": Azure spells it "Premium_LRS"`},
		{"data disk storage type unknown", storageDefault("Premium_SSD"), `"Premium_SSD" is not an Azure managed-disk storage type (one of Premium_LRS,`},
		{"data disk storage type Ultra", storageDefault("UltraSSD_LRS"), "UltraSSD_LRS cannot be a default: an Ultra disk also needs cachingType None"},
		{"data disk storage type PremiumV2", storageDefault("PremiumV2_LRS"), "PremiumV2_LRS cannot be a default"},
		{"data disk storage type without a DES", policyHeader + "defaults:\n- name: a\n  encryptionAtHost: true\n  dataDiskStorageAccountType: Premium_LRS\n", "dataDiskStorageAccountType is set but the default has no Disk Encryption Set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test-policy.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func storageDefault(storage string) string {
	return policyHeader + "defaults:\n- name: a\n  diskEncryptionSetID: " + desEast + "\n  dataDiskStorageAccountType: " + storage + "\n"
}

// The storage types a default accepts, and those it refuses for needing more than a type, are
// exactly Azure's managed-disk storage types as the compute SDK lists them.
func TestDataDiskStorageTypesAreAzures(t *testing.T) {
	got := append(slices.Clone(DataDiskStorageTypes), slices.Collect(maps.Keys(needMoreThanAType))...)
	var want []string
	for _, v := range armcompute.PossibleStorageAccountTypesValues() {
		want = append(want, string(v))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("storage types %v, the Azure SDK has %v", got, want)
	}
	d := mustPolicy(t, storageDefault("StandardSSD_ZRS")).Defaults[0]
	if d.DataDiskStorageAccountType != "StandardSSD_ZRS" {
		t.Errorf("parsed %q", d.DataDiskStorageAccountType)
	}
}

func TestParseFull(t *testing.T) {
	p := mustPolicy(t, policyHeader+`warnOnly: true
defaultLocation: East US
requireCustomerManagedKeys: true
allowedDESSubscriptions: [`+strings.ToUpper(sub)+`]
rules:
  sku-unknown: warn
  des-key-rotation: deny
defaults:
- name: east
  regions: [EastUS]
  namespaceSelector: {matchLabels: {env: prod}}
  diskEncryptionSetID: /SUBSCRIPTIONS/`+strings.ToUpper(sub)+`/resourcegroups/keys/providers/microsoft.compute/diskencryptionsets/des
  dataDiskEncryptionSetID: `+desData+`
  encryptionAtHost: true
`)
	if !p.WarnOnly || p.DefaultLocation != "eastus" || !p.RequireCustomerManagedKeys || p.AllowedDESSubscriptions[0] != sub {
		t.Errorf("scalars: %+v", p)
	}
	if p.ActionFor(RuleSKUUnknown) != ActionWarn || p.ActionFor(RuleDESKeyRotation) != ActionDeny || p.ActionFor(RuleADEExtension) != ActionDeny {
		t.Errorf("actions: %v", p.Actions)
	}
	d := p.Defaults[0]
	if d.Regions[0] != "eastus" || !d.EncryptionAtHost || d.DataDiskEncryptionSetID != desData {
		t.Errorf("default: %+v", d)
	}
	// Default IDs are canonicalised, so the injected value is the form Azure prints.
	if want := "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des"; d.DiskEncryptionSetID != want {
		t.Errorf("DES = %q, want %q", d.DiskEncryptionSetID, want)
	}
	if _, ok := p.DefaultFor("eastus", map[string]string{"env": "dev"}); ok {
		t.Error("selector must not match env=dev")
	}
	if _, ok := p.DefaultFor("eastus", map[string]string{"env": "prod"}); !ok {
		t.Error("selector must match env=prod")
	}
}

func TestParsePaletteValues(t *testing.T) {
	data, err := os.ReadFile("../../docs/examples/palette-pack-values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse("pack-values.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Defaults) != 1 || !p.Defaults[0].EncryptionAtHost || !strings.HasSuffix(p.Defaults[0].DiskEncryptionSetID, "/des-all-regions") {
		t.Fatalf("defaults = %+v", p.Defaults)
	}
	if d, ok := p.DefaultFor("", map[string]string{"any": "ns"}); !ok || d.Name != "palette-pack-values" {
		t.Fatalf("pack values must apply to every region and namespace, got %+v %v", d, ok)
	}
	for _, r := range Rules() {
		if p.ActionFor(r) != builtinActions[r] {
			t.Errorf("rule %s: %s, want built-in %s", r, p.ActionFor(r), builtinActions[r])
		}
	}
	eahOnly, err := Parse("v.yaml", []byte("cloud:\n  azure:\n    encryptionAtHost: true\n"))
	if err != nil || len(eahOnly.Defaults) != 1 || eahOnly.Defaults[0].DiskEncryptionSetID != "" {
		t.Fatalf("EAH-only pack values: %+v %v", eahOnly, err)
	}
}

func TestSamplePolicyParses(t *testing.T) {
	data, err := os.ReadFile("../../config/samples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("policy.yaml", data); err != nil {
		t.Fatal(err)
	}
}

func TestBuiltinPolicy(t *testing.T) {
	p := DefaultPolicy()
	if len(p.Defaults) != 0 || p.WarnOnly || p.RequireCustomerManagedKeys {
		t.Fatalf("built-in policy must inject nothing and enforce: %+v", p)
	}
	for _, r := range []RuleID{RuleDESIDMalformed, RuleEAHSKUUnsupported, RuleSKUUnknown, RuleAKSTarget, RuleADEExtension, RuleDESRequired, RuleDESLocationMismatch, RuleDESSubscriptionNotAllowed} {
		if p.ActionFor(r) != ActionDeny {
			t.Errorf("built-in action of %s is %s, want deny", r, p.ActionFor(r))
		}
	}
}

func TestDeprecatedDryRunKey(t *testing.T) {
	p := mustPolicy(t, policyHeader+"dryRun: true\n")
	if !p.WarnOnly || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "dryRun is deprecated: use warnOnly") {
		t.Fatalf("dryRun: true → warnOnly %v, warnings %v", p.WarnOnly, p.Warnings)
	}
	if p := mustPolicy(t, policyHeader+"warnOnly: true\n"); len(p.Warnings) != 0 {
		t.Errorf("warnOnly alone warns: %v", p.Warnings)
	}
	if _, err := Parse("p.yaml", []byte(policyHeader+"warnOnly: true\ndryRun: false\n")); err == nil || !strings.Contains(err.Error(), "contradict") {
		t.Errorf("warnOnly: true with dryRun: false must be refused, got %v", err)
	}
}
