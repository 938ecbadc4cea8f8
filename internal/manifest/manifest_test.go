package manifest

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

const multi = `# a comment before the first document
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureMachineTemplate
metadata:
  name: one
  annotations:
    capz-encryption-webhook.io/location: eastus
spec:
  template:
    spec:
      vmSize: Standard_D2s_v3
      osDisk:
        managedDisk:
          storageAccountType: Premium_LRS
      dataDisks:
      - nameSuffix: etcd
        managedDisk:
          diskEncryptionSet:
            id: /subscriptions/x
--- # second
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
- apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
  kind: AzureMachine
  metadata: {name: two}
  spec: {vmSize: Standard_D4s_v3}
---
---
{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "json"}}
`

func TestParseFileKeepsBytesAndPositions(t *testing.T) {
	for _, eol := range []string{"\n", "\r\n"} {
		data := bytes.ReplaceAll([]byte(multi), []byte("\n"), []byte(eol))
		f, err := ParseFile("m.yaml", data)
		if err != nil {
			t.Fatal(err)
		}
		var back []byte
		for _, d := range f.Documents {
			back = append(back, d.Separator...)
			back = append(back, d.Raw...)
		}
		if !bytes.Equal(back, data) {
			t.Errorf("eol %q: separators and documents do not put the file back together", eol)
		}
		if len(f.Documents) != 4 || len(f.Documents[2].Objects) != 0 {
			t.Fatalf("eol %q: %d documents, want 4 (one of them empty)", eol, len(f.Documents))
		}
		objs := Objects([]File{f})
		type pos struct {
			name string
			line int
			doc  int
			item []int
		}
		var got []pos
		for _, o := range objs {
			got = append(got, pos{o.Name, o.Line, o.Doc, o.Item})
		}
		want := []pos{{"one", 2, 0, nil}, {"a", 24, 1, []int{0}}, {"two", 27, 1, []int{1}}, {"json", 33, 3, nil}}
		if len(got) != len(want) {
			t.Fatalf("objects %+v", got)
		}
		for i := range want {
			if got[i].name != want[i].name || got[i].line != want[i].line || got[i].doc != want[i].doc || !slices.Equal(got[i].item, want[i].item) {
				t.Errorf("eol %q: object %d = %+v, want %+v", eol, i, got[i], want[i])
			}
		}
	}
}

func TestFieldLine(t *testing.T) {
	objs, err := Parse("m.yaml", []byte(multi))
	if err != nil {
		t.Fatal(err)
	}
	one, two, js := objs[0], objs[2], objs[3]
	cases := []struct {
		o     Object
		field string
		want  int
	}{
		{one, "spec.template.spec.vmSize", 11},
		{one, "spec.template.spec.dataDisks[0].managedDisk.diskEncryptionSet.id", 19},
		{one, "spec.template.spec.dataDisks[0]", 16},
		// Absent: the deepest present parent's key.
		{one, "spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id", 13},
		{one, "spec.template.spec.dataDisks[3].managedDisk", 15},
		{one, "spec.template.spec.securityProfile.encryptionAtHost", 10},
		// A key with dots.
		{one, "metadata.annotations.capz-encryption-webhook.io/location", 7},
		// A List item counts lines from the file, not from its document.
		{two, "spec.vmSize", 30},
		{js, "metadata.name", 33},
		{one, "", 2},
	}
	for _, c := range cases {
		if got := c.o.FieldLine(c.field); got != c.want {
			t.Errorf("%s %q: line %d, want %d", c.o.Name, c.field, got, c.want)
		}
	}
}

func TestParseErrorsNameTheDocument(t *testing.T) {
	_, err := Parse("bad.yaml", []byte("kind: A\n---\nkind: [\n"))
	if err == nil || err.Error()[:10] != "bad.yaml:3" {
		t.Errorf("error %v, want it at bad.yaml:3", err)
	}
	if _, err := Parse("nokind.yaml", []byte("apiVersion: v1\n")); err == nil {
		t.Error("a document without kind was accepted")
	}
}

// TestDecoderSplitsAsParseFile holds the streaming decoder to ParseFile's splitting: the same
// separators, bytes, lines and indexes, also for lines longer than the decoder's buffer.
func TestDecoderSplitsAsParseFile(t *testing.T) {
	long := strings.Repeat("x", 70<<10)
	for _, in := range []string{
		"", "\n", "---", "---\n", "a: 1\n", "a: 1", "---\na: 1\n---\nb: 2\n", "a: 1\n--- \nb: 2\n---\t# c\n\n---\n",
		"# head\n---\r\na: 1\r\n---\r\n", "a: " + long + "\n---\nb: 1\n", "--- " + long + "\nb: 1",
	} {
		want := splitDocuments([]byte(in))
		for i := range want {
			want[i].index = i
		}
		dec := NewDecoder("f", strings.NewReader(in))
		var got []RawDocument
		for {
			d, err := dec.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, d)
		}
		if len(got) != len(want) {
			t.Fatalf("%.40q: %d documents, want %d", in, len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			if string(g.sep) != string(w.sep) || string(g.raw) != string(w.raw) || g.line != w.line || g.index != w.index {
				t.Errorf("%.40q document %d: got sep %q line %d index %d raw %.40q, want sep %q line %d index %d raw %.40q",
					in, i, g.sep, g.line, g.index, g.raw, w.sep, w.line, w.index, w.raw)
			}
		}
	}
}

// TestDeferredParsingAsParseDocument holds ParseDocumentDeferred to ParseDocument: the same objects
// at the same lines, and the same line for every field asked, whether the document takes the
// deferred path (one plainly written object) or the eager one (Lists, tags, anchors, directives).
func TestDeferredParsingAsParseDocument(t *testing.T) {
	fields := []string{"", "metadata.name", "spec.template.spec.vmSize", "spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id",
		"spec.template.spec.dataDisks[0].lun", "spec.vmSize", "items[0]"}
	docs := []string{
		multi,
		"# comment\n\napiVersion: v1\nkind: A\nmetadata:\n  name: a\nspec:\n  template:\n    spec:\n      vmSize: x\n",
		"{\"apiVersion\": \"v1\", \"kind\": \"A\",\n \"metadata\": {\"name\": \"j\"},\n \"spec\": {\"vmSize\": \"s\"}}\n",
		"!!map\napiVersion: v1\nkind: A\nmetadata:\n  name: tagged\n",
		"&root\napiVersion: v1\nkind: A\nmetadata:\n  name: anchored\n",
		"%YAML 1.2\n---\napiVersion: v1\nkind: A\nmetadata:\n  name: directive\n",
		"- apiVersion: v1\n  kind: A\n  metadata:\n    name: seq0\n- apiVersion: v1\n  kind: A\n  metadata:\n    name: seq1\n",
		"apiVersion: v1\nkind: AList\nitems:\n- apiVersion: v1\n  kind: A\n  metadata: {name: i0}\n  spec:\n    vmSize: big\n",
		"'apiVersion': v1\n\"kind\": A\nmetadata:\n  name: quoted\n",
		"kind: A\napiVersion: v1\nmetadata: {name: flowmeta}\nspec:\n  template: {spec: {vmSize: a,\n    dataDisks: [{lun: 0}]}}\n",
	}
	deferred := 0
	for _, in := range docs {
		for _, raw := range splitDocuments([]byte(in)) {
			want, werr := ParseDocument("f.yaml", raw)
			got, gerr := ParseDocumentDeferred("f.yaml", raw)
			for _, o := range got.Objects {
				if o.tree != nil {
					deferred++
				}
			}
			if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
				t.Fatalf("%.30q: error %v, want %v", raw.raw, gerr, werr)
			}
			if len(got.Objects) != len(want.Objects) {
				t.Fatalf("%.30q: %d objects, want %d", raw.raw, len(got.Objects), len(want.Objects))
			}
			for i, w := range want.Objects {
				g := got.Objects[i]
				if g.Name != w.Name || g.Kind != w.Kind || g.Line != w.Line || g.Doc != w.Doc || string(g.JSON) != string(w.JSON) {
					t.Errorf("%.30q object %d: %s %s line %d, want %s %s line %d", raw.raw, i, g.Kind, g.Name, g.Line, w.Kind, w.Name, w.Line)
				}
				for _, f := range fields {
					if gl, wl := g.FieldLine(f), w.FieldLine(f); gl != wl {
						t.Errorf("%s %q: line %d, want %d", w.Name, f, gl, wl)
					}
				}
			}
		}
	}
	if deferred < 5 {
		t.Errorf("only %d objects took the deferred path", deferred)
	}
}
