package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ci, testdata/policytest and testdata/cel")

const ciInput = "testdata/ci/manifests.yaml"

// pinClock fixes the time check judges catalog evidence against, so that golden files do not change
// as the embedded captures age.
func pinClock(t *testing.T) {
	t.Helper()
	old := clock
	clock = func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }
	t.Cleanup(func() { clock = old })
}

// runSplit runs the command with stdout and stderr apart (-o yaml writes the verdicts to stderr).
func runSplit(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := newRootCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	code = 0
	if err := cmd.Execute(); err != nil {
		code = 2
		if ee, ok := err.(*exitError); ok { //nolint:errorlint // exitError is never wrapped
			code = ee.code
		}
	}
	return out.String(), errOut.String(), code
}

// golden compares got with testdata/ci/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "ci", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./cmd/capz-encryption-webhook -run TestCheckFormats -args -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("-o output differs from %s (rerun with -args -update and review the diff):\n%s", path, got)
	}
}

// TestCheckFormats runs check on one input in every output format and compares each with its golden
// file; then each format is read back the way its consumers read it.
func TestCheckFormats(t *testing.T) {
	pinClock(t)
	for _, c := range []struct{ format, golden string }{
		{"text", "check.txt"}, {"json", "check.json"}, {"junit", "check.junit.xml"},
		{"sarif", "check.sarif.json"}, {"github", "check.github.txt"}, {"yaml", "check.yaml"},
	} {
		t.Run(c.format, func(t *testing.T) {
			out, _, code := runSplit(t, "check", ciInput, "-o", c.format)
			if code != 1 {
				t.Errorf("exit %d, want 1 (one object is denied)", code)
			}
			golden(t, c.golden, out)
		})
	}
}

func TestCheckSARIF(t *testing.T) {
	out, _, _ := runSplit(t, "check", ciInput, "-o", "sarif")
	// The schema, as go-sarif validates it.
	log, err := sarif.FromBytes([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := log.Validate(); err != nil {
		t.Fatal(err)
	}
	// And what code scanning needs, read as plain JSON.
	var doc struct {
		Schema  string `json:"$schema"`
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID               string `json:"id"`
						ShortDescription struct{ Text string }
						Help             struct{ Text string }
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Message   struct{ Text string }
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
					LogicalLocations []struct{ FullyQualifiedName string }
				}
				PartialFingerprints map[string]string
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2.1.0" || !strings.Contains(doc.Schema, "sarif-schema-2.1.0") || len(doc.Runs) != 1 {
		t.Fatalf("version %q schema %q runs %d", doc.Version, doc.Schema, len(doc.Runs))
	}
	run := doc.Runs[0]
	if run.Tool.Driver.Name != "capz-encryption-webhook" || len(run.Tool.Driver.Rules) < 13 {
		t.Errorf("driver %q with %d rules", run.Tool.Driver.Name, len(run.Tool.Driver.Rules))
	}
	for _, r := range run.Tool.Driver.Rules {
		if r.ShortDescription.Text == "" || r.Help.Text == "" {
			t.Errorf("rule %s without description or help", r.ID)
		}
	}
	type want struct {
		level, object string
		line          int
	}
	wants := map[string]want{
		"des-id-malformed":    {"error", "AzureMachineTemplate/default/copied-from-docs/spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id", 68},
		"default-not-applied": {"warning", "AzureMachine/default/legacy-0/spec.securityProfile.encryptionAtHost", 103},
	}
	if len(run.Results) != len(wants) {
		t.Errorf("%d results, want %d", len(run.Results), len(wants))
	}
	for _, res := range run.Results {
		w, ok := wants[res.RuleID]
		if !ok || len(res.Locations) != 1 {
			t.Errorf("result %+v", res)
			continue
		}
		loc := res.Locations[0]
		if res.Level != w.level || loc.PhysicalLocation.ArtifactLocation.URI != ciInput || loc.PhysicalLocation.Region.StartLine != w.line ||
			len(loc.LogicalLocations) != 1 || loc.LogicalLocations[0].FullyQualifiedName != w.object {
			t.Errorf("%s: level %s at %s:%d (%v), want %s at line %d, %s", res.RuleID, res.Level, loc.PhysicalLocation.ArtifactLocation.URI,
				loc.PhysicalLocation.Region.StartLine, loc.LogicalLocations, w.level, w.line, w.object)
		}
		if run.Tool.Driver.Rules[res.RuleIndex].ID != res.RuleID || len(res.PartialFingerprints) != 1 || res.Message.Text == "" {
			t.Errorf("%s: ruleIndex %d, fingerprints %v, message %q", res.RuleID, res.RuleIndex, res.PartialFingerprints, res.Message.Text)
		}
	}
}

// TestCheckJUnit reads the report with encoding/xml, as CI test widgets do.
func TestCheckJUnit(t *testing.T) {
	type testcase struct {
		Name      string `xml:"name,attr"`
		Classname string `xml:"classname,attr"`
		Failure   *struct {
			Message string `xml:"message,attr"`
			Type    string `xml:"type,attr"`
			Text    string `xml:",chardata"`
		} `xml:"failure"`
		SystemOut string `xml:"system-out"`
	}
	type junitDoc struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Suites   []struct {
			Name  string     `xml:"name,attr"`
			Cases []testcase `xml:"testcase"`
		} `xml:"testsuite"`
	}
	for _, c := range []struct {
		args         []string
		failures     int
		legacyFailed bool
	}{
		{nil, 1, false},
		{[]string{"--fail-on-warn"}, 2, true},
	} {
		var doc junitDoc
		out, _, code := runSplit(t, append([]string{"check", ciInput, "-o", "junit"}, c.args...)...)
		if code != 1 {
			t.Errorf("%v: exit %d", c.args, code)
		}
		if err := xml.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if doc.Tests != 4 || doc.Failures != c.failures || len(doc.Suites) != 1 || doc.Suites[0].Name != ciInput {
			t.Fatalf("%v: %d tests, %d failures, suites %+v", c.args, doc.Tests, doc.Failures, doc.Suites)
		}
		cases := map[string]testcase{}
		for _, tc := range doc.Suites[0].Cases {
			cases[tc.Name] = tc
		}
		denied := cases["AzureMachineTemplate default/copied-from-docs"]
		if denied.Failure == nil || denied.Failure.Type != "des-id-malformed" || !strings.Contains(denied.Failure.Text, ciInput+":68: [des-id-malformed]") {
			t.Errorf("%v: denied case %+v", c.args, denied)
		}
		legacy := cases["AzureMachine default/legacy-0"]
		if (legacy.Failure != nil) != c.legacyFailed || !strings.Contains(legacy.SystemOut+failureText(legacy.Failure), "[default-not-applied]") {
			t.Errorf("%v: warned case %+v", c.args, legacy)
		}
	}
}

func failureText(f *struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}) string {
	if f == nil {
		return ""
	}
	return f.Text
}

func TestCheckGitHub(t *testing.T) {
	out, _, _ := runSplit(t, "check", ciInput, "-o", "github")
	re := regexp.MustCompile(`^::(error|warning) file=([^,]+),line=(\d+),title=([^:]+)::(.+)$`)
	var annotations []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			annotations = append(annotations, m[1]+" "+m[2]+":"+m[3]+" "+m[4])
		} else if !strings.HasPrefix(l, "4 checked:") {
			t.Errorf("neither an annotation nor the summary: %q", l)
		}
	}
	want := []string{
		"error " + ciInput + ":68 capz-encryption-webhook des-id-malformed",
		"warning " + ciInput + ":103 capz-encryption-webhook default-not-applied",
	}
	if strings.Join(annotations, "\n") != strings.Join(want, "\n") {
		t.Errorf("annotations:\n%s\nwant:\n%s", strings.Join(annotations, "\n"), strings.Join(want, "\n"))
	}
}

// TestCheckYAML: -o yaml writes every document; running check on what it wrote injects nothing more
// (the webhook's second pass yields no patch either), and the verdicts went to stderr.
func TestCheckYAML(t *testing.T) {
	out, stderr, code := runSplit(t, "check", ciInput, "-o", "yaml")
	if code != 1 || !strings.Contains(stderr, "DENIED") || strings.Contains(out, "DENIED") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	path := filepath.Join(t.TempDir(), "out.yaml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	again, _, _ := runSplit(t, "check", path, "-o", "json")
	var results []jsonResult
	if err := json.Unmarshal([]byte(again), &results); err != nil {
		t.Fatal(err)
	}
	if len(results) != 4 {
		t.Fatalf("%d objects in the output, want 4", len(results))
	}
	for _, r := range results {
		if len(r.Patch) != 0 {
			t.Errorf("%s: patched again: %v", r.Name, r.Patch)
		}
	}
	// Documents without a patch are written back byte for byte.
	in, err := os.ReadFile(ciInput)
	if err != nil {
		t.Fatal(err)
	}
	for _, unchanged := range []string{
		"kind: Cluster\nmetadata:\n  name: payments\n",
		"    cluster.x-k8s.io/cluster-name:    payments\n",
		"          diskEncryptionSet:\n\n            id: \"/subscriptions/",
	} {
		if !strings.Contains(string(in), unchanged) || !strings.Contains(out, unchanged) {
			t.Errorf("not passed through as it was: %q", unchanged)
		}
	}

	// Several files: one stream, each after its source.
	out, _, _ = runSplit(t, "check", ciInput, "../../config/samples/cluster-eastus.yaml", "-o", "yaml")
	if !strings.HasPrefix(out, "# Source: "+ciInput+"\n") || !strings.Contains(out, "\n---\n# Source: ../../config/samples/cluster-eastus.yaml\n") {
		t.Errorf("two files are not written as one stream with their sources:\n%s", out)
	}
}
