package desid

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
)

// ID is a parsed Disk Encryption Set resource ID.
type ID struct {
	SubscriptionID string // lower-case: a GUID's case carries no meaning, and one spelling makes IDs comparable with ==
	ResourceGroup  string
	Name           string
}

// String returns the canonical spelling: Azure's keyword casing and a lower-case subscription GUID.
// The resource group and name keep their case: Azure matches them case-insensitively but shows
// them as they were created, and users recognise them that way.
func (id ID) String() string {
	return "/subscriptions/" + strings.ToLower(id.SubscriptionID) +
		"/resourceGroups/" + id.ResourceGroup +
		"/providers/" + desType + "/" + id.Name
}

// Key is the form under which Azure treats two Disk Encryption Set IDs as one: the parsed ID,
// lower-cased (Azure compares resource IDs case-insensitively); false when s does not parse.
func Key(s string) (string, bool) {
	id, err := Parse(s)
	if err != nil {
		return "", false
	}
	return strings.ToLower(id.String()), true
}

// Same says whether a and b name the same Disk Encryption Set, as Azure compares them; IDs that do
// not parse are compared as text, case-insensitively, without a trailing slash.
func Same(a, b string) bool {
	ka, okA := Key(a)
	kb, okB := Key(b)
	if !okA || !okB {
		return strings.EqualFold(strings.TrimSuffix(a, "/"), strings.TrimSuffix(b, "/"))
	}
	return ka == kb
}

// Error says which segment of an ID is wrong, what was expected there, what was found, and how to
// fix it. Parse reports the first problem only, since users fix IDs by pasting a new one rather than
// editing segment by segment; the exception is a wrapper (white space, a URL) around an ID that is
// wrong too, whose hint also says what is wrong inside.
type Error struct {
	Input    string // what was given
	Segment  string // which part is wrong: "whole ID", "subscriptions", "subscription", "resourceGroups", "resource group name", "providers", "resource type", "name" or "extra segments"
	Expected string
	Found    string // "" when the ID ends before the segment
	Hint     string // how to fix it; may be empty
}

// maxFound bounds the echo of user input: the message ends up in kubectl output and audit logs,
// where a megabyte of pasted garbage helps nobody.
const maxFound = 200

func (e *Error) Error() string {
	found := "nothing"
	if e.Found != "" {
		found = strconv.Quote(clip(e.Found, maxFound)) // quoted, so stray spaces and line breaks show and the message stays on one line
	}
	msg := e.Segment + ": expected " + e.Expected + ", found " + found
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

// brief is the error without its Found, for hints that report a second problem behind the first
// (white space around a wrong ID, a URL around one): one round trip less for the user.
func (e *Error) brief() string {
	if e.Hint != "" {
		return "fix the " + e.Segment + ": " + e.Hint
	}
	return "fix the " + e.Segment + ": expected " + e.Expected
}

const (
	desType  = "Microsoft.Compute/diskEncryptionSets"
	form     = "/subscriptions/{subscription GUID}/resourceGroups/{resource group}/providers/Microsoft.Compute/diskEncryptionSets/{name}"
	wholeID  = "whole ID"
	cutShort = "the ID is cut short; the whole form is " + form

	maxRGLength   = 90
	maxNameLength = 80
	rgRule        = "1-90 letters, digits, '_', '-', '.', '(' or ')', not ending in '.'"
	nameRule      = "1-80 ASCII letters, digits, '_' or '-'"
)

// Parse parses a Disk Encryption Set resource ID. Keywords compare case-insensitively, as ARM does;
// the values are checked against Azure's naming rules, so that a typo is reported here, with the
// segment named, rather than later as "not found". The error is always an *Error.
func Parse(s string) (ID, error) {
	id, e := parse(s)
	if e != nil {
		e.Input = s
		return ID{}, e
	}
	return id, nil
}

func parse(s string) (ID, *Error) {
	if e := checkWhole(s); e != nil {
		return ID{}, e
	}
	// checkWhole guarantees a leading '/' and no empty segments.
	parts := strings.Split(s[1:], "/")
	if e := otherResourceType(s, parts); e != nil {
		return ID{}, e
	}
	if e := keyword(parts, 0, "subscriptions"); e != nil {
		return ID{}, e
	}
	if e := checkSubscription(parts); e != nil {
		return ID{}, e
	}
	if e := keyword(parts, 2, "resourceGroups"); e != nil {
		if e.Found != "" && strings.EqualFold(e.Found, "providers") {
			e.Hint = "the resource group is missing: a Disk Encryption Set always lives in one; the whole form is " + form
		}
		return ID{}, e
	}
	if len(parts) < 4 {
		return ID{}, &Error{Segment: "resource group name", Expected: rgRule, Hint: cutShort}
	}
	if hint := checkResourceGroup(parts[3]); hint != "" {
		return ID{}, &Error{Segment: "resource group name", Expected: rgRule, Found: parts[3], Hint: hint}
	}
	if e := keyword(parts, 4, "providers"); e != nil {
		return ID{}, e
	}
	if e := checkType(parts); e != nil {
		return ID{}, e
	}
	if len(parts) < 8 {
		return ID{}, &Error{Segment: "name", Expected: nameRule, Hint: cutShort}
	}
	if hint := checkName(parts[7]); hint != "" {
		return ID{}, &Error{Segment: "name", Expected: nameRule, Found: parts[7], Hint: hint}
	}
	if len(parts) > 8 {
		return ID{}, &Error{Segment: "extra segments", Expected: "nothing after the Disk Encryption Set name",
			Found: "/" + strings.Join(parts[8:], "/"),
			Hint:  "remove everything after the name: disks reference the Disk Encryption Set itself, not anything below it"}
	}
	return ID{SubscriptionID: strings.ToLower(parts[1]), ResourceGroup: parts[3], Name: parts[7]}, nil
}

// checkWhole catches what is wrong with the string as a whole before it is split, because split
// segments would misdescribe it: a URL, surrounding white space, a doubled or trailing '/'.
func checkWhole(s string) *Error {
	whole := func(expected, hint string) *Error {
		return &Error{Segment: wholeID, Expected: expected, Found: s, Hint: hint}
	}
	switch {
	case s == "":
		// The Palette preset ships cloud.azure.diskEncryptionSetID: "" for the user to fill in.
		return whole("a Disk Encryption Set resource ID ("+form+")",
			"the ID is empty (a preset such as Palette's leaves diskEncryptionSetID: \"\" to be filled in); "+howToFind)
	case !utf8.ValidString(s):
		return whole("UTF-8 text", "the ID contains bytes that are not text; "+howToFind)
	case strings.TrimSpace(s) == "":
		return whole("a Disk Encryption Set resource ID ("+form+")", "the ID is only white space; "+howToFind)
	case strings.TrimSpace(s) != s:
		// Not trimmed silently: the ID is stored as given, and Azure will not trim it either.
		hint := "remove the spaces or line breaks around the ID"
		if _, e := parse(strings.TrimSpace(s)); e == nil {
			hint += " (the rest is a valid ID)"
		} else {
			hint += ", and then " + e.brief()
		}
		return whole("no white space before or after the ID", hint)
	}
	if i, r := invisible(s); i >= 0 {
		return whole("only visible characters",
			fmt.Sprintf("there is an invisible character %U at byte %d, usually picked up by copy and paste; delete it, or retype the ID around it", r, i))
	}
	if !strings.HasPrefix(s, "/") {
		return whole("an ID starting with /subscriptions/", notAnIDHint(s))
	}
	if len(s) > 1 && strings.HasSuffix(s, "/") {
		return whole("no trailing slash", `remove the trailing "/"`)
	}
	if i := strings.Index(s, "//"); i >= 0 {
		return whole("exactly one '/' between segments", fmt.Sprintf("remove the extra '/' after %q", clip(s[:i], 80)))
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return whole("no query string", fmt.Sprintf("remove %q from the end: it belongs to a REST call or a portal link, not to the ID", clip(s[i:], 80)))
	}
	return nil
}

// invisible returns the first character that would not show when the ID is printed; such
// characters make two IDs that look identical differ.
func invisible(s string) (int, rune) {
	for i, r := range s {
		if !unicode.IsGraphic(r) {
			return i, r
		}
	}
	return -1, 0
}

func keyword(parts []string, i int, want string) *Error {
	switch {
	case i >= len(parts) || parts[i] == "": // "" only for "/"
		return &Error{Segment: want, Expected: want, Hint: cutShort}
	case !strings.EqualFold(parts[i], want):
		return &Error{Segment: want, Expected: want, Found: parts[i], Hint: "the whole form is " + form}
	}
	return nil
}

func checkSubscription(parts []string) *Error {
	const expected = "a subscription GUID (8-4-4-4-12 hexadecimal digits)"
	if len(parts) < 2 {
		return &Error{Segment: "subscription", Expected: expected, Hint: cutShort}
	}
	sub := parts[1]
	if IsGUID(sub) {
		// The all-zero GUID is accepted: it is well formed, and the DES lookup reports it missing.
		return nil
	}
	return &Error{Segment: "subscription", Expected: expected, Found: sub, Hint: subscriptionHint(sub, parts)}
}

// otherResourceType names the resource whose ID was pasted instead of a DES's (a disk, a Key Vault,
// a resource group, ...), which says more than "segment 6 is wrong". The SDK parser knows the
// general ID grammar, including subscription- and tenant-level resources and child types.
func otherResourceType(s string, parts []string) *Error {
	// A DES ID has 8 segments. ARM's parser is quadratic in the number of segments (seconds for a
	// 100 kB string), and admission requests can carry megabytes, so long inputs skip it.
	if len(parts) > 24 {
		return nil
	}
	if len(parts) >= 7 && strings.EqualFold(parts[5]+"/"+parts[6], desType) {
		return nil // a DES ID with something else wrong; the segment checks describe it better
	}
	rid, err := arm.ParseResourceID(s)
	if err != nil {
		return nil //nolint:nilerr // not an ARM resource ID at all: there is no other resource to name
	}
	t := rid.ResourceType.String()
	ns := rid.ResourceType.Namespace
	// A mistyped keyword ("/resourceGroup/", "/provider/") makes the SDK read a child of a
	// subscription or resource group, typed Microsoft.Resources/...; naming that type would
	// mislead, so only the real subscription and resource group IDs are named.
	if strings.EqualFold(ns, "Microsoft.Resources") &&
		!strings.EqualFold(t, "Microsoft.Resources/subscriptions") && !strings.EqualFold(t, "Microsoft.Resources/resourceGroups") {
		return nil
	}
	if !strings.Contains(t, "/") || strings.EqualFold(t, desType) || nearDESType(t) {
		return nil
	}
	return &Error{Segment: "resource type", Expected: desType, Found: t, Hint: otherTypeHint(t)}
}

func checkType(parts []string) *Error {
	if len(parts) < 7 {
		return &Error{Segment: "resource type", Expected: desType, Found: strings.Join(parts[5:], "/"), Hint: cutShort}
	}
	t := parts[5] + "/" + parts[6]
	if strings.EqualFold(t, desType) {
		return nil
	}
	e := &Error{Segment: "resource type", Expected: desType, Found: t}
	switch {
	case strings.EqualFold(parts[5], "diskEncryptionSets"):
		e.Found = parts[5]
		e.Hint = "the namespace is missing: write providers/Microsoft.Compute/diskEncryptionSets/{name}"
	case nearDESType(t):
		e.Hint = "check the spelling: the type is " + desType
	default:
		e.Hint = otherTypeHint(t)
	}
	return e
}

// checkResourceGroup returns why rg breaks Azure's rules, or "". Length counts characters, not
// bytes, since Unicode letters are allowed.
func checkResourceGroup(rg string) string {
	if h := placeholderHint(rg); h != "" {
		return h
	}
	if n := utf8.RuneCountInString(rg); n == 0 || n > maxRGLength {
		return fmt.Sprintf("it is %d characters long", n)
	}
	for _, r := range rg {
		// Azure's pattern is ^[-\w._()]+$ with .NET's Unicode \w, hence unicode.IsLetter/IsDigit.
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_-.()", r) {
			return fmt.Sprintf("%q (%U) is not allowed in a resource group name", r, r)
		}
	}
	if strings.HasSuffix(rg, ".") {
		return "a resource group name cannot end in '.'"
	}
	return ""
}

func checkName(name string) string {
	if h := placeholderHint(name); h != "" {
		return h
	}
	if n := utf8.RuneCountInString(name); n == 0 || n > maxNameLength {
		return fmt.Sprintf("it is %d characters long", n)
	}
	for _, r := range name {
		if !isASCIIAlnum(r) && r != '_' && r != '-' {
			return fmt.Sprintf("%q (%U) is not allowed in a Disk Encryption Set name", r, r)
		}
	}
	return ""
}

func isASCIIAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

func isHex(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F'
}

// IsGUID reports whether s is a GUID in its usual 8-4-4-4-12 hex spelling, as Azure prints
// subscription IDs; the policy file's allowedDESSubscriptions are checked with it too.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if isDashPosition(i) != (c == '-') || c != '-' && !isHex(c) {
			return false
		}
	}
	return true
}

func isDashPosition(i int) bool { return i == 8 || i == 13 || i == 18 || i == 23 }

// clip shortens s to about n bytes, keeping the head and the tail (where trailing slashes and
// extra segments are), cut at character boundaries.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	h, t := n*3/4, len(s)-n/4
	for h > 0 && !utf8.RuneStart(s[h]) {
		h--
	}
	for t < len(s) && !utf8.RuneStart(s[t]) {
		t++
	}
	return s[:h] + "..." + s[t:]
}
