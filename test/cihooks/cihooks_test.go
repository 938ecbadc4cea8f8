// Package cihooks_test holds the pre-commit hooks (.pre-commit-hooks.yaml) and the composite GitHub
// Action (action.yml) to the commands they run: their definitions are parsed and checked against the
// binary, and both are run as pre-commit and a workflow would run them, with the binary built the way
// they build it.
package cihooks_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var (
	root string
	bin  string
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if root, err = filepath.Abs("../.."); err != nil {
		return 0, err
	}
	tmp, err := os.MkdirTemp("", "cihooks-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	// The binary's name is its package directory's, as `go install` (pre-commit) and the action's
	// `go build -o` both name it.
	bin = filepath.Join(tmp, "capz-encryption-webhook")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/capz-encryption-webhook")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building the binary: %w\n%s", err, out)
	}
	return m.Run(), nil
}

type hook struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Description   string `json:"description"`
	Entry         string `json:"entry"`
	Language      string `json:"language"`
	Files         string `json:"files"`
	PassFilenames *bool  `json:"pass_filenames"`
	RequireSerial bool   `json:"require_serial"`
}

func readYAML(t *testing.T, rel string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// runBin runs the binary in the repository root and returns its output and exit code.
func runBin(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return string(out), ee.ExitCode()
	}
	return string(out), 0
}

func TestPreCommitHooks(t *testing.T) {
	var hooks []hook
	readYAML(t, ".pre-commit-hooks.yaml", &hooks)
	byID := map[string]hook{}
	for _, h := range hooks {
		byID[h.ID] = h
		if h.Name == "" || h.Description == "" || h.Language != "golang" {
			t.Errorf("%s: name %q, description %q, language %q (golang: pre-commit builds it with go install)", h.ID, h.Name, h.Description, h.Language)
		}
		entry := strings.Fields(h.Entry)
		if len(entry) < 2 || entry[0] != filepath.Base(bin) {
			t.Errorf("%s: entry %q does not run the binary go install builds (%s)", h.ID, h.Entry, filepath.Base(bin))
			continue
		}
		if out, code := runBin(t, nil, entry[1], "--help"); code != 0 {
			t.Errorf("%s: %s is not a subcommand: %s", h.ID, entry[1], out)
		}
		if _, err := regexp.Compile(h.Files); err != nil {
			t.Errorf("%s: files: %v", h.ID, err)
		}
	}
	// As pre-commit runs them: entry, then the hook's args, then (unless pass_filenames is false) the
	// staged files the files pattern matches.
	check := byID["capz-encryption-check"]
	if !check.RequireSerial {
		t.Error("capz-encryption-check: require_serial must be true, or pre-commit splits the files over processes and objects lose their Clusters")
	}
	staged := []string{"config/samples/cluster-eastus.yaml", "config/samples/bad-des-placeholder.yaml", "README.md", "go.mod"}
	var matched []string
	re := regexp.MustCompile(check.Files)
	for _, f := range staged {
		if re.MatchString(f) {
			matched = append(matched, f)
		}
	}
	if !slices.Equal(matched, staged[:2]) {
		t.Errorf("files %q matches %v of %v", check.Files, matched, staged)
	}
	out, code := runBin(t, nil, append(append(strings.Fields(check.Entry)[1:], "--policy", "config/samples/policy.yaml"), matched...)...)
	if code != 1 || !strings.Contains(out, "copied-from-docs (config/samples/bad-des-placeholder.yaml:2): DENIED") ||
		!strings.Contains(out, "payments-md-0 (config/samples/cluster-eastus.yaml:52): ALLOWED  [region eastus from cluster") {
		t.Errorf("check hook: exit %d (want 1: a denial fails the commit):\n%s", code, out)
	}
	tests := byID["capz-encryption-policy-test"]
	if tests.PassFilenames == nil || *tests.PassFilenames {
		t.Error("capz-encryption-policy-test: pass_filenames must be false (manifests are not suites)")
	}
	out, code = runBin(t, nil, append(strings.Fields(tests.Entry)[1:], "-f", "docs/examples/policy-tests/suite.yaml")...)
	if code != 0 {
		t.Errorf("policy test hook: exit %d:\n%s", code, out)
	}
}

type action struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Author      string `json:"author"`
	Branding    map[string]string
	Inputs      map[string]struct {
		Description string `json:"description"`
		Required    bool   `json:"required"`
		Default     string `json:"default"`
	} `json:"inputs"`
	Outputs map[string]struct {
		Description string `json:"description"`
		Value       string `json:"value"`
	} `json:"outputs"`
	Runs struct {
		Using string `json:"using"`
		Steps []struct {
			Name             string            `json:"name"`
			ID               string            `json:"id"`
			If               string            `json:"if"`
			Uses             string            `json:"uses"`
			With             map[string]string `json:"with"`
			Shell            string            `json:"shell"`
			WorkingDirectory string            `json:"working-directory"`
			Env              map[string]string `json:"env"`
			Run              string            `json:"run"`
		} `json:"steps"`
	} `json:"runs"`
}

// TestActionDefinition: every input is documented and used, every reference names an input, the
// script reads only variables the step sets, and the build builds the binary's package.
func TestActionDefinition(t *testing.T) {
	var a action
	readYAML(t, "action.yml", &a)
	raw, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Runs.Using != "composite" || a.Name == "" || a.Description == "" {
		t.Fatalf("action: using %q, name %q", a.Runs.Using, a.Name)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range a.Inputs {
		if in.Description == "" {
			t.Errorf("input %s has no description", name)
		}
		def := "`" + in.Default + "`"
		if in.Default == "" {
			def = "`\"\"`"
		}
		if !strings.Contains(string(readme), "| `"+name+"` | "+def+" |") {
			t.Errorf("the README's table of action inputs lacks %s with its default %q", name, in.Default)
		}
		if !strings.Contains(string(raw), "inputs."+name+" ") && !strings.Contains(string(raw), "inputs."+name+" }}") {
			t.Errorf("input %s is never used", name)
		}
	}
	for _, m := range regexp.MustCompile(`inputs\.([a-z0-9-]+)`).FindAllStringSubmatch(string(raw), -1) {
		if _, ok := a.Inputs[m[1]]; !ok {
			t.Errorf("action.yml refers to input %s, which it does not declare", m[1])
		}
	}
	for name, o := range a.Outputs {
		if o.Description == "" || !strings.Contains(o.Value, "steps.check.outputs."+name) {
			t.Errorf("output %s: %+v", name, o)
		}
	}
	script, err := os.ReadFile(filepath.Join(root, "hack", "github-action-check.sh"))
	if err != nil {
		t.Fatal(err)
	}
	checkStep, buildStep := -1, -1
	for i, s := range a.Runs.Steps {
		if s.ID == "check" {
			checkStep = i
		}
		if strings.Contains(s.Run, "go build") {
			buildStep = i
		}
		if s.Uses != "" && !regexp.MustCompile(`@v\d+(\.\d+)*$|@[0-9a-f]{40}$`).MatchString(s.Uses) {
			t.Errorf("step %q uses %s: pin a version", s.Name, s.Uses)
		}
	}
	if checkStep < 0 || buildStep < 0 || buildStep > checkStep {
		t.Fatalf("want a build step before the check step (build %d, check %d)", buildStep, checkStep)
	}
	if b := a.Runs.Steps[buildStep]; !strings.Contains(b.Run, "./cmd/capz-encryption-webhook") || b.WorkingDirectory != "${{ github.action_path }}" {
		t.Errorf("the build step does not build ./cmd/capz-encryption-webhook from the action's checkout: %+v", b)
	}
	env := a.Runs.Steps[checkStep].Env
	if !strings.Contains(a.Runs.Steps[checkStep].Run, "hack/github-action-check.sh") {
		t.Errorf("the check step does not run the script: %q", a.Runs.Steps[checkStep].Run)
	}
	for _, m := range regexp.MustCompile(`\$\{?((?:INPUT_|CEW_)[A-Z_]+)`).FindAllStringSubmatch(string(script), -1) {
		if _, ok := env[m[1]]; !ok {
			t.Errorf("the script reads %s, which the step does not set", m[1])
		}
	}
	for k, v := range env {
		if strings.HasPrefix(k, "INPUT_") {
			name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "INPUT_"), "_", "-"))
			if v != "${{ inputs."+name+" }}" {
				t.Errorf("%s = %q, want the input %s", k, v, name)
			}
		}
	}
	// The flags the script passes exist on check.
	help, _ := runBin(t, nil, "check", "--help")
	for _, m := range regexp.MustCompile(`\((--[a-z-]+)`).FindAllStringSubmatch(string(script), -1) {
		if !strings.Contains(help, m[1]+" ") {
			t.Errorf("the script passes %s, which check does not have", m[1])
		}
	}
}

// TestActionScript runs the action's script as its step runs, with the inputs of a few workflows.
func TestActionScript(t *testing.T) {
	cases := []struct {
		name       string
		inputs     map[string]string
		code       int
		outputs    map[string]string
		outputFile func(t *testing.T, data []byte)
		log        string
	}{
		{
			name:   "SARIF for code scanning, with the example policy tests",
			inputs: map[string]string{"FILES": "config/samples", "FORMAT": "sarif", "OUTPUT_FILE": "results.sarif", "POLICY_TESTS": "docs/examples/policy-tests/suite.yaml"},
			code:   1, outputs: map[string]string{"exit-code": "1", "test-exit-code": "0"},
			outputFile: func(t *testing.T, data []byte) {
				var log struct {
					Version string `json:"version"`
					Runs    []struct {
						Results []any `json:"results"`
					} `json:"runs"`
				}
				if err := json.Unmarshal(data, &log); err != nil || log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) == 0 {
					t.Errorf("results.sarif: %v %+v", err, log)
				}
			},
			log: "6 cases: 6 passed",
		},
		{
			name:   "annotations on a compliant file, several paths on lines",
			inputs: map[string]string{"FILES": "config/samples/cluster-eastus.yaml\n  config/samples/policy.yaml\n", "FORMAT": "github"},
			code:   0, outputs: map[string]string{"exit-code": "0"},
			log: "2 checked: 0 denied",
		},
		{
			name:   "warnings fail with fail-on-warn",
			inputs: map[string]string{"FILES": "docs/examples/policy-tests/workers.yaml docs/examples/policy-tests/clusters.yaml", "POLICY": "docs/examples/policy-tests/policy.yaml", "NAMESPACE": "payments", "FAIL_ON_WARN": "true", "FORMAT": "text"},
			code:   1, outputs: map[string]string{"exit-code": "1"},
			log: "DENIED",
		},
		{
			name:   "a failing policy test fails the step",
			inputs: map[string]string{"FILES": "config/samples/cluster-eastus.yaml", "POLICY_TESTS": "cmd/capz-encryption-webhook/testdata/policytest/failing.yaml"},
			code:   1, outputs: map[string]string{"exit-code": "0", "test-exit-code": "1"},
			log: "FAIL  wrong verdict and rules",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			ghOutput, summary := filepath.Join(dir, "output"), filepath.Join(dir, "summary")
			env := []string{"CEW_BIN=" + bin, "GITHUB_OUTPUT=" + ghOutput, "GITHUB_STEP_SUMMARY=" + summary}
			for _, k := range []string{"FILES", "POLICY", "SKU_CATALOG", "LOCATION", "NAMESPACE", "FORMAT", "OUTPUT_FILE", "FAIL_ON_WARN", "POLICY_TESTS"} {
				v := c.inputs[k]
				if k == "OUTPUT_FILE" && v != "" {
					v = filepath.Join(dir, v)
				}
				env = append(env, "INPUT_"+k+"="+v)
			}
			cmd := exec.Command("bash", filepath.Join(root, "hack", "github-action-check.sh"))
			cmd.Dir = root
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
				code = ee.ExitCode()
			}
			if code != c.code || !strings.Contains(string(out), c.log) {
				t.Errorf("exit %d (want %d), log lacks %q:\n%s", code, c.code, c.log, out)
			}
			written, _ := os.ReadFile(ghOutput)
			got := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(string(written)), "\n") {
				if k, v, ok := strings.Cut(l, "="); ok {
					got[k] = v
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.outputs) {
				t.Errorf("outputs %v, want %v", got, c.outputs)
			}
			if s, _ := os.ReadFile(summary); !strings.Contains(string(s), "### capz-encryption-webhook check") || !strings.Contains(string(s), "checked:") {
				t.Errorf("step summary:\n%s", s)
			}
			if c.outputFile != nil {
				data, err := os.ReadFile(filepath.Join(dir, c.inputs["OUTPUT_FILE"]))
				if err != nil {
					t.Fatal(err)
				}
				c.outputFile(t, data)
			}
		})
	}
}
