package desid

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
)

// ID is a parsed Disk Encryption Set resource ID.
type ID struct {
	SubscriptionID string
	ResourceGroup  string
	Name           string
}

// String returns the canonical spelling: Azure's keyword casing and a lower-case subscription GUID.
// The resource group and name keep their case (Azure treats them case-insensitively but shows them
// as created).
func (id ID) String() string {
	return "/subscriptions/" + strings.ToLower(id.SubscriptionID) +
		"/resourceGroups/" + id.ResourceGroup +
		"/providers/Microsoft.Compute/diskEncryptionSets/" + id.Name
}

// Equal compares IDs as Azure does: case-insensitively.
func (id ID) Equal(o ID) bool {
	return strings.EqualFold(id.SubscriptionID, o.SubscriptionID) &&
		strings.EqualFold(id.ResourceGroup, o.ResourceGroup) &&
		strings.EqualFold(id.Name, o.Name)
}

// Error says which segment of an ID is wrong, what was expected there, what was found, and how to
// fix it.
type Error struct {
	Input    string
	Segment  string
	Expected string
	Found    string
	Hint     string
}

func (e *Error) Error() string {
	found := e.Found
	if len(found) > 200 {
		found = found[:200] + "..."
	}
	msg := fmt.Sprintf("%s: expected %s, found %q", e.Segment, e.Expected, found)
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

const (
	format       = "/subscriptions/{subscription GUID}/resourceGroups/{resource group}/providers/Microsoft.Compute/diskEncryptionSets/{name}"
	howToFind    = "copy the Resource ID from the Disk Encryption Set's JSON View in the Azure portal, or run `az disk-encryption-set show -g <rg> -n <name> --query id -o tsv`"
	maxRGLength  = 90
	maxNameLen   = 80
	keyVaultHost = ".vault.azure.net"
)

// Parse parses a Disk Encryption Set resource ID. The keywords compare case-insensitively, as ARM
// does; everything else is checked against Azure's naming rules.
func Parse(s string) (ID, error) {
	fail := func(segment, expected, found, hint string) (ID, error) {
		return ID{}, &Error{Input: s, Segment: segment, Expected: expected, Found: found, Hint: hint}
	}
	switch {
	case s == "":
		return fail("whole ID", "a Disk Encryption Set resource ID ("+format+")", s,
			"the ID is empty (the Palette preset leaves diskEncryptionSetID: \"\" to be filled in); "+howToFind)
	case strings.TrimSpace(s) != s:
		return fail("whole ID", "no leading or trailing white space", s, "remove the spaces or line breaks around the ID")
	case strings.Contains(strings.ToLower(s), keyVaultHost) || strings.Contains(strings.ToLower(s), "/keys/") && strings.HasPrefix(strings.ToLower(s), "https://"):
		return fail("whole ID", "a Disk Encryption Set resource ID", s,
			"this is a Key Vault key URL; a Disk Encryption Set references that key, and the machine needs the ID of the Disk Encryption Set itself: "+howToFind)
	case strings.HasPrefix(strings.ToLower(s), "https://") || strings.HasPrefix(strings.ToLower(s), "http://"):
		hint := "give the resource ID, which starts with /subscriptions/"
		if i := strings.Index(strings.ToLower(s), "/subscriptions/"); i >= 0 {
			hint = fmt.Sprintf("drop the host: use %q", s[i:])
		}
		return fail("whole ID", "a resource ID starting with /subscriptions/, not a URL", s, hint)
	case !strings.HasPrefix(s, "/"):
		return fail("whole ID", "an ID starting with /subscriptions/", s, howToFind)
	case strings.HasSuffix(s, "/"):
		return fail("whole ID", "no trailing slash", s, "remove the trailing \"/\"")
	}

	parts := strings.Split(s[1:], "/")
	if typ, hint := otherResource(s); hint != "" && !isDESPath(parts) {
		return fail("resource type", "Microsoft.Compute/diskEncryptionSets", typ, hint)
	}
	keyword := func(i int, want, segment string) error {
		if i >= len(parts) {
			_, err := fail(segment, want, "", "the ID is cut short; the whole form is "+format)
			return err
		}
		if !strings.EqualFold(parts[i], want) {
			_, err := fail(segment, want, parts[i], "the whole form is "+format)
			return err
		}
		return nil
	}
	if err := keyword(0, "subscriptions", "subscriptions"); err != nil {
		return ID{}, err
	}
	if len(parts) < 2 || parts[1] == "" {
		return fail("subscription", "a subscription GUID", "", "the ID is cut short; the whole form is "+format)
	}
	if !isGUID(parts[1]) {
		hint := "a subscription ID is a GUID such as 6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90 (`az account show --query id -o tsv`)"
		if isPlaceholder(parts[1]) {
			hint = fmt.Sprintf("%q is the documentation's placeholder: replace it, and the other placeholders, with your values; ", parts[1]) + howToFind
		}
		return fail("subscription", "a subscription GUID", parts[1], hint)
	}
	if err := keyword(2, "resourceGroups", "resourceGroups"); err != nil {
		return ID{}, err
	}
	if len(parts) < 4 {
		return fail("resource group name", "a resource group name", "", "the ID is cut short; the whole form is "+format)
	}
	if msg := checkResourceGroup(parts[3]); msg != "" {
		return fail("resource group name", msg, parts[3], placeholderHint(parts[3]))
	}
	if err := keyword(4, "providers", "providers"); err != nil {
		return ID{}, err
	}
	if len(parts) < 7 || !strings.EqualFold(parts[5], "Microsoft.Compute") || !strings.EqualFold(parts[6], "diskEncryptionSets") {
		found := strings.Join(parts[5:min(7, len(parts))], "/")
		hint := "this is not a Disk Encryption Set; " + howToFind
		if found != "" {
			hint = fmt.Sprintf("this is the ID of a %s resource, not a Disk Encryption Set; %s", found, howToFind)
		}
		return fail("resource type", "Microsoft.Compute/diskEncryptionSets", found, hint)
	}
	if len(parts) < 8 {
		return fail("name", "a Disk Encryption Set name", "", "the ID is cut short; the whole form is "+format)
	}
	if msg := checkName(parts[7]); msg != "" {
		return fail("name", msg, parts[7], placeholderHint(parts[7]))
	}
	if len(parts) > 8 {
		return fail("extra segments", "nothing after the Disk Encryption Set name", "/"+strings.Join(parts[8:], "/"),
			"remove everything after the name: a Disk Encryption Set has no child resources that disks reference")
	}
	return ID{SubscriptionID: parts[1], ResourceGroup: parts[3], Name: parts[7]}, nil
}

func isDESPath(parts []string) bool {
	return len(parts) >= 7 && strings.EqualFold(parts[5], "Microsoft.Compute") && strings.EqualFold(parts[6], "diskEncryptionSets")
}

// otherResource uses the SDK's parser to name the resource that was pasted instead, which is the
// most useful thing to say about a well-formed ID of the wrong type.
func otherResource(s string) (typ, hint string) {
	rid, err := arm.ParseResourceID(s)
	if err != nil || rid.ResourceType.String() == "" {
		return "", ""
	}
	t := rid.ResourceType.String()
	if strings.EqualFold(t, "Microsoft.Compute/diskEncryptionSets") || !strings.Contains(t, "/") {
		return "", ""
	}
	return t, fmt.Sprintf("this is the ID of a %s resource (%q), not a Disk Encryption Set; %s", t, rid.Name, howToFind)
}

// checkResourceGroup returns what was expected when rg breaks Azure's rules, or "".
func checkResourceGroup(rg string) string {
	const rule = "1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'"
	if n := len([]rune(rg)); n == 0 || n > maxRGLength {
		return rule
	}
	if strings.HasSuffix(rg, ".") {
		return rule
	}
	for _, r := range rg {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("_-.()", r)) {
			return rule
		}
	}
	return ""
}

func checkName(name string) string {
	const rule = "1-80 characters: letters, digits, '_' or '-'"
	if n := len(name); n == 0 || n > maxNameLen {
		return rule
	}
	for _, r := range name {
		if !(r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-')) {
			return rule
		}
	}
	return ""
}

// isPlaceholder recognises the placeholder spellings of documentation and templates. Bare words like
// "resourceGroup" are valid names, so they only count in the subscription segment, where no word is
// valid; bracketed forms count everywhere.
func isPlaceholder(s string) bool {
	if isBracketed(s) {
		return true
	}
	switch strings.ToLower(s) {
	case "subscriptionid", "subscription-id", "subscription_id", "subscription", "sub", "mysubscription":
		return true
	}
	return false
}

func isBracketed(s string) bool {
	return strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") ||
		strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") ||
		strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}")
}

func placeholderHint(s string) string {
	if isBracketed(s) {
		return fmt.Sprintf("%q is a template placeholder: replace it with the real value; %s", s, howToFind)
	}
	return ""
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
