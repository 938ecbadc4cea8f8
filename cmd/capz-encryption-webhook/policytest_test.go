package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleSuitePasses runs the suite shipped in docs/examples, as a user would.
func TestExampleSuitePasses(t *testing.T) {
	out, code := runCLI(t, "", "test", "-f", "../../docs/examples/policy-tests/suite.yaml")
	if code != 0 || !strings.Contains(out, "6 cases: 6 passed, 0 failed, 0 errors") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestSuiteMismatches: a suite whose expectations are wrong fails with exit 1 and says, per case,
// what differs (golden file failing.txt; -args -update rewrites it).
func TestSuiteMismatches(t *testing.T) {
	pinClock(t)
	out, _, code := runSplit(t, "test", "testdata/policytest/failing.yaml")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	path := filepath.Join("testdata", "policytest", "failing.txt")
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("output differs from %s:\n%s", path, out)
	}

	// The same as JUnit XML, for CI test widgets.
	out, _, _ = runSplit(t, "test", "testdata/policytest/failing.yaml", "-o", "junit")
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 3 || doc.Failures != 2 || len(doc.Suites) != 1 {
		t.Fatalf("junit: %d tests, %d failures", doc.Tests, doc.Failures)
	}
	if f := doc.Suites[0].Cases[1].Failure; f == nil || !strings.Contains(f.Text, "- des-id-malformed (expected, not hit)") {
		t.Errorf("junit failure of %q: %+v", doc.Suites[0].Cases[1].Name, f)
	}
}

func TestSuiteErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	head := "apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicyTest\n"
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"cases that cannot run", []string{"testdata/policytest/broken.yaml"}, []string{
			"ERROR a file that is not there (testdata/policytest/broken.yaml:5): stat testdata/policytest/nowhere.yaml",
			"ERROR a file with no CAPZ object (testdata/policytest/broken.yaml:8):", "0 objects match",
		}},
		{"unknown key", []string{write("typo.yaml", head+"cases:\n- name: x\n  expect: {allowed: true, violation: []}\n  object: {kind: A}\n")}, []string{"line 5", "field violation not found"}},
		{"no expected verdict", []string{write("noverdict.yaml", head+"cases:\n- name: x\n  object: {kind: A}\n  expect: {}\n")}, []string{"noverdict.yaml:4", "expect.allowed is required"}},
		{"object and file", []string{write("both.yaml", head+"cases:\n- name: x\n  file: a.yaml\n  object: {kind: A}\n  expect: {allowed: true}\n")}, []string{"give either object or file"}},
		{"wrong kind", []string{write("kind.yaml", "apiVersion: v1\nkind: ConfigMap\n")}, []string{"want policy.capz-encryption-webhook.io/v1alpha1 EncryptionPolicyTest"}},
		{"bad policy", []string{write("pol.yaml", head+"policy: nowhere.yaml\ncases:\n- name: x\n  object: {kind: A}\n  expect: {allowed: true}\n")}, []string{"nowhere.yaml"}},
		{"no suite", nil, []string{"no suite"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, code := runCLI(t, "", append([]string{"test"}, c.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
