package celpolicy

import (
	"strconv"
	"strings"
)

// Helpers that write CEL source. Every value taken from the policy or the catalog enters an
// expression through str (a string literal), never by concatenating source text.

// str renders s as a CEL string literal. Go's ASCII quoting uses only escapes that CEL shares
// (\a \b \f \n \r \t \v \\ \" \xHH \uHHHH \UHHHHHHHH) and keeps the expression ASCII; the tests
// round-trip arbitrary strings through the CEL parser.
func str(s string) string { return strconv.QuoteToASCII(s) }

// rawRegex renders a regular expression as a CEL raw string literal, which keeps its backslashes
// readable, or as a quoted one when a raw literal cannot hold it.
func rawRegex(re string) string {
	if strings.ContainsAny(re, "'\r\n") || strings.HasSuffix(re, `\`) {
		return str(re)
	}
	return "r'" + re + "'"
}

// opt renders optional field selection: root.?a.?b, an optional that is empty when any field on the
// way is absent.
func opt(root string, fields ...string) string {
	var b strings.Builder
	b.WriteString(root)
	for _, f := range fields {
		b.WriteString(".?" + f)
	}
	return b.String()
}

// present renders the test that the object at root.a.b... exists: has(root.a) && has(root.a.b).
func present(root string, fields ...string) string {
	parts := make([]string, 0, len(fields))
	for i := range fields {
		parts = append(parts, "has("+root+"."+strings.Join(fields[:i+1], ".")+")")
	}
	return strings.Join(parts, " && ")
}

// strList renders a CEL list of string literals.
func strList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = str(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// lowered renders e (a string) as strings.ToLower(strings.TrimSpace(e)) computes it, for every value
// whose result is ASCII (see nonASCIILowering): the catalog keys VM sizes that way.
func lowered(e string) string {
	var b strings.Builder
	b.WriteString(e + ".trim()")
	for _, p := range nonASCIILowering() {
		b.WriteString(".replace(" + str(string(p[0])) + ", " + str(string(p[1])) + ")")
	}
	b.WriteString(".lowerAscii()")
	return b.String()
}

// clipped renders e (a string) shortened like desid clips what it echoes: the head and the tail,
// where trailing slashes and extra segments are.
func clipped(e string, n int) string {
	head, tail := n*3/4, n/4
	return "(" + e + ".size() > " + strconv.Itoa(n) + " ? " + e + ".substring(0, " + strconv.Itoa(head) + `) + "..." + ` +
		e + ".substring(" + e + ".size() - " + strconv.Itoa(tail) + ") : " + e + ")"
}
