// Package manifest reads Kubernetes manifests (multi-document YAML, JSON, List objects) from files,
// directories and stdin, keeping where each object came from so that every message can point at a
// file and line.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
// files in lexical order.
func ReadPaths(paths []string, stdin io.Reader) ([]Object, error) {
	var out []Object
	for _, p := range paths {
		if p == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading stdin: %w", err)
			}
			objs, err := Parse("-", data)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			objs, err := Parse(f, data)
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
	}
	return out, nil
}

func expand(p string) ([]string, error) {
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
	var out []Object
	for _, doc := range splitDocuments(data) {
		if len(bytes.TrimSpace(stripComments(doc.text))) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc.text)
		if err != nil {
			return nil, &Error{File: file, Line: doc.line, Err: err}
		}
		objs, err := objectsOf(js)
		if err != nil {
			return nil, &Error{File: file, Line: doc.line, Err: err}
		}
		line := doc.line + leadingNonContent(doc.text)
		for _, o := range objs {
			o.File, o.Line = file, line
			out = append(out, o)
		}
	}
	return out, nil
}

type document struct {
	text []byte
	line int
}

// splitDocuments splits on YAML document separators ("---" at the start of a line), remembering the
// line each document starts on. JSON input has no separators and comes back whole.
func splitDocuments(data []byte) []document {
	var docs []document
	var cur bytes.Buffer
	start, n := 1, 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "---" || strings.HasPrefix(line, "--- ") || strings.HasPrefix(line, "---\t") {
			docs = append(docs, document{text: slices.Clone(cur.Bytes()), line: start})
			cur.Reset()
			start = n + 1
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	return append(docs, document{text: cur.Bytes(), line: start})
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

func objectsOf(js []byte) ([]Object, error) {
	js = bytes.TrimSpace(js)
	if bytes.Equal(js, []byte("null")) {
		return nil, nil
	}
	if len(js) > 0 && js[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(js, &items); err != nil {
			return nil, err
		}
		return objectsOfItems(items)
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	meta, err := objmeta.Decode(js)
	if err == nil {
		err = json.Unmarshal(js, &list)
	}
	if err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if meta.Kind == "" {
		return nil, fmt.Errorf("document has no kind")
	}
	if strings.HasSuffix(meta.Kind, "List") && list.Items != nil {
		return objectsOfItems(list.Items)
	}
	return []Object{{
		JSON: js, APIVersion: meta.APIVersion, Kind: meta.Kind,
		Namespace: meta.Namespace, Name: meta.DisplayName(), Labels: meta.Labels,
	}}, nil
}

func objectsOfItems(items []json.RawMessage) ([]Object, error) {
	var out []Object
	for i, it := range items {
		objs, err := objectsOf(it)
		if err != nil {
			return nil, fmt.Errorf("items[%d]: %w", i, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}
