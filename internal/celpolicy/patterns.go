package celpolicy

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// DESIDPattern is the grammar of a Disk Encryption Set resource ID that package desid accepts, as a
// regular expression (RE2, which CEL's matches() uses): keywords in any case (RE2's (?i) folds
// exactly as strings.EqualFold does), a GUID subscription, a resource group of 1-90 Unicode letters
// (\p{L} is unicode.IsLetter), decimal digits (\p{Nd} is unicode.IsDigit), '_', '-', '.', '(' or ')'
// not ending in '.', a name of 1-80 ASCII letters, digits, '_' or '-', and nothing after it. Every
// character desid rejects as invisible, white space or not UTF-8 is outside these classes. The tests
// hold it to desid.Parse on desid's own test vectors and fuzz seeds.
const DESIDPattern = `^/(?i:subscriptions)/[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}` +
	`/(?i:resourcegroups)/[-\p{L}\p{Nd}_.()]{0,89}[-\p{L}\p{Nd}_()]` +
	`/(?i:providers)/(?i:microsoft\.compute)/(?i:diskencryptionsets)/[-A-Za-z0-9_]{1,80}$`

// adePublisherPattern matches a publisher equal to Microsoft.Azure.Security under strings.EqualFold,
// as policy's validateExtensions compares it.
const adePublisherPattern = `^(?i:microsoft\.azure\.security)$`

// ADENamePattern matches an extension name whose strings.ToLower starts with azurediskencryption,
// as policy's validateExtensions compares it.
var ADENamePattern = "^" + lowerClasses("azurediskencryption")

// AKSPatchPattern matches an ASO ManagedCluster patch that certainly sets a Disk Encryption Set: a
// key without JSON escapes whose strings.ToLower contains diskencryptionset, followed by a value that
// is not null. In valid JSON a quoted string followed by ':' is a key, and the word cannot occur
// outside strings; in invalid JSON the webhook searches the text for the word, which the match
// contains. So a match implies that the webhook denies too. The converse does not hold: a key
// spelled with \u escapes, or invalid JSON, passes here and is left to the webhook (see NotCompiled).
var AKSPatchPattern = `"[^"\\]*` + lowerClasses("diskencryptionset") + `[^"\\]*"[ \t\r\n]*:[ \t\r\n]*[^n \t\r\n]`

// lowerPreimages maps every ASCII character to the runes whose unicode.ToLower it is (strings.ToLower
// maps rune by rune). Besides the ASCII letters, U+0130 lowers to 'i' and U+212A (Kelvin) to 'k';
// computing the table from Go's own tables, rather than writing those two down, keeps it right if
// Unicode adds more.
var lowerPreimages = sync.OnceValue(func() map[rune][]rune {
	m := map[rune][]rune{}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if l := unicode.ToLower(r); l < 0x80 {
			m[l] = append(m[l], r)
		}
	}
	return m
})

// lowerClasses is a regular expression matching exactly the strings whose strings.ToLower is word
// (word is lower-case ASCII).
func lowerClasses(word string) string {
	var b strings.Builder
	for _, c := range word {
		b.WriteByte('[')
		for _, r := range lowerPreimages()[c] {
			if r < 0x80 {
				b.WriteString(regexp.QuoteMeta(string(r)))
			} else {
				fmt.Fprintf(&b, `\x{%X}`, r)
			}
		}
		b.WriteByte(']')
	}
	return b.String()
}

// nonASCIILowering lists the runes outside ASCII whose unicode.ToLower is ASCII, with that letter, in
// rune order. A CEL expression replaces them and then applies lowerAscii(): the result equals
// strings.ToLower for every string whose strings.ToLower is ASCII, which is all a lookup of an ASCII
// key needs.
func nonASCIILowering() [][2]rune {
	var out [][2]rune
	for l, rs := range lowerPreimages() {
		for _, r := range rs {
			if r >= 0x80 {
				out = append(out, [2]rune{r, l})
			}
		}
	}
	// Map iteration order is random; the output must not be.
	slices.SortFunc(out, func(a, b [2]rune) int { return cmp.Compare(a[0], b[0]) })
	return out
}
