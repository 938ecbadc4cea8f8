package desid

import (
	"errors"
	"strings"
	"testing"
)

const guid = "6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90"

func id(rg, name string) string {
	return "/subscriptions/" + guid + "/resourceGroups/" + rg + "/providers/Microsoft.Compute/diskEncryptionSets/" + name
}

func TestParseValid(t *testing.T) {
	cases := map[string]ID{
		id("rg", "des"): {guid, "rg", "des"},
		"/SUBSCRIPTIONS/" + strings.ToUpper(guid) + "/RESOURCEGROUPS/Rg/PROVIDERS/microsoft.compute/DISKENCRYPTIONSETS/Des": {strings.ToUpper(guid), "Rg", "Des"},
		id("rg.with.dots(and)_parens-1", "a"):                {guid, "rg.with.dots(and)_parens-1", "a"},
		id("ресурсы", "des"):                                 {guid, "ресурсы", "des"}, // Azure allows Unicode letters in group names
		id(strings.Repeat("r", 90), strings.Repeat("n", 80)): {guid, strings.Repeat("r", 90), strings.Repeat("n", 80)},
		id("r", "des_name-2"):                                {guid, "r", "des_name-2"},
		"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d": {"00000000-0000-0000-0000-000000000000", "rg", "d"},
	}
	for in, want := range cases {
		got, err := Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("Parse(%q) = %+v, want %+v", in, got, want)
		}
		if !strings.HasPrefix(got.String(), "/subscriptions/"+strings.ToLower(want.SubscriptionID)+"/resourceGroups/") ||
			!strings.Contains(got.String(), "/providers/Microsoft.Compute/diskEncryptionSets/") {
			t.Errorf("String() = %q is not canonical", got.String())
		}
	}
}

func TestParseInvalid(t *testing.T) {
	cases := []struct {
		name, in string
		segment  string
		hint     []string // substrings of the message
	}{
		{"empty (Palette preset)", "", "whole ID", []string{"empty", "Palette", "az disk-encryption-set show"}},
		{"docs placeholder", "/subscriptions/subscriptionId/resourceGroups/resourceGroup/providers/Microsoft.Compute/diskEncryptionSets/diskEncryptionSet",
			"subscription", []string{`"subscriptionId" is the documentation's placeholder`}},
		{"angle-bracket placeholder", "/subscriptions/<subscription-id>/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "subscription", []string{"placeholder"}},
		{"template placeholder in name", id("rg", "${DES_NAME}"), "name", []string{"template placeholder"}},
		{"braced placeholder in rg", id("{rg}", "d"), "resource group name", []string{"template placeholder"}},
		{"key vault key URL", "https://myvault.vault.azure.net/keys/mykey/0123abcd0123abcd0123abcd0123abcd", "whole ID", []string{"Key Vault key", "references that key"}},
		{"disk ID", "/subscriptions/" + guid + "/resourceGroups/rg/providers/Microsoft.Compute/disks/osdisk", "resource type", []string{"Microsoft.Compute/disks", "not a Disk Encryption Set"}},
		{"key vault resource ID", "/subscriptions/" + guid + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", "resource type", []string{"Microsoft.KeyVault/vaults"}},
		{"trailing slash", id("rg", "des") + "/", "whole ID", []string{"remove the trailing"}},
		{"management URL", "https://management.azure.com" + id("rg", "des"), "whole ID", []string{"drop the host", id("rg", "des")}},
		{"leading space", " " + id("rg", "des"), "whole ID", []string{"spaces"}},
		{"trailing newline", id("rg", "des") + "\n", "whole ID", []string{"spaces"}},
		{"no leading slash", strings.TrimPrefix(id("rg", "des"), "/"), "whole ID", []string{"az disk-encryption-set show"}},
		{"not a GUID", "/subscriptions/1234/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "subscription", []string{"GUID"}},
		{"resource group ID", "/subscriptions/" + guid + "/resourceGroups/rg", "resource type", []string{"Microsoft.Resources/resourceGroups"}},
		{"cut short", "/subscriptions/" + guid + "/resourceGroups", "resource group name", []string{"cut short"}},
		{"missing name", "/subscriptions/" + guid + "/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets", "name", []string{"cut short"}},
		{"child segment", id("rg", "des") + "/extra/x", "extra segments", []string{"remove everything after the name"}},
		{"rg too long", id(strings.Repeat("r", 91), "d"), "resource group name", nil},
		{"rg ends with dot", id("rg.", "d"), "resource group name", nil},
		{"rg with space", id("my rg", "d"), "resource group name", nil},
		{"name too long", id("rg", strings.Repeat("n", 81)), "name", nil},
		{"name with dot", id("rg", "des.v2"), "name", nil},
		{"name with unicode", id("rg", "dés"), "name", nil},
		{"wrong keyword", "/subscriptions/" + guid + "/resourceGroup/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "resourceGroups", nil},
		{"double slash", "/subscriptions/" + guid + "//resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "resourceGroups", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %v, want *Error", tc.in, err)
			}
			if e.Segment != tc.segment {
				t.Errorf("segment = %q, want %q (%v)", e.Segment, tc.segment, err)
			}
			if e.Expected == "" || err.Error() == "" {
				t.Errorf("error without expectation: %+v", e)
			}
			for _, h := range tc.hint {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("message %q lacks %q", err, h)
				}
			}
		})
	}
}

func TestErrorTruncatesLongInput(t *testing.T) {
	_, err := Parse("/" + strings.Repeat("x", 5000))
	if err == nil || len(err.Error()) > 600 {
		t.Fatalf("error is %d bytes: %.100s", len(err.Error()), err)
	}
}

func TestEqual(t *testing.T) {
	a, _ := Parse(id("RG", "Des"))
	b, _ := Parse(strings.ToUpper(id("rg", "des")))
	if !a.Equal(b) {
		t.Fatalf("%v and %v differ only in case", a, b)
	}
	c, _ := Parse(id("rg", "other"))
	if a.Equal(c) {
		t.Fatal("different names compare equal")
	}
}
