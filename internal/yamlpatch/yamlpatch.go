// Package yamlpatch applies RFC 6902 add and replace operations — the only ones the policy's
// mutation produces — to a YAML document's node tree, and writes the document back. Editing the node
// tree instead of re-encoding the decoded object keeps what a GitOps repository cares about in the
// rest of the document: comments, key order, quoting and block styles, anchors.
//
// What a rewritten document loses (yaml.v3 cannot keep it): blank lines, the original indentation
// where it was inconsistent (the document's first nested indent is used everywhere), the spacing
// before a line comment (one space), and the position of some comments next to flow collections.
// Documents without a patch are not rewritten at all (see `check -o yaml`).
package yamlpatch

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"gomodules.xyz/jsonpatch/v2"
)

// Apply applies ops to doc, a DocumentNode (or the node of the object inside it). Only "add" and
// "replace" are supported.
func Apply(doc *yaml.Node, ops []jsonpatch.Operation) error {
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) != 1 {
			return fmt.Errorf("empty document")
		}
		root = root.Content[0]
	}
	for _, op := range ops {
		if err := apply(root, op); err != nil {
			return fmt.Errorf("%s %s: %w", op.Operation, op.Path, err)
		}
	}
	return nil
}

func apply(root *yaml.Node, op jsonpatch.Operation) error {
	if op.Operation != "add" && op.Operation != "replace" {
		return fmt.Errorf("unsupported operation (only add and replace)")
	}
	segs, err := splitPointer(op.Path)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return fmt.Errorf("replacing the whole document is not supported")
	}
	parent := root
	for i, s := range segs[:len(segs)-1] {
		if parent = child(parent, s); parent == nil {
			return fmt.Errorf("no %s", "/"+strings.Join(segs[:i+1], "/"))
		}
	}
	value := &yaml.Node{}
	if err := value.Encode(op.Value); err != nil {
		return err
	}
	last := segs[len(segs)-1]
	parent = deref(parent)
	switch parent.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(parent.Content); i += 2 {
			if parent.Content[i].Value == last {
				keepComments(value, parent.Content[i+1])
				parent.Content[i+1] = value
				return nil
			}
		}
		if op.Operation == "replace" {
			return fmt.Errorf("no such key")
		}
		key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: last}
		parent.Content = append(parent.Content, key, value)
		return nil
	case yaml.SequenceNode:
		if last == "-" && op.Operation == "add" {
			parent.Content = append(parent.Content, value)
			return nil
		}
		idx, err := strconv.Atoi(last)
		if err != nil || idx < 0 || idx > len(parent.Content) || (op.Operation == "replace" && idx == len(parent.Content)) {
			return fmt.Errorf("index %s out of range", last)
		}
		if op.Operation == "replace" {
			keepComments(value, parent.Content[idx])
			parent.Content[idx] = value
			return nil
		}
		parent.Content = append(parent.Content[:idx], append([]*yaml.Node{value}, parent.Content[idx:]...)...)
		return nil
	default:
		return fmt.Errorf("parent is not a mapping or a sequence")
	}
}

// keepComments moves the comments of a replaced node to its replacement: replace fills an empty
// placeholder (diskEncryptionSet.id: "" # TODO), and the comment next to it stays.
func keepComments(to, from *yaml.Node) {
	to.HeadComment, to.LineComment, to.FootComment = from.HeadComment, from.LineComment, from.FootComment
}

func child(n *yaml.Node, seg string) *yaml.Node {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}

// deref follows an alias: a patch below an alias changes the anchored node, as it would the value
// the alias stands for.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// splitPointer splits an RFC 6901 JSON pointer into unescaped segments.
func splitPointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("not a JSON pointer")
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

// Marshal writes the document back with the indentation its original lines used: the indent of the
// first nested mapping, and sequences indented under their key or not ("key:\n- a", as kubectl and
// kustomize write them) as the first block sequence was.
func Marshal(doc *yaml.Node) ([]byte, error) {
	st := style{indent: 2}
	st.detect(doc, &detected{})
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(st.indent)
	if st.compactSeq {
		enc.CompactSeqIndent()
	}
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type style struct {
	indent     int
	compactSeq bool
}

type detected struct{ indent, seq bool }

// detect looks at the positions of the original nodes (new ones have none) for a block mapping key
// under a block mapping key, and for a block sequence's first item under its key.
func (st *style) detect(n *yaml.Node, d *detected) {
	if d.indent && d.seq {
		return
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			st.detect(c, d)
		}
		return
	}
	if n.Kind != yaml.MappingNode || n.Style&yaml.FlowStyle != 0 {
		for _, c := range n.Content {
			st.detect(c, d)
		}
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Line == 0 || v.Line == 0 || v.Style&yaml.FlowStyle != 0 || len(v.Content) == 0 || v.Line == k.Line {
			st.detect(v, d)
			continue
		}
		first := v.Content[0]
		switch {
		case v.Kind == yaml.MappingNode && !d.indent && first.Column > k.Column:
			st.indent, d.indent = first.Column-k.Column, true
		case v.Kind == yaml.SequenceNode && !d.seq && first.Line > 0:
			// An item's node starts after "- ": at the key's column + 2 when compact.
			st.compactSeq, d.seq = first.Column-k.Column == 2, true
		}
		st.detect(v, d)
	}
}
