package desid

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

const guid = testsupport.Subscription

func id(rg, name string) string {
	return "/subscriptions/" + guid + "/resourceGroups/" + rg + "/providers/Microsoft.Compute/diskEncryptionSets/" + name
}

func withType(t string) string {
	return "/subscriptions/" + guid + "/resourceGroups/rg/providers/" + t
}

// validCases and invalidCases also seed FuzzParse.
var validCases = []struct {
	in   string
	want ID
}{
	{id("rg", "des"), ID{guid, "rg", "des"}},
	{"/SUBSCRIPTIONS/" + strings.ToUpper(guid) + "/RESOURCEGROUPS/Rg/PROVIDERS/MICROSOFT.COMPUTE/DISKENCRYPTIONSETS/Des", ID{guid, "Rg", "Des"}},
	{"/Subscriptions/" + guid + "/resourcegroups/rg/Providers/microsoft.compute/diskencryptionsets/des", ID{guid, "rg", "des"}},
	{id("rg.with.dots(and)_parens-1", "a"), ID{guid, "rg.with.dots(and)_parens-1", "a"}},
	{id("(rg)", "_"), ID{guid, "(rg)", "_"}},
	{id(".rg", "-"), ID{guid, ".rg", "-"}},
	{id("ресурсы", "des"), ID{guid, "ресурсы", "des"}}, // Azure allows Unicode letters in group names
	{id("グループ", "des"), ID{guid, "グループ", "des"}},
	{id("Größe٣", "des"), ID{guid, "Größe٣", "des"}}, // and Unicode digits (.NET's \w)
	{id("r", strings.Repeat("n", 80)), ID{guid, "r", strings.Repeat("n", 80)}},
	{id(strings.Repeat("r", 90), "n"), ID{guid, strings.Repeat("r", 90), "n"}},
	{id(strings.Repeat("ж", 90), "n"), ID{guid, strings.Repeat("ж", 90), "n"}}, // 90 characters, 180 bytes
	{id("r", "Des_Name-2"), ID{guid, "r", "Des_Name-2"}},
	{id("my.vault.azure.net", "d"), ID{guid, "my.vault.azure.net", "d"}}, // not a Key Vault URL
	// The documentation's words are real names next to a real subscription: accepted, see subscriptionHint.
	{id("resourceGroup", "diskEncryptionSet"), ID{guid, "resourceGroup", "diskEncryptionSet"}},
	// Well formed, so accepted; the DES lookup reports it missing.
	{"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", ID{"00000000-0000-0000-0000-000000000000", "rg", "d"}},
}

var invalidCases = []struct {
	name, in string
	segment  string
	hint     []string // substrings of the message
}{
	// Whole-ID mistakes.
	{"empty (Palette preset)", "", "whole ID", []string{"the ID is empty", "JSON View", "az disk-encryption-set show"}},
	{"leading space", " " + id("rg", "des"), "whole ID", []string{"remove the spaces", "the rest is a valid ID"}},
	{"trailing newline", id("rg", "des") + "\n", "whole ID", []string{"remove the spaces", `\n`}},
	{"white space around a wrong ID", " " + id("rg", "des.v2") + " ", "whole ID", []string{"remove the spaces", "and then fix the name: '.' (U+002E)"}},
	{"only white space", " \n", "whole ID", []string{"only white space", "JSON View"}},
	{"tab inside", id("rg", "de\ts"), "whole ID", []string{"invisible character U+0009"}},
	{"byte order mark", "\ufeff" + id("rg", "des"), "whole ID", []string{"invisible character U+FEFF at byte 0"}},
	{"zero-width space", id("rg", "des\u200b"), "whole ID", []string{"U+200B", "copy and paste"}},
	{"not UTF-8", id("r\xffg", "des"), "whole ID", []string{"not text"}},
	{"trailing slash", id("rg", "des") + "/", "whole ID", []string{`remove the trailing "/"`}},
	{"double slash", "/subscriptions/" + guid + "//resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "whole ID", []string{"remove the extra '/' after", guid}},
	{"query string", id("rg", "des") + "?api-version=2023-04-02", "whole ID", []string{`remove "?api-version=2023-04-02"`}},
	{"no leading slash", strings.TrimPrefix(id("rg", "des"), "/"), "whole ID", []string{`add the leading "/"`}},
	{"name only", "des-prod", "whole ID", []string{"just the name", "az disk-encryption-set show"}},
	{"GUID only", guid, "whole ID", []string{"only a GUID"}},
	{"unrendered Helm value", "{{ .Values.diskEncryptionSetID }}", "whole ID", []string{"unrendered template placeholder"}},
	{"unrendered env var", "${DES_ID}", "whole ID", []string{"unrendered template placeholder"}},
	{"key vault key URL", "https://myvault.vault.azure.net/keys/mykey/0123abcd0123abcd0123abcd0123abcd", "whole ID",
		[]string{"Key Vault key URL", "references that key", "ID of the Disk Encryption Set"}},
	{"managed HSM key URL", "https://myhsm.managedhsm.azure.net/keys/k/1", "whole ID", []string{"Key Vault key URL"}},
	{"key vault URL without scheme", "myvault.vault.azure.cn/keys/k", "whole ID", []string{"Key Vault key URL"}},
	{"key vault URL", "https://myvault.vault.azure.net/", "whole ID", []string{"Key Vault URL", "references a key in it"}},
	{"management URL", "https://management.azure.com" + id("rg", "des"), "whole ID", []string{`drop the host: use "` + id("rg", "des") + `"`}},
	{"management URL with api-version", "https://management.azure.com" + id("RG", "des") + "?api-version=2024-03-02", "whole ID",
		[]string{`drop the host: use "` + id("RG", "des") + `"`}},
	{"management URL of something else", "https://management.azure.com" + withType("Microsoft.Compute/disks/d"), "whole ID",
		[]string{"drop the host: the ID starts at /subscriptions/; and then fix the resource type: this is the ID of a Microsoft.Compute/disks resource"}},
	{"portal link", "https://portal.azure.com/#@contoso.onmicrosoft.com/resource" + id("rg", "des") + "/overview", "whole ID",
		[]string{`drop the host and what follows the name: use "` + id("rg", "des") + `"`}},
	{"other URL", "https://example.com/des", "whole ID", []string{"a URL is not a resource ID"}},

	// Another resource's ID.
	{"disk ID", withType("Microsoft.Compute/disks/osdisk"), "resource type", []string{"this is the ID of a Microsoft.Compute/disks resource, not a Disk Encryption Set"}},
	{"VM extension ID", withType("Microsoft.Compute/virtualMachines/vm/extensions/x"), "resource type", []string{"Microsoft.Compute/virtualMachines/extensions resource"}},
	{"key vault resource ID", withType("Microsoft.KeyVault/vaults/kv"), "resource type", []string{"Microsoft.KeyVault/vaults resource", "references a Key Vault key"}},
	{"key vault key resource ID", withType("Microsoft.KeyVault/vaults/kv/keys/k"), "resource type", []string{"Microsoft.KeyVault/vaults/keys resource"}},
	{"resource group ID", "/subscriptions/" + guid + "/resourceGroups/rg", "resource type", []string{"Microsoft.Resources/resourceGroups resource"}},
	{"subscription ID", "/subscriptions/" + guid, "resource type", []string{"Microsoft.Resources/subscriptions resource"}},
	{"misspelt type", withType("Microsoft.Compute/diskEncryptionSet/des"), "resource type", []string{"check the spelling"}},
	{"misspelt namespace", withType("Microsoft.Computer/diskEncryptionSets/des"), "resource type", []string{"check the spelling"}},
	{"missing namespace", withType("diskEncryptionSets/des"), "resource type", []string{"namespace is missing"}},

	// Placeholders.
	{"docs placeholder", "/subscriptions/subscriptionId/resourceGroups/resourceGroup/providers/Microsoft.Compute/diskEncryptionSets/diskEncryptionSet",
		"subscription", []string{`"subscriptionId" is the documentation's placeholder`, "subscription GUID", `"resourceGroup" with your resource group name, "diskEncryptionSet" with your Disk Encryption Set name`}},
	{"docs placeholder subscription only", "/subscriptions/subscription-id/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des",
		"subscription", []string{"documentation's placeholder: replace it with your subscription GUID;"}},
	{"angle-bracket placeholder", "/subscriptions/<subscription-id>/resourceGroups/<rg>/providers/Microsoft.Compute/diskEncryptionSets/d",
		"subscription", []string{`"<subscription-id>" is the documentation's placeholder`, `, "<rg>" with your resource group name;`}},
	{"braced placeholder", "/subscriptions/{subscriptionId}/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "subscription", []string{"placeholder"}},
	{"shell placeholder", "/subscriptions/${SUBSCRIPTION_ID}/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "subscription", []string{"placeholder"}},
	{"x GUID placeholder", "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "subscription", []string{"placeholder"}},
	{"template placeholder in name", id("rg", "${DES_NAME}"), "name", []string{`"${DES_NAME}" is a template placeholder`}},
	{"braced placeholder in rg", id("{rg}", "d"), "resource group name", []string{"template placeholder"}},

	// Segment by segment.
	{"root only", "/", "subscriptions", []string{"found nothing", "cut short"}},
	{"wrong first keyword", "/subscription/" + guid + "/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "subscriptions", []string{`found "subscription"`}},
	{"no subscription", "/subscriptions", "subscription", []string{"cut short"}},
	{"braced GUID", "/subscriptions/{" + guid + "}/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "subscription", []string{"remove the brackets"}},
	{"short subscription", "/subscriptions/1234/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "subscription", []string{"4 characters, a GUID has 36"}},
	{"subscription with non-hex", "/subscriptions/" + strings.Replace(guid, "a", "g", 1) + "/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d",
		"subscription", []string{"'g' at character 2 is not a hexadecimal digit"}},
	{"subscription with dash misplaced", "/subscriptions/" + guid[:8] + "0" + guid[9:] + "/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/d",
		"subscription", []string{"'-' at character 9"}},
	{"no resource group", "/subscriptions/" + guid + "/providers/Microsoft.Compute/diskEncryptionSets/d", "resourceGroups", []string{"resource group is missing"}},
	{"wrong resourceGroups keyword", "/subscriptions/" + guid + "/resourceGroup/rg/providers/Microsoft.Compute/diskEncryptionSets/d", "resourceGroups", []string{`found "resourceGroup"`}},
	{"no resource group name", "/subscriptions/" + guid + "/resourceGroups", "resource group name", []string{"cut short"}},
	{"rg 91 characters", id(strings.Repeat("r", 91), "d"), "resource group name", []string{"91 characters long"}},
	{"rg 91 Unicode characters", id(strings.Repeat("ж", 91), "d"), "resource group name", []string{"91 characters long"}},
	{"rg ends with dot", id("rg.", "d"), "resource group name", []string{"cannot end in '.'"}},
	{"rg with space", id("my rg", "d"), "resource group name", []string{"' ' (U+0020) is not allowed in a resource group name"}},
	{"rg with symbol", id("rg+1", "d"), "resource group name", []string{"'+' (U+002B)"}},
	{"wrong providers keyword", withType("")[:len(withType(""))-len("providers/")] + "provider/Microsoft.Compute/diskEncryptionSets/d", "providers", []string{`found "provider"`}},
	{"no type", strings.TrimSuffix(withType(""), "/"), "resource type", []string{"found nothing", "cut short"}},
	{"namespace only", withType("Microsoft.Compute"), "resource type", []string{`found "Microsoft.Compute"`, "cut short"}},
	{"no name", withType("Microsoft.Compute/diskEncryptionSets"), "name", []string{"cut short"}},
	{"name 81 characters", id("rg", strings.Repeat("n", 81)), "name", []string{"81 characters long"}},
	{"name with dot", id("rg", "des.v2"), "name", []string{"'.' (U+002E) is not allowed in a Disk Encryption Set name"}},
	{"name with parenthesis", id("rg", "des(1)"), "name", []string{"'('"}},
	{"name with Unicode letter", id("rg", "dés"), "name", []string{"U+00E9"}},
	{"child segment", id("rg", "des") + "/extra", "extra segments", []string{`found "/extra"`, "remove everything after the name"}},
	{"extension resource on the DES", id("rg", "des") + "/providers/Microsoft.Authorization/roleAssignments/x", "extra segments", []string{"remove everything after the name"}},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validCases {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		want := "/subscriptions/" + tc.want.SubscriptionID + "/resourceGroups/" + tc.want.ResourceGroup +
			"/providers/Microsoft.Compute/diskEncryptionSets/" + tc.want.Name
		if got.String() != want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got.String(), want)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range invalidCases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %+v, %v; want an *Error", tc.in, got, err)
			}
			if got != (ID{}) {
				t.Errorf("Parse returned %+v with its error", got)
			}
			if e.Segment != tc.segment {
				t.Errorf("segment = %q, want %q (%v)", e.Segment, tc.segment, err)
			}
			if e.Input != tc.in || e.Expected == "" || err.Error() == "" || strings.Contains(err.Error(), "\n") {
				t.Errorf("incomplete or multi-line error: %#v: %q", e, err.Error())
			}
			for _, h := range tc.hint {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("message %q lacks %q", err, h)
				}
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	for in, want := range map[string]string{
		id("rg", "des.v2"): `name: expected 1-80 ASCII letters, digits, '_' or '-', found "des.v2"; '.' (U+002E) is not allowed in a Disk Encryption Set name`,
		"/subscriptions":   `subscription: expected a subscription GUID (8-4-4-4-12 hexadecimal digits), found nothing; the ID is cut short; the whole form is ` + form,
		"/a":               `subscriptions: expected subscriptions, found "a"; the whole form is ` + form,
	} {
		if _, err := Parse(in); err == nil || err.Error() != want {
			t.Errorf("Parse(%q):\n got  %v\n want %s", in, err, want)
		}
	}
	if got := (&Error{Segment: "s", Expected: "e"}).Error(); got != "s: expected e, found nothing" {
		t.Errorf("no hint: %q", got)
	}
}

// Users paste whole files and base64 blobs; the message must stay readable, and ARM's
// quadratic parser must not be reached with them.
func TestLongInputs(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for name, in := range map[string]string{
		"garbage":              "/" + long,
		"management URL":       "https://management.azure.com/" + long + "/subscriptions/" + long,
		"placeholder":          "/subscriptions/<" + long + ">/resourceGroups/" + long + "/providers/Microsoft.Compute/diskEncryptionSets/{" + long + "}",
		"disk name":            withType("Microsoft.Compute/disks/" + long),
		"type":                 withType("Microsoft." + long + "/x/y"),
		"trailing white space": id("rg", long) + " ",
		"extra segments":       id("rg", "des") + strings.Repeat("/a", 5000),
		"many segments":        "/subscriptions/" + guid + strings.Repeat("/aaaaaaaa/bbbbbbbb", 60000), // about 1 MB
	} {
		start := time.Now()
		_, err := Parse(in)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: Parse took %v", name, d)
		}
		if err == nil || len(err.Error()) > 1000 {
			t.Errorf("%s: error of %d bytes: %.300v", name, len(err.Error()), err)
		}
	}
	if got := clip("ж"+strings.Repeat("ж", 200), 101); !strings.HasPrefix(got, "ж") || !strings.HasSuffix(got, "ж") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("clip cut a character: %q", got)
	}
}

func TestIDsCompareWithEquals(t *testing.T) {
	// The subscription's case is canonicalised, so IDs that Azure considers the same GUID compare
	// equal with ==; resource group and name keep their case, as Azure shows them.
	a, _ := Parse(id("rg", "des"))
	b, _ := Parse(strings.Replace(id("rg", "des"), guid, strings.ToUpper(guid), 1))
	if a != b {
		t.Fatalf("%v and %v differ only in the subscription's case", a, b)
	}
	for _, other := range []string{id("rg", "other"), id("rg2", "des"), strings.Replace(id("rg", "des"), guid, "00000000-0000-0000-0000-000000000000", 1)} {
		c, _ := Parse(other)
		if a == c {
			t.Errorf("%v equals %v", a, c)
		}
	}
}

// TestSame: Azure compares resource IDs case-insensitively, so one set spelled in two casings is one
// set; a different name, group or subscription is another; text that does not parse is compared as
// text.
func TestSame(t *testing.T) {
	id := "/subscriptions/" + guid + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des-1"
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{id, id, true},
		{id, strings.ToUpper(id), true},
		{id, strings.Replace(id, "des-1", "des-2", 1), false},
		{id, strings.Replace(id, "/keys/", "/other/", 1), false},
		{"not-an-id/", "NOT-AN-ID", true},
		{"not-an-id", id, false},
	} {
		if got := Same(c.a, c.b); got != c.want {
			t.Errorf("Same(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
	lower := strings.ToLower(id) // the key is this exact text, not merely the same letters
	if k, ok := Key(strings.ToUpper(id)); !ok || k != lower {
		t.Errorf("Key = %q, %v", k, ok)
	}
}
