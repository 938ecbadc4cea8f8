package report

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/owenrumney/go-sarif/v3/pkg/report"
	"github.com/owenrumney/go-sarif/v3/pkg/report/v210/sarif"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// ToolName is the SARIF tool name (code scanning groups alerts by it).
const ToolName = "capz-encryption-webhook"

// WriteSARIF writes a SARIF 2.1.0 log for code scanning: one rule per rule of the policy (its ID,
// help text and default level), one result per violation (level error) and warning (level warning)
// at the field's file and line, with the object and field path as its logical location. Audit
// findings are records, not alerts, and are left out. version is the tool's version.
func WriteSARIF(w io.Writer, r *Report, version string) error {
	log, err := SARIF(r, version)
	if err != nil {
		return err
	}
	return log.PrettyWrite(w)
}

// SARIF builds the log WriteSARIF writes, validated against the SARIF 2.1.0 schema.
func SARIF(r *Report, version string) (*sarif.Report, error) {
	run := sarif.NewRunWithInformationURI(ToolName, RulesURL)
	run.Tool.Driver.WithVersion(version)
	rules := policy.Rules()
	seen := map[policy.RuleID]bool{}
	for _, res := range r.Results {
		for _, f := range append(append([]Finding{}, res.Violations...), res.Warnings...) {
			if !seen[f.Rule] && !contains(rules, f.Rule) {
				rules = append(rules, f.Rule)
			}
			seen[f.Rule] = true
		}
	}
	builtin := policy.DefaultPolicy()
	for _, id := range rules {
		help := RuleHelp(id)
		rule := run.AddRule(string(id)).
			WithName(ruleName(id)).
			WithShortDescription(sarif.NewMultiformatMessageString().WithText(RuleTitle(id))).
			WithFullDescription(sarif.NewMultiformatMessageString().WithText(help)).
			WithHelp(sarif.NewMultiformatMessageString().WithText(help).WithMarkdown(help + "\n\n[Rules](" + RulesURL + ")")).
			WithHelpURI(RulesURL).
			WithDefaultConfiguration(sarif.NewReportingConfiguration().WithLevel(level(builtin.ActionFor(id))))
		rule.WithProperties(sarif.NewPropertyBag().AddTag("security").AddTag("encryption"))
	}
	for _, res := range r.Results {
		for _, group := range []struct {
			level    string
			findings []Finding
		}{{"error", res.Violations}, {"warning", res.Warnings}} {
			for _, f := range group.findings {
				object := fmt.Sprintf("%s/%s/%s", res.Kind, res.Namespace, res.Name)
				line := max(f.Line, 1)
				result := run.CreateResultForRule(string(f.Rule)).
					WithLevel(group.level).
					WithMessage(sarif.NewTextMessage(findingText(res, f))).
					WithPartialFingerprints(map[string]string{
						// Stable across runs and line moves: the object, the rule and the field.
						ToolName + "/v1": fingerprint(res.Kind, res.Namespace, res.Name, string(f.Rule), f.Field),
					})
				loc := sarif.NewLocation().
					WithPhysicalLocation(sarif.NewPhysicalLocation().
						WithArtifactLocation(sarif.NewSimpleArtifactLocation(artifactURI(res.File))).
						WithRegion(sarif.NewRegion().WithStartLine(line))).
					WithLogicalLocations([]*sarif.LogicalLocation{sarif.NewLogicalLocation().
						WithName(f.Field).
						WithFullyQualifiedName(object + "/" + f.Field).
						WithKind("member")})
				result.AddLocation(loc)
			}
		}
	}
	log := report.NewV210Report()
	log.AddRun(run)
	if err := log.Validate(); err != nil {
		return nil, fmt.Errorf("the SARIF log does not validate against the SARIF 2.1.0 schema: %w", err)
	}
	return log, nil
}

func contains(rules []policy.RuleID, r policy.RuleID) bool {
	for _, x := range rules {
		if x == r {
			return true
		}
	}
	return false
}

func level(a policy.Action) string {
	switch a {
	case policy.ActionDeny:
		return "error"
	case policy.ActionWarn:
		return "warning"
	default:
		return "note"
	}
}

// ruleName turns des-id-malformed into DesIdMalformed, SARIF's convention for rule names.
func ruleName(id policy.RuleID) string {
	var b strings.Builder
	for _, part := range strings.Split(string(id), "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func fingerprint(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:16])
}

// artifactURI gives the file as code scanning wants it: relative to the repository root, which is
// the working directory of a CI step, with forward slashes.
func artifactURI(file string) string {
	if filepath.IsAbs(file) {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, file); err == nil && !strings.HasPrefix(rel, "..") {
				file = rel
			}
		}
	}
	return filepath.ToSlash(filepath.Clean(file))
}
