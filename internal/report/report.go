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
	Kind         string              `json:"kind"`
	Namespace    string              `json:"namespace"`
	Name         string              `json:"name"`
	File         string              `json:"file"`
	Line         int                 `json:"line"`
	Allowed      bool                `json:"allowed"`
	Violations   []Finding           `json:"violations"`
	Warnings     []Finding           `json:"warnings"`
	Audit        []Finding           `json:"audit"`
	Patch        []map[string]any    `json:"patch"`
	Injected     []string            `json:"injected,omitempty"`
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
	r := Result{
		Kind: d.Kind, Namespace: d.Namespace, Name: d.Name, File: obj.File, Line: obj.Line,
		Allowed: d.Allowed, Region: d.Region, RegionSource: d.RegionSource, Binding: d.Binding, Catalog: d.Catalog.Name,
		Default: d.DefaultName, Injected: d.Injected,
		Violations: []Finding{}, Warnings: []Finding{}, Audit: []Finding{}, Patch: []map[string]any{},
		Evidence: d.Evidence,
	}
	if cluster.Name != "" {
		c := cluster
		r.Cluster = &c
	}
	for _, f := range d.Findings {
		fo := Finding{Rule: f.Rule, Field: f.Field, Line: obj.FieldLine(f.Field), Message: f.Message}
		switch f.Action {
		case policy.ActionDeny:
			r.Violations = append(r.Violations, fo)
		case policy.ActionWarn:
			r.Warnings = append(r.Warnings, fo)
		default:
			r.Audit = append(r.Audit, fo)
		}
	}
	for _, op := range d.Patch {
		r.Patch = append(r.Patch, map[string]any{"op": op.Operation, "path": op.Path, "value": op.Value})
	}
	return r
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
