// Package report holds what `check` found, object by object, and writes it in the formats CI systems
// read: text for people, JSON, JUnit XML (test report widgets), SARIF 2.1.0 (GitHub code scanning
// and other SARIF viewers) and GitHub Actions workflow annotations.
package report

import (
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Report is the outcome of one `check` run.
type Report struct {
	Results []Result
	// Skipped counts the objects of kinds the policy does not decide on.
	Skipped int
	// Policy names the policy in force (its file, or "built-in").
	Policy string
}

// Result is one object's verdict, in the shape of `check -o json`.
type Result struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	File      string `json:"file"`
	Line      int    `json:"line"`
	Verdict
}

// Verdict is what a decision says of an object, in the JSON that `check` and `audit` share, so that
// a tool reading one reads the other.
type Verdict struct {
	Allowed      bool                `json:"allowed"`
	Violations   []Finding           `json:"violations"`
	Warnings     []Finding           `json:"warnings"`
	Audit        []Finding           `json:"audit"`
	Patch        []map[string]any    `json:"patch"`
	Injected     []string            `json:"injected"`
	Region       string              `json:"region"`
	RegionSource string              `json:"regionSource"`
	Binding      string              `json:"binding"`
	Catalog      string              `json:"catalog"`
	Default      string              `json:"default,omitempty"`
	Cluster      *policy.ClusterInfo `json:"cluster,omitempty"`
	// Evidence is the VM-size data the verdicts used, and when it was captured.
	Evidence []policy.Evidence `json:"evidence,omitempty"`
}

// Finding is one rule hit. Line is the file line of Field (or of its deepest present parent).
type Finding struct {
	Rule    policy.RuleID `json:"rule"`
	Field   string        `json:"field"`
	Line    int           `json:"line,omitempty"` // absent for objects read from a cluster (audit)
	Message string        `json:"message"`
}

// NewResult turns a decision on obj into its Result.
func NewResult(obj manifest.Object, d *policy.Decision, cluster policy.ClusterInfo) Result {
	return Result{Kind: d.Kind, Namespace: d.Namespace, Name: d.Name, File: obj.File, Line: obj.Line,
		Verdict: NewVerdict(d, cluster, obj.FieldLine)}
}

// NewVerdict sorts a decision's findings by action and writes its patch as JSON Patch operations.
// fieldLine gives a finding's line in its file (nil for objects read from a cluster). The lists are
// never null, so that consumers can iterate without checking.
func NewVerdict(d *policy.Decision, cluster policy.ClusterInfo, fieldLine func(field string) int) Verdict {
	v := Verdict{
		Allowed: d.Allowed, Region: d.Region, RegionSource: d.RegionSource, Binding: d.Binding, Catalog: d.Catalog.Name,
		Default: d.DefaultName, Injected: []string{},
		Violations: []Finding{}, Warnings: []Finding{}, Audit: []Finding{}, Patch: []map[string]any{},
		Evidence: d.Evidence,
	}
	v.Injected = append(v.Injected, d.Injected...)
	if cluster.Name != "" {
		c := cluster
		v.Cluster = &c
	}
	for _, f := range d.Findings {
		fo := Finding{Rule: f.Rule, Field: f.Field, Message: f.Message}
		if fieldLine != nil {
			fo.Line = fieldLine(f.Field)
		}
		switch f.Action {
		case policy.ActionDeny:
			v.Violations = append(v.Violations, fo)
		case policy.ActionWarn:
			v.Warnings = append(v.Warnings, fo)
		default:
			v.Audit = append(v.Audit, fo)
		}
	}
	for _, op := range d.Patch {
		v.Patch = append(v.Patch, map[string]any{"op": op.Operation, "path": op.Path, "value": op.Value})
	}
	return v
}

// Counts are the totals a summary and the exit status need.
type Counts struct {
	Checked, Denied, Warned, Patched int
}

// Count totals the results: Denied objects with a violation, Warned objects with a warning.
func (r *Report) Count() Counts {
	c := Counts{Checked: len(r.Results)}
	for _, res := range r.Results {
		if !res.Allowed {
			c.Denied++
		}
		if len(res.Warnings) > 0 {
			c.Warned++
		}
		if len(res.Patch) > 0 {
			c.Patched++
		}
	}
	return c
}

// Failed says whether the run fails: something denied, or (failOnWarn) something warned.
func (r *Report) Failed(failOnWarn bool) bool {
	c := r.Count()
	return c.Denied > 0 || failOnWarn && c.Warned > 0
}
