package celpolicy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/desid"
)

// exportVectors is compiled into package desid's tests through `go test -overlay`, so that the
// vectors are desid's own (validCases and invalidCases, which also seed FuzzParse) as they are at
// test time, not a copy. []byte, because JSON would turn invalid UTF-8 into U+FFFD.
const exportVectors = `package desid

import (
	"encoding/json"
	"os"
	"testing"
)

func TestCELPolicyExportVectors(t *testing.T) {
	var out [][]byte
	for _, c := range validCases {
		out = append(out, []byte(c.in))
	}
	for _, c := range invalidCases {
		out = append(out, []byte(c.in))
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv("CELPOLICY_VECTORS"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}
`

// desidVectors returns desid's test vectors and the files of its fuzz seed corpus
// (testdata/fuzz/FuzzParse), if it has one.
func desidVectors(t *testing.T) []string {
	t.Helper()
	pkg := reflect.TypeFor[desid.ID]().PkgPath()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the desid vectors are read with the go command: %v", err)
	}
	dirOut, err := exec.Command(goTool, "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	dir := strings.TrimSpace(string(dirOut))
	tmp := t.TempDir()
	src := filepath.Join(tmp, "export_test.go")
	out := filepath.Join(tmp, "vectors.json")
	overlay := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(src, []byte(exportVectors), 0o600); err != nil {
		t.Fatal(err)
	}
	ov, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(dir, "zz_celpolicy_export_test.go"): src}})
	if err := os.WriteFile(overlay, ov, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool, "test", "-overlay", overlay, "-count=1", "-run", "^TestCELPolicyExportVectors$", pkg)
	cmd.Env = append(os.Environ(), "CELPOLICY_VECTORS="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("exporting desid's vectors: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var bs [][]byte
	if err := json.Unmarshal(raw, &bs); err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, b := range bs {
		vs = append(vs, string(b))
	}
	// A seed corpus on disk, if desid ever keeps one: "go test fuzz v1" files of one string(...) each.
	files, _ := filepath.Glob(filepath.Join(dir, "testdata", "fuzz", "FuzzParse", "*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("%s: not a corpus file of one string", f)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vs = append(vs, s)
	}
	return vs
}

// ownVectors add the corners of the grammar where a regular expression and desid's code could part:
// case folding beyond ASCII, Unicode categories, lengths, anchoring.
func ownVectors() []string {
	id := func(rg, name string) string {
		return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.Compute/diskEncryptionSets/" + name
	}
	return []string{
		strings.Replace(id("rg", "d"), "disk", "dis\u212A", 1),                   // Kelvin sign folds to k
		strings.Replace(id("rg", "d"), "subscriptions", "\u017Fubscriptions", 1), // long s folds to s
		strings.Replace(id("rg", "d"), "providers", "prov\u0130ders", 1),         // dotted capital I does not fold to i
		id("rg", "d\u0663"),                  // Arabic-Indic digit: not ASCII
		id("rg\u0663", "d"),                  // but a decimal digit in a group name
		id("\u01C5rg", "d"),                  // title-case letter
		id("re\u0301", "d"),                  // combining mark: not a letter
		id("\u216B", "d"),                    // letter number: neither
		id(strings.Repeat("r", 89)+".", "d"), // 90, ending in '.'
		id(strings.Repeat("r", 89)+")", "d"),
		id("r", strings.Repeat("n", 80)),
		id("r", strings.Repeat("n", 81)),
		id("rg", "d") + "\n",
		"\n" + id("rg", "d"),
		id("rg", "d") + "/",
		id("rg", "d") + "/x",
		strings.ToUpper(id("RG", "D")),
		strings.Replace(id("rg", "d"), sub, strings.ToUpper(sub), 1),
		strings.Replace(id("rg", "d"), sub, "{"+sub+"}", 1),
		"",
		"/",
	}
}

var desidRE = regexp.MustCompile(DESIDPattern)

// celMatcher evaluates s.matches(DESIDPattern) with the apiserver's CEL environment, so that the
// pattern is held to the regular expression engine and library the apiserver runs it with.
func celMatcher(t testing.TB) func(string) bool {
	t.Helper()
	env, err := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()).Env(environment.StoredExpressions)
	if err != nil {
		t.Fatal(err)
	}
	env, err = env.Extend(cel.Variable("s", cel.StringType))
	if err != nil {
		t.Fatal(err)
	}
	ast, iss := env.Compile("s.matches(" + rawRegex(DESIDPattern) + ")")
	if iss.Err() != nil {
		t.Fatal(iss.Err())
	}
	prg, err := env.Program(ast)
	if err != nil {
		t.Fatal(err)
	}
	return func(s string) bool {
		v, _, err := prg.Eval(map[string]any{"s": s})
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return v.Value().(bool)
	}
}

func TestDESIDPatternIsDesidGrammar(t *testing.T) {
	vectors := desidVectors(t)
	celMatches := celMatcher(t)
	accepted, rejected := 0, 0
	for _, v := range append(vectors, ownVectors()...) {
		_, err := desid.Parse(v)
		want := err == nil
		if want {
			accepted++
		} else {
			rejected++
		}
		if got := desidRE.MatchString(v); got != want {
			t.Errorf("%q: pattern matches %v, desid.Parse accepts %v (%v)", v, got, want, err)
		}
		// CEL strings are UTF-8; the apiserver never hands it anything else.
		if strings.ToValidUTF8(v, "") == v {
			if got := celMatches(v); got != want {
				t.Errorf("%q: CEL matches() %v, desid.Parse accepts %v", v, got, want)
			}
		}
	}
	// desid has 16 valid and about 70 invalid vectors; an export that lost them must not pass.
	if accepted < 10 || rejected < 50 {
		t.Fatalf("only %d accepted and %d rejected vectors: the export from desid's tests is broken", accepted, rejected)
	}
}

// FuzzDESIDPattern: the pattern accepts exactly what desid.Parse accepts.
func FuzzDESIDPattern(f *testing.F) {
	for _, v := range ownVectors() {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := desid.Parse(s)
		if got, want := desidRE.MatchString(s), err == nil; got != want {
			t.Fatalf("%q: pattern matches %v, desid.Parse accepts %v (%v)", s, got, want, err)
		}
	})
}
