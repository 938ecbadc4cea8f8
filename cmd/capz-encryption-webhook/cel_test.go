package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// goldenNow fixes the date the goldens judge the age of catalog evidence at, so that they do not
// change as captures age.
const goldenNow = "2026-11-27"

// The output of `cel` for the sample policy and the Palette pack values, byte for byte. After an
// intended change (or a new embedded catalog): go test ./cmd/capz-encryption-webhook -run TestCELGolden -update
func TestCELGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"sample-policy.yaml", []string{"cel", "--policy", "../../config/samples/policy.yaml", "--now", goldenNow}},
		{"palette-pack-values.yaml", []string{"cel", "--policy", "../../docs/examples/palette-pack-values.yaml", "--now", goldenNow}},
		{"palette-pack-values.explain.txt", []string{"cel", "--policy", "../../docs/examples/palette-pack-values.yaml", "--explain", "--now", goldenNow}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, code := runCLI(t, "", tc.args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			path := filepath.Join("testdata", "cel", tc.golden)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("output differs from %s (run with -update after an intended change):\n%s", path, firstDifference(out, string(want)))
			}
		})
	}
}

func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + itoa(i+1) + ":\n got  " + gl + "\n want " + wl
		}
	}
	return ""
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// -o json holds the same objects as the YAML, as one v1 List.
func TestCELJSONMatchesYAML(t *testing.T) {
	args := []string{"cel", "--policy", "../../docs/examples/palette-pack-values.yaml", "--namespace", "platform"}
	y, code := runCLI(t, "", args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, y)
	}
	j, code := runCLI(t, "", append(args, "-o", "json")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, j)
	}
	var list struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Items      []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(j), &list); err != nil || list.Kind != "List" || list.APIVersion != "v1" {
		t.Fatalf("not a v1 List (%v):\n%.300s", err, j)
	}
	var docs []map[string]any
	for _, d := range strings.Split(y, "\n---\n")[1:] {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, m)
	}
	if len(docs) == 0 || !reflect.DeepEqual(docs, list.Items) {
		t.Fatalf("YAML has %d objects, JSON %d, or they differ", len(docs), len(list.Items))
	}
	if !bytes.Contains([]byte(y), []byte("- platform\n")) {
		t.Error("--namespace did not reach the bindings, which leave the webhook's namespace out")
	}
}

func TestCELBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"policy that does not parse names file and line", []string{"cel", "--policy", write("p.yaml", "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nrulez: {}\n")}, `p.yaml:3: unknown key "rulez"`},
		{"bad DES in a default", []string{"cel", "--policy", write("d.yaml", "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\ndefaults:\n  - name: x\n    diskEncryptionSetID: /subscriptions/nope\n")}, "d.yaml:5: defaults[0].diskEncryptionSetID: resource type"},
		{"missing policy file", []string{"cel", "--policy", filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"unreadable catalog", []string{"cel", "--sku-catalog", write("c.json", "{")}, "c.json"},
		{"bad output flag", []string{"cel", "-o", "xml"}, "--output"},
		{"bad date", []string{"cel", "--now", "yesterday"}, "--now"},
		{"bad namespace", []string{"cel", "--namespace", "Not_Valid"}, "Not_Valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runCLI(t, "", tc.args...)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d (want 2), output lacks %q:\n%s", code, tc.want, out)
			}
		})
	}
}

// Without --policy, the built-in policy: every rule at its action, nothing injected.
func TestCELBuiltinPolicy(t *testing.T) {
	out, code := runCLI(t, "", "cel")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if strings.Contains(out, "kind: MutatingAdmissionPolicy") || !strings.Contains(out, "kind: ValidatingAdmissionPolicy") {
		t.Errorf("built-in policy: want validating policies only:\n%.500s", out)
	}
}
