package policy

import (
	"encoding/json"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

const (
	sub      = testsupport.Subscription
	otherSub = testsupport.OtherSubscription
	desEast  = "/subscriptions/" + sub + "/resourceGroups/keys-eastus/providers/Microsoft.Compute/diskEncryptionSets/des-eastus"
	desWest  = "/subscriptions/" + sub + "/resourceGroups/keys-westus2/providers/Microsoft.Compute/diskEncryptionSets/des-westus2"
	desData  = "/subscriptions/" + sub + "/resourceGroups/keys-eastus/providers/Microsoft.Compute/diskEncryptionSets/des-data"
	desOther = "/subscriptions/" + otherSub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des"
	// The documentation's placeholder, as users paste it.
	desPlaceholder = "/subscriptions/subscriptionId/resourceGroups/resourceGroup/providers/Microsoft.Compute/diskEncryptionSets/diskEncryptionSet"
	keyVaultURL    = "https://kv.vault.azure.net/keys/disk-key/4f8b2c1d9e7a4b3c8d2e1f0a9b8c7d6e"
	diskID         = "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/disks/osdisk"
)

// testCatalog: eastus and westus2. Standard_Mixed supports EAH in eastus only, so with no region
// known its verdict is mixed. Only the DSv3 sizes can attach Premium SSD disks (PremiumIO).
func testCatalog() skus.Catalog {
	eah := func(v string) map[string]string { return map[string]string{skus.CapabilityEncryptionAtHost: v} }
	premium := func(c map[string]string) map[string]string { c[skus.CapabilityPremiumIO] = "True"; return c }
	restricted := []skus.Restriction{{Type: skus.RestrictionTypeZone, ReasonCode: skus.ReasonNotAvailableForSub, Zones: []string{"2"}}}
	return skus.NewStatic([]skus.SKU{
		{Name: "Standard_D4s_v3", Region: "eastus", Family: "standardDSv3Family", Capabilities: premium(eah("True"))},
		{Name: "Standard_D8s_v3", Region: "eastus", Family: "standardDSv3Family", Capabilities: premium(eah("True"))},
		{Name: "Standard_D2_v3", Region: "eastus", Family: "standardDv3Family", Capabilities: eah("False")},
		{Name: "Standard_M8-2ms", Region: "eastus", Family: "standardMSFamily", Capabilities: eah("True"), Restrictions: restricted},
		{Name: "Standard_Mixed", Region: "eastus", Family: "x", Capabilities: eah("True")},
		{Name: "Standard_D4s_v3", Region: "westus2", Family: "standardDSv3Family", Capabilities: premium(eah("True"))},
		{Name: "Standard_D2_v3", Region: "westus2", Family: "standardDv3Family", Capabilities: map[string]string{}},
		{Name: "Standard_M8-2ms", Region: "westus2", Family: "standardMSFamily", Capabilities: eah("True")},
		{Name: "Standard_Mixed", Region: "westus2", Family: "x", Capabilities: eah("False")},
	}, skus.SourceInfo{Name: "test"})
}

// obj is a JSON object under construction; set writes a value at a dotted path, creating maps.
type obj map[string]any

func (o obj) set(path string, v any) obj {
	parts := strings.Split(path, ".")
	cur := map[string]any(o)
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
	return o
}

func (o obj) del(path string) obj {
	parts := strings.Split(path, ".")
	cur := map[string]any(o)
	for _, p := range parts[:len(parts)-1] {
		cur, _ = cur[p].(map[string]any)
		if cur == nil {
			return o
		}
	}
	delete(cur, parts[len(parts)-1])
	return o
}

func (o obj) json(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// template returns an AzureMachineTemplate in namespace default with a managed OS disk and no
// encryption settings. Paths below are relative to spec.template.spec via tpl().
func template() obj {
	return obj{
		"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
		"kind":       "AzureMachineTemplate",
		"metadata":   map[string]any{"name": "md-0", "namespace": "default"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
			"vmSize": "Standard_D4s_v3",
			"osDisk": map[string]any{"osType": "Linux", "diskSizeGB": 128, "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}},
		}}},
	}
}

func tpl(p string) string { return "spec.template.spec." + p }

func dataDisk(des any) map[string]any {
	md := map[string]any{"storageAccountType": "Premium_LRS"}
	if des != nil {
		md["diskEncryptionSet"] = map[string]any{"id": des}
	}
	return map[string]any{"nameSuffix": "data", "diskSizeGB": 64, "managedDisk": md}
}

func eastEnv() Environment {
	return Environment{Catalog: testCatalog(), Locations: []LocationCandidate{{Location: "eastus", Source: "cluster", Cluster: true}}}
}

func create(t testing.TB, p *Policy, o obj, env Environment) *Decision {
	t.Helper()
	d, err := Evaluate(p, Request{Operation: OperationCreate, Object: o.json(t)}, env)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	return d
}

func applyPatch(t testing.TB, raw []byte, d *Decision) []byte {
	t.Helper()
	if len(d.Patch) == 0 {
		return raw
	}
	pb, err := json.Marshal(d.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(pb)
	if err != nil {
		t.Fatalf("decode patch %s: %v", pb, err)
	}
	out, err := patch.Apply(raw)
	if err != nil {
		t.Fatalf("apply patch %s: %v", pb, err)
	}
	return out
}

func findingsOf(d *Decision, rule RuleID) []Finding {
	var out []Finding
	for _, f := range d.Findings {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

func mustPolicy(t testing.TB, yaml string) *Policy {
	t.Helper()
	p, err := Parse("test-policy.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

const policyHeader = "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\n"
