package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/yamlpatch"
)

// writePatchedManifests writes the input files with each object's patch applied (check -o yaml).
// A document without a patch is written as it was read, byte for byte; a patched one is edited in
// its YAML node tree (internal/yamlpatch) and checked against the same patch applied to its JSON
// form, so that what is written is exactly what the webhook would store. Several files are written
// as one stream, each after a "# Source:" comment.
func writePatchedManifests(w io.Writer, files []manifest.File, objs []manifest.Object, decisions map[*manifest.Object]*policy.Decision) error {
	type docKey struct {
		file string
		doc  int
	}
	ops := map[docKey][]jsonpatch.Operation{}
	for i := range objs {
		d := decisions[&objs[i]]
		if d == nil || len(d.Patch) == 0 {
			continue
		}
		prefix := ""
		for _, idx := range objs[i].Item {
			prefix += "/items/" + strconv.Itoa(idx)
		}
		k := docKey{objs[i].File, objs[i].Doc}
		for _, op := range d.Patch {
			op.Path = prefix + op.Path
			ops[k] = append(ops[k], op)
		}
	}
	for fi, f := range files {
		if len(files) > 1 {
			if fi > 0 {
				if _, err := io.WriteString(w, "---\n"); err != nil {
					return err
				}
			}
			if _, err := fmt.Fprintf(w, "# Source: %s\n", f.Path); err != nil {
				return err
			}
		}
		endsInNewline := true
		for di, doc := range f.Documents {
			out := doc.Raw
			if p := ops[docKey{f.Path, di}]; len(p) > 0 {
				var err error
				if out, err = patchDocument(doc, p); err != nil {
					return fmt.Errorf("%s:%d: writing the patched document: %w", f.Path, doc.Line, err)
				}
			}
			if _, err := w.Write(doc.Separator); err != nil {
				return err
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
			switch {
			case len(out) > 0:
				endsInNewline = out[len(out)-1] == '\n'
			case len(doc.Separator) > 0:
				endsInNewline = doc.Separator[len(doc.Separator)-1] == '\n'
			}
		}
		if fi < len(files)-1 && !endsInNewline {
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
	}
	return nil
}

func patchDocument(doc manifest.Document, ops []jsonpatch.Operation) ([]byte, error) {
	if doc.Node == nil {
		return nil, fmt.Errorf("the YAML node parser could not read the document")
	}
	if err := yamlpatch.Apply(doc.Node, ops); err != nil {
		return nil, err
	}
	out, err := yamlpatch.Marshal(doc.Node)
	if err != nil {
		return nil, err
	}
	// The same patch on the JSON form, by a JSON patch library: the edit must mean exactly that.
	js, err := yaml.YAMLToJSON(doc.Raw)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatchv5.DecodePatch(raw)
	if err != nil {
		return nil, err
	}
	want, err := p.Apply(js)
	if err != nil {
		return nil, err
	}
	got, err := yaml.YAMLToJSON(out)
	if err != nil {
		return nil, err
	}
	var g, wnt any
	if err := json.Unmarshal(got, &g); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(want, &wnt); err != nil {
		return nil, err
	}
	if !reflect.DeepEqual(g, wnt) {
		return nil, fmt.Errorf("the YAML edit and the JSON patch disagree (a bug): yaml %s, json %s", got, want)
	}
	return out, nil
}
