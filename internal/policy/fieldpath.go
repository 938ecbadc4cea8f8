package policy

import (
	"encoding/json"
	"strconv"
	"strings"
)

// fieldPath is a path into an object, kept as segments so that it can be printed both as the
// dotted form people read (spec.dataDisks[1].managedDisk) and as the JSON pointer a patch needs.
type fieldPath []segment

type segment struct {
	key   string
	index int // >= 0 for an array element; key is then unused
}

func pathOf(keys ...string) fieldPath {
	p := make(fieldPath, 0, len(keys))
	for _, k := range keys {
		p = append(p, segment{key: k, index: -1})
	}
	return p
}

// child returns a new path; it never aliases p's backing array, since paths are built in loops.
func (p fieldPath) child(keys ...string) fieldPath {
	out := make(fieldPath, len(p), len(p)+len(keys))
	copy(out, p)
	for _, k := range keys {
		out = append(out, segment{key: k, index: -1})
	}
	return out
}

func (p fieldPath) at(i int) fieldPath {
	out := make(fieldPath, len(p), len(p)+1)
	copy(out, p)
	return append(out, segment{index: i})
}

func (p fieldPath) String() string {
	var b strings.Builder
	for i, s := range p {
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

// pointerEscaper escapes a key for a JSON pointer (RFC 6901). Built once: a Replacer's tables cost
// far more than the paths it escapes.
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// Pointer renders the path as an RFC 6901 JSON pointer.
func (p fieldPath) Pointer() string {
	var b strings.Builder
	for _, s := range p {
		b.WriteByte('/')
		if s.index >= 0 {
			b.WriteString(strconv.Itoa(s.index))
			continue
		}
		b.WriteString(pointerEscaper.Replace(s.key))
	}
	return b.String()
}

// lookup walks obj along p. It reports the value and whether every segment existed; a JSON null is
// reported as present with a nil value.
func lookup(obj any, p fieldPath) (any, bool) {
	cur := obj
	for _, s := range p {
		if s.index >= 0 {
			arr, ok := cur.([]any)
			if !ok || s.index >= len(arr) {
				return nil, false
			}
			cur = arr[s.index]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		v, ok := m[s.key]
		if !ok {
			return nil, false
		}
		cur = v
	}
	return cur, true
}

func lookupMap(obj any, p fieldPath) map[string]any {
	v, _ := lookup(obj, p)
	m, _ := v.(map[string]any)
	return m
}

func lookupSlice(obj any, p fieldPath) []any {
	v, _ := lookup(obj, p)
	s, _ := v.([]any)
	return s
}

// lookupString returns the string at p; present is true when the field exists (with any type), so
// callers can tell "absent" from "not a string".
func lookupString(obj any, p fieldPath) (value string, isString, present bool) {
	v, ok := lookup(obj, p)
	if !ok || v == nil {
		return "", false, false
	}
	s, isStr := v.(string)
	return s, isStr, true
}

// lookupBool reports whether the field at p is the boolean true (absent, null or another type: false).
func lookupBool(obj any, p fieldPath) bool {
	v, _ := lookup(obj, p)
	b, _ := v.(bool)
	return b
}

// identity renders p with every list index replaced by the identity of the element it points at in
// obj, so that a finding follows its element when a list is reordered or grows: a data disk is named
// by its nameSuffix (CAPZ requires it and keeps it unique) or else its lun, a VM extension by its
// name, a string item (an ASO patch) by its text. Elements with none of these keep their index.
func identity(obj any, p fieldPath) string {
	var b strings.Builder
	cur := obj
	for i, s := range p {
		if s.index < 0 {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.key)
			m, _ := cur.(map[string]any)
			cur = m[s.key]
			continue
		}
		arr, _ := cur.([]any)
		var elem any
		if s.index < len(arr) {
			elem = arr[s.index]
		}
		b.WriteString("[" + elementIdentity(elem, s.index) + "]")
		cur = elem
	}
	return b.String()
}

func elementIdentity(elem any, index int) string {
	switch t := elem.(type) {
	case map[string]any:
		for _, k := range []string{"nameSuffix", "lun", "name"} {
			switch v := t[k].(type) {
			case string:
				if v != "" {
					return k + "=" + strconv.Quote(v)
				}
			case json.Number:
				return k + "=" + v.String()
			case float64:
				return k + "=" + strconv.FormatFloat(v, 'g', -1, 64)
			}
		}
	case string:
		return "=" + strconv.Quote(t)
	}
	return strconv.Itoa(index)
}
