// Package manifest reads Kubernetes manifests (multi-document YAML, JSON, List objects) from files,
// directories and stdin, keeping where each object came from so that every message can point at a
// file and line, down to the line of a field, and keeping each file's documents byte for byte so that
// `check -o yaml` can write back what it did not change exactly as it was.
package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
)

// Object is one manifest object as JSON, with its origin.
type Object struct {
	// JSON is the object converted to JSON; it is never re-encoded from Go types, so nothing the
	// reader does can drop a field.
	JSON       []byte
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	Labels     map[string]string
	// File and Line locate the start of the document ("-" for stdin).
	File string
	Line int
	// Doc is the index of the object's document in its File's Documents; Item is the path of list
	// indexes to it inside that document (empty for a document that is the object itself; [2] for the
	// third item of a List).
	Doc  int
	Item []int
	// node is the object in the YAML node tree of its document (nil when the node parser refused a
	// document the JSON conversion accepted); it gives field lines.
	node *yamlv3.Node
	// tree, when node is nil, parses the object's document into its node tree on the first
	// FieldLine (ParseDocumentDeferred).
	tree *deferredTree
	// lineOffset turns a node's line (counted from its document's first line) into a line of File.
	lineOffset int
}

// File is one input file with its documents, in order.
type File struct {
	Path      string
	Documents []Document
}

// Document is one YAML document of a file.
type Document struct {
	// Separator is the "---" line (with its line break) that precedes the document, empty for a
	// first document without one. Separator and Raw of every document, concatenated, are the file.
	Separator []byte
	Raw       []byte
	// Line is the file line of the document's first line.
	Line int
	// Node is the document parsed as a YAML node tree (nil for an empty document, or one the node
	// parser refused). Objects of the document point into it.
	Node *yamlv3.Node
	// Objects are the document's objects: none (empty), one, or a List's items.
	Objects []Object
}

// Error is an unreadable document, with its position.
type Error struct {
	File string
	Line int
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// ReadPaths reads every path: "-" is stdin, a directory is walked for *.yaml, *.yml and *.json
// files in lexical order. It returns the objects of every file, in order.
func ReadPaths(paths []string, stdin io.Reader) ([]Object, error) {
	files, err := ReadFiles(paths, stdin)
	if err != nil {
		return nil, err
	}
	return Objects(files), nil
}

// ReadFiles reads every path as ReadPaths does, keeping files and documents.
func ReadFiles(paths []string, stdin io.Reader) ([]File, error) {
	var out []File
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			f, err := ParseFile("-", data)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
			continue
		}
		files, err := Expand(p)
		if err != nil {
			return nil, err
		}
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				return nil, err
			}
			f, err := ParseFile(name, data)
			if err != nil {
				return nil, err
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// Objects returns the objects of files, in order.
func Objects(files []File) []Object {
	var out []Object
	for _, f := range files {
		for _, d := range f.Documents {
			out = append(out, d.Objects...)
		}
	}
	return out
}

// Expand lists the files a path stands for, as ReadFiles reads them: the path itself, or a
// directory's *.yaml, *.yml and *.json files in lexical order.
func Expand(p string) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	slices.Sort(files)
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("%s: no .yaml, .yml or .json files", p)
	}
	return files, err
}

// Parse splits data into documents and objects. Empty documents are skipped; a document that is a
// List (kind: List, or *List with items) contributes its items.
func Parse(file string, data []byte) ([]Object, error) {
	f, err := ParseFile(file, data)
	if err != nil {
		return nil, err
	}
	return Objects([]File{f}), nil
}

// ParseFile splits data into documents and their objects.
func ParseFile(file string, data []byte) (File, error) {
	f := File{Path: file}
	for i, doc := range splitDocuments(data) {
		doc.index = i
		d, err := ParseDocument(file, doc)
		if err != nil {
			return File{}, err
		}
		f.Documents = append(f.Documents, d)
	}
	return f, nil
}

// ParseDocument parses one document of file, as split by splitDocuments or a Decoder, into its
// objects. The error is an *Error at the document's line.
func ParseDocument(file string, doc RawDocument) (Document, error) {
	d := Document{Separator: doc.sep, Raw: doc.raw, Line: doc.line}
	if len(bytes.TrimSpace(stripComments(doc.raw))) == 0 {
		return d, nil
	}
	js, err := yaml.YAMLToJSON(doc.raw)
	if err != nil {
		return Document{}, &Error{File: file, Line: doc.line, Err: err}
	}
	var node yamlv3.Node
	if yamlv3.Unmarshal(doc.raw, &node) == nil && node.Kind == yamlv3.DocumentNode && len(node.Content) == 1 {
		d.Node = &node
	}
	var root *yamlv3.Node
	if d.Node != nil {
		root = d.Node.Content[0]
	}
	objs, err := objectsOf(js, root, nil)
	if err != nil {
		return Document{}, &Error{File: file, Line: doc.line, Err: err}
	}
	line := doc.line + leadingNonContent(doc.raw)
	for _, o := range objs {
		o.File, o.Line, o.Doc, o.lineOffset = file, line, doc.index, doc.line-1
		if o.node != nil && o.node.Line > 0 {
			// The object's own first line: a List item's, not its List's.
			o.Line = o.lineOffset + o.node.Line
		}
		d.Objects = append(d.Objects, o)
	}
	return d, nil
}

// ParseDocumentDeferred is ParseDocument for a caller that needs the line of few fields (streaming
// `check`: only findings have one, and most objects have none): a document that holds one object
// plainly written, the usual case, gets its YAML node tree only when FieldLine first asks for it,
// which halves the parsing of such input. Its Document.Node stays nil, so it does not serve
// `check -o yaml`. The objects, their lines and every FieldLine are those of ParseDocument.
func ParseDocumentDeferred(file string, doc RawDocument) (Document, error) {
	d := Document{Separator: doc.sep, Raw: doc.raw, Line: doc.line}
	body := bytes.TrimSpace(stripComments(doc.raw))
	if len(body) == 0 {
		return d, nil
	}
	// A directive, tag, anchor or alias before the object, or a sequence, may start the node tree on
	// another line than the first content line, or make a List: those take the eager path.
	if !plainStart(body[0]) {
		return ParseDocument(file, doc)
	}
	js, err := yaml.YAMLToJSON(doc.raw)
	if err != nil {
		return Document{}, &Error{File: file, Line: doc.line, Err: err}
	}
	objs, err := objectsOf(js, nil, nil)
	if err != nil {
		return Document{}, &Error{File: file, Line: doc.line, Err: err}
	}
	if len(objs) != 1 || len(objs[0].Item) != 0 {
		return ParseDocument(file, doc)
	}
	o := objs[0]
	// ParseDocument places the object at its root node's line: for a mapping that starts on the first
	// content line, as plainStart ensures, that line.
	o.File, o.Line, o.Doc, o.lineOffset = file, doc.line+leadingNonContent(doc.raw), doc.index, doc.line-1
	o.tree = &deferredTree{raw: doc.raw}
	d.Objects = []Object{o}
	return d, nil
}

// plainStart says whether a document whose first content byte is c starts its root mapping on that
// line: a key or a flow mapping, not a directive (%), tag (!), anchor (&), alias (*), sequence or
// complex key.
func plainStart(c byte) bool {
	return c == '{' || c == '"' || c == '\'' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// deferredTree is a document's YAML node tree, parsed on first use.
type deferredTree struct {
	once sync.Once
	raw  []byte
	node *yamlv3.Node
}

// root is the document's root node, as ParseDocument keeps it (nil when the node parser refuses
// the document).
func (t *deferredTree) root() *yamlv3.Node {
	t.once.Do(func() {
		var node yamlv3.Node
		if yamlv3.Unmarshal(t.raw, &node) == nil && node.Kind == yamlv3.DocumentNode && len(node.Content) == 1 {
			t.node = node.Content[0]
		}
		t.raw = nil
	})
	return t.node
}

// RawDocument is one document as split from its file, not parsed yet: a Decoder's unit, so that a
// caller can look at the bytes (or skip the document) before paying for ParseDocument.
type RawDocument struct {
	sep, raw []byte
	line     int
	index    int
}

// Raw is the document's bytes, without its separator line.
func (d RawDocument) Raw() []byte { return d.raw }

// Index is the document's position in its file, from 0 (Object.Doc).
func (d RawDocument) Index() int { return d.index }

// Line is the file line of the document's first line.
func (d RawDocument) Line() int { return d.line }

// splitDocuments splits on YAML document separators ("---" at the start of a line), remembering the
// line each document starts on and keeping the bytes as they are (line breaks included), so that the
// separators and documents put back together are the input. JSON input has no separators and comes
// back whole.
func splitDocuments(data []byte) []RawDocument {
	var docs []RawDocument
	cur := RawDocument{line: 1}
	start, n := 0, 0
	for pos := 0; pos < len(data); {
		end := bytes.IndexByte(data[pos:], '\n')
		next := len(data)
		if end >= 0 {
			next = pos + end + 1
		}
		n++
		if isSeparator(data[pos:next]) {
			cur.raw = data[start:pos]
			docs = append(docs, cur)
			cur = RawDocument{sep: data[pos:next], line: n + 1}
			start = next
		}
		pos = next
	}
	cur.raw = data[start:]
	return append(docs, cur)
}

// isSeparator says whether line (with or without its line break) is a YAML document separator.
func isSeparator(line []byte) bool {
	l := bytes.TrimRight(line, "\r\n")
	return bytes.Equal(l, []byte("---")) || bytes.HasPrefix(l, []byte("--- ")) || bytes.HasPrefix(l, []byte("---\t"))
}

// leadingNonContent counts the blank and comment lines before a document's first content line, so
// that positions point at the object (its apiVersion) rather than at a comment above it.
func leadingNonContent(b []byte) int {
	n := 0
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			return n
		}
		n++
	}
	return 0
}

func stripComments(b []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out.Write(l)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// objectsOf decodes js into objects; node is the same value as a YAML node (nil if unknown), and item
// the list indexes that lead to it.
func objectsOf(js []byte, node *yamlv3.Node, item []int) ([]Object, error) {
	js = bytes.TrimSpace(js)
	if bytes.Equal(js, []byte("null")) {
		return nil, nil
	}
	if len(js) > 0 && js[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(js, &items); err != nil {
			return nil, err
		}
		return objectsOfItems(items, node, item)
	}
	meta, err := objmeta.Decode(js)
	if err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if meta.Kind == "" {
		return nil, fmt.Errorf("document has no kind")
	}
	// Only a List's items are looked for: reading them scans the whole object again.
	if strings.HasSuffix(meta.Kind, "List") {
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(js, &list); err != nil {
			return nil, fmt.Errorf("not a Kubernetes object: %w", err)
		}
		if list.Items != nil {
			return objectsOfItems(list.Items, mappingValue(node, "items"), item)
		}
	}
	return []Object{{
		JSON: js, APIVersion: meta.APIVersion, Kind: meta.Kind,
		Namespace: meta.Namespace, Name: meta.DisplayName(), Labels: meta.Labels,
		Item: item, node: node,
	}}, nil
}

func objectsOfItems(items []json.RawMessage, seq *yamlv3.Node, item []int) ([]Object, error) {
	var out []Object
	for i, it := range items {
		var n *yamlv3.Node
		if seq != nil && seq.Kind == yamlv3.SequenceNode && i < len(seq.Content) {
			n = seq.Content[i]
		}
		objs, err := objectsOf(it, n, append(slices.Clone(item), i))
		if err != nil {
			return nil, fmt.Errorf("items[%d]: %w", i, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// mappingValue returns the value of key in a mapping node, or nil.
func mappingValue(n *yamlv3.Node, key string) *yamlv3.Node {
	_, v := mappingEntry(n, key)
	return v
}

// mappingEntry returns the key and value nodes of key in a mapping node, or nils.
func mappingEntry(n *yamlv3.Node, key string) (*yamlv3.Node, *yamlv3.Node) {
	n = resolveAlias(n)
	if n == nil || n.Kind != yamlv3.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

func resolveAlias(n *yamlv3.Node) *yamlv3.Node {
	for n != nil && n.Kind == yamlv3.AliasNode {
		n = n.Alias
	}
	return n
}

// FieldLine returns the file line of a field of the object, given as the policy prints field paths
// (spec.template.spec.dataDisks[1].managedDisk.diskEncryptionSet.id). A field that is absent (a
// missing Disk Encryption Set) is placed at its deepest present parent; without a node tree, at the
// object.
func (o Object) FieldLine(field string) int {
	n := o.node
	if n == nil && o.tree != nil {
		n = o.tree.root()
	}
	if n == nil || n.Line == 0 {
		return o.Line
	}
	// The line of a map entry is its key's: for a nested mapping that is the "key:" line, not the
	// line of its first child.
	line := n.Line
	segs := splitField(field)
	for i := 0; i < len(segs) && n != nil; i++ {
		s := segs[i]
		var next, at *yamlv3.Node
		if s.index >= 0 {
			if c := resolveAlias(n); c.Kind == yamlv3.SequenceNode && s.index < len(c.Content) {
				next = c.Content[s.index]
				at = next
			}
		} else {
			// A key may itself hold dots (annotation keys): try the longest run of segments first.
			for j := len(segs); j > i && next == nil; j-- {
				if k, ok := joinKeys(segs[i:j]); ok {
					if at, next = mappingEntry(n, k); next != nil {
						i = j - 1
					}
				}
			}
		}
		n = next
		if at != nil && at.Line > 0 {
			line = at.Line
		}
	}
	return o.lineOffset + line
}

type fieldSegment struct {
	key   string
	index int // >= 0 for a list index
}

// splitField splits "a.b[2].c" into a, b, [2], c.
func splitField(field string) []fieldSegment {
	var out []fieldSegment
	for _, part := range strings.Split(field, ".") {
		key := part
		var idx []int
		for strings.HasSuffix(key, "]") {
			open := strings.LastIndexByte(key, '[')
			if open < 0 {
				break
			}
			i, err := strconv.Atoi(key[open+1 : len(key)-1])
			if err != nil {
				break
			}
			idx = append([]int{i}, idx...)
			key = key[:open]
		}
		if key != "" {
			out = append(out, fieldSegment{key: key, index: -1})
		}
		for _, i := range idx {
			out = append(out, fieldSegment{index: i})
		}
	}
	return out
}

// joinKeys joins map-key segments with dots; false if one of them is a list index.
func joinKeys(segs []fieldSegment) (string, bool) {
	keys := make([]string, len(segs))
	for i, s := range segs {
		if s.index >= 0 {
			return "", false
		}
		keys[i] = s.key
	}
	return strings.Join(keys, "."), true
}
