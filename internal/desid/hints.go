package desid

import (
	"fmt"
	"strings"
)

const howToFind = "copy the Resource ID from the Disk Encryption Set's JSON View in the Azure portal, or run `az disk-encryption-set show -g <rg> -n <name> --query id -o tsv`"

// keyVaultHosts are the DNS suffixes of Key Vault and Managed HSM in the public and sovereign
// clouds: a key URL is the most common wrong paste, because the DES page shows the key prominently.
var keyVaultHosts = []string{
	".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net", ".vault.microsoftazure.de",
	".managedhsm.azure.net", ".managedhsm.azure.cn", ".managedhsm.usgovcloudapi.net",
}

// notAnIDHint explains a string that does not start with '/': it was meant as something else.
func notAnIDHint(s string) string {
	lower := strings.ToLower(s)
	rest, hadScheme := strings.CutPrefix(lower, "https://")
	if !hadScheme {
		rest, hadScheme = strings.CutPrefix(lower, "http://")
	}
	host, path, _ := strings.Cut(rest, "/")
	isVault := false
	for _, suffix := range keyVaultHosts {
		isVault = isVault || strings.HasSuffix(host, suffix)
	}
	if isVault || hadScheme && strings.HasPrefix(path, "keys/") {
		what := "a Key Vault URL: a Disk Encryption Set references a key in it"
		if strings.HasPrefix(path, "keys/") {
			what = "a Key Vault key URL: a Disk Encryption Set references that key"
		}
		return "this is " + what + ", and disks need the ID of the Disk Encryption Set itself; " + howToFind
	}
	// A management.azure.com request URL, a portal link (…/resource/subscriptions/…/overview) or a
	// host pasted without scheme: the ID is inside.
	if i := strings.Index(lower, "/subscriptions/"); i >= 0 {
		inner := s[i:]
		if j := strings.IndexAny(inner, "?#"); j >= 0 {
			inner = inner[:j]
		}
		if id, e := parse(inner); e == nil { // inner starts with '/', so this recursion ends
			return fmt.Sprintf("drop the host: use %q", id.String())
		}
		if segs := strings.Split(inner[1:], "/"); len(segs) > 8 {
			if id, e := parse("/" + strings.Join(segs[:8], "/")); e == nil {
				return fmt.Sprintf("drop the host and what follows the name: use %q", id.String())
			}
		}
		_, e := parse(inner)
		return "drop the host: the ID starts at /subscriptions/; and then " + e.brief()
	}
	switch {
	case hadScheme:
		return "a URL is not a resource ID; " + howToFind
	case isTemplate(s):
		return "this is an unrendered template placeholder: set the value it stands for; " + howToFind
	case strings.HasPrefix(lower, "subscriptions/"):
		return `add the leading "/"`
	case IsGUID(s):
		return "this is only a GUID (a subscription or object ID?); give the Disk Encryption Set's full resource ID: " + howToFind
	case checkName(s) == "":
		return "this looks like just the name; give the Disk Encryption Set's full resource ID: " + howToFind
	}
	return howToFind
}

func subscriptionHint(sub string, parts []string) string {
	switch {
	case len(sub) == 38 && IsGUID(sub[1:37]) && (sub[0] == '{' && sub[37] == '}' || sub[0] == '(' && sub[37] == ')'):
		return "remove the brackets around the GUID"
	case isPlaceholder(sub):
		hint := fmt.Sprintf("%q is the documentation's placeholder: replace it with your subscription GUID", clip(sub, 60))
		// Bare "resourceGroup" and "diskEncryptionSet" are valid names, so they are never rejected on
		// their own (rejecting a real ID would be worse than the lookup saying "not found"); but next
		// to a placeholder subscription they are placeholders too, and saying so saves a round trip.
		var others []string
		if len(parts) > 3 && isPlaceholderRG(parts[3]) {
			others = append(others, fmt.Sprintf("%q with your resource group name", clip(parts[3], 60)))
		}
		if len(parts) > 7 && isPlaceholderName(parts[7]) {
			others = append(others, fmt.Sprintf("%q with your Disk Encryption Set name", clip(parts[7], 60)))
		}
		if len(others) > 0 {
			hint += ", " + strings.Join(others, ", ")
		}
		return hint + "; " + howToFind
	case len(sub) != 36:
		return fmt.Sprintf("it has %d characters, a GUID has 36 (`az account show --query id -o tsv` prints yours)", len(sub))
	}
	for i, c := range sub {
		if isDashPosition(i) && c != '-' {
			return fmt.Sprintf("a GUID has '-' at character %d (8-4-4-4-12), found %q", i+1, c)
		}
		if !isDashPosition(i) && !isHex(c) {
			return fmt.Sprintf("%q at character %d is not a hexadecimal digit (0-9, a-f)", c, i+1)
		}
	}
	return "" // unreachable for a non-GUID of length 36
}

// isPlaceholder recognises the placeholders of documentation and templates in the subscription
// segment, where no word is valid, so guessing generously costs nothing.
func isPlaceholder(sub string) bool {
	if isTemplate(sub) {
		return true
	}
	switch strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(sub)) {
	case "subscriptionid", "subscription", "subid", "sub", "mysubscription", "mysubscriptionid", "yoursubscriptionid":
		return true
	}
	// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx
	return len(sub) == 36 && strings.Trim(strings.ToLower(sub), "x-") == "" && IsGUID(strings.NewReplacer("x", "0", "X", "0").Replace(sub))
}

func isPlaceholderRG(s string) bool {
	switch strings.ToLower(s) {
	case "resourcegroup", "resourcegroupname", "myresourcegroup", "rgname":
		return true
	}
	return isTemplate(s)
}

func isPlaceholderName(s string) bool {
	switch strings.ToLower(s) {
	case "diskencryptionset", "diskencryptionsetname", "mydiskencryptionset", "desname":
		return true
	}
	return isTemplate(s)
}

// placeholderHint explains a resource group or name that is a template placeholder. Only the
// bracketed forms count here: bare words are valid names (see subscriptionHint).
func placeholderHint(s string) string {
	if isTemplate(s) {
		return fmt.Sprintf("%q is a template placeholder: replace it with the real value", clip(s, 60))
	}
	return ""
}

// isTemplate recognises <name>, {name}, {{ .Values.name }}, ${NAME}, $(NAME), $NAME and %NAME%.
// None of these characters is valid in any segment, so this never rejects a real ID.
func isTemplate(s string) bool {
	enclosed := func(opening, closing string) bool {
		return len(s) > len(opening)+len(closing) && strings.HasPrefix(s, opening) && strings.HasSuffix(s, closing)
	}
	return enclosed("<", ">") || enclosed("{", "}") || enclosed("${", "}") || enclosed("$(", ")") || enclosed("%", "%") ||
		len(s) > 1 && s[0] == '$' && strings.Trim(s[1:], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

func otherTypeHint(t string) string {
	hint := fmt.Sprintf("this is the ID of a %s resource, not a Disk Encryption Set", clip(t, 100))
	if strings.HasPrefix(strings.ToLower(t), "microsoft.keyvault/") {
		hint += " (a Disk Encryption Set references a Key Vault key; disks need the set's ID)"
	}
	return hint + "; " + howToFind
}

// nearDESType tells a misspelt Microsoft.Compute/diskEncryptionSets (a missing 's', a typo) from
// another resource type, so the hint says "check the spelling" rather than "wrong resource".
func nearDESType(t string) bool {
	const want = "microsoft.compute/diskencryptionsets"
	return len(t) < 2*len(want) && editDistance(strings.ToLower(t), want) <= 3
}

// editDistance is the Levenshtein distance in bytes; the callers bound the lengths.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
