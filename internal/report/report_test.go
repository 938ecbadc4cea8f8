package report

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// TestEveryRuleHasHelp: code scanning shows a rule's title and help next to each alert; a rule added
// to the policy needs both here, and a row in the README's rule table.
func TestEveryRuleHasHelp(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	known := map[policy.RuleID]bool{}
	for _, r := range policy.Rules() {
		known[r] = true
		if ruleHelp[r] == "" || ruleTitle[r] == "" {
			t.Errorf("rule %s has no help text or title in rules.go", r)
		}
		if !bytes.Contains(readme, []byte("| `"+string(r)+"` |")) {
			t.Errorf("rule %s has no row in the README's rule table", r)
		}
	}
	for r := range ruleHelp {
		if !known[r] {
			t.Errorf("rules.go documents %s, which the policy does not have", r)
		}
	}
	for r := range ruleTitle {
		if !known[r] {
			t.Errorf("rules.go titles %s, which the policy does not have", r)
		}
	}
	if RuleHelp("some-new-rule") == "" || RuleTitle("some-new-rule") != "some-new-rule" {
		t.Error("a rule without help must still get text")
	}
}

// TestGitHubEscaping: a workflow command ends at a line break, and its properties at , and :, so
// they are escaped as the Actions toolkit does.
func TestGitHubEscaping(t *testing.T) {
	r := &Report{Policy: "p", Results: []Result{{
		Kind: "AzureMachine", Namespace: "n", Name: "m", File: "dir,1/a:b.yaml",
		Verdict: Verdict{Violations: []Finding{{Rule: "des-id-malformed", Field: "spec.x", Line: 3, Message: "100% wrong\nsecond line"}}},
	}}}
	var b strings.Builder
	if err := WriteGitHub(&b, r); err != nil {
		t.Fatal(err)
	}
	want := "::error file=dir%2C1/a%3Ab.yaml,line=3,title=capz-encryption-webhook des-id-malformed::AzureMachine n/m: spec.x: 100%25 wrong%0Asecond line\n"
	if got := strings.SplitAfter(b.String(), "\n")[0]; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestSARIFForUnknownRule: a finding of a rule the table does not know yet still gets a rule entry,
// so the log stays valid (results reference rules by index).
func TestSARIFForUnknownRule(t *testing.T) {
	r := &Report{Results: []Result{{Kind: "K", File: "f.yaml", Verdict: Verdict{Warnings: []Finding{{Rule: "brand-new", Field: "spec", Line: 1, Message: "m"}}}}}}
	log, err := SARIF(r, "dev")
	if err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	i := run.Results[0].RuleIndex
	if i < 0 || *run.Tool.Driver.Rules[i].ID != "brand-new" {
		t.Errorf("result rule index %d does not point at brand-new", i)
	}
}
