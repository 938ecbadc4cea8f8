package policy

import (
	"strings"
	"testing"
)

// TestKindTable: every entry is complete and Handles agrees with it; the chart's side is held
// against the same table by test/chart/kindtable, and the paths against CAPZ's Go types by
// capz_contract_test.go.
func TestKindTable(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Kinds() {
		if seen[k.Kind] {
			t.Errorf("%s is in the table twice", k.Kind)
		}
		seen[k.Kind] = true
		if k.Resource != strings.ToLower(k.Kind)+"s" || k.Group != Group || len(k.Versions) == 0 {
			t.Errorf("%s: resource %q group %q versions %v", k.Kind, k.Resource, k.Group, k.Versions)
		}
		if k.Mutable != (k.BasePath != "") {
			t.Errorf("%s: mutable=%v but base path %q: only kinds with machine settings get defaults", k.Kind, k.Mutable, k.BasePath)
		}
		for _, v := range append(k.Versions, "v1beta2", "v1") {
			if !Handles(k.Group+"/"+v, k.Kind) {
				t.Errorf("Handles(%s/%s, %s) = false", k.Group, v, k.Kind)
			}
		}
		if Handles("example.com/v1", k.Kind) || Handles(k.Kind, k.Kind) {
			t.Errorf("%s is handled outside its group", k.Kind)
		}
	}
	if Handles(Group+"/v1beta1", "AzureCluster") {
		t.Error("AzureCluster is not a kind the policy decides on")
	}
	// The table hands out copies: a caller cannot change what Handles sees.
	Kinds()[0].Versions[0] = "mutated"
	if Kinds()[0].Versions[0] == "mutated" {
		t.Error("Kinds() exposes the table's own slices")
	}
}
