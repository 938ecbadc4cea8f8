package policytest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	"github.com/pmezard/go-difflib/difflib"
	"go.yaml.in/yaml/v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/offline"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// SuiteResult is the outcome of one suite.
type SuiteResult struct {
	Name, Path string
	Policy     string
	Cases      []CaseResult
}

// CaseResult is the outcome of one case: passed, failed (Mismatches say how), or in error (the case
// could not run: its file is missing, its selector matches nothing, ...).
type CaseResult struct {
	Name     string
	Line     int
	Mismatch []string
	Err      error
	Duration time.Duration
}

// Passed says whether the case ran and met every expectation.
func (c CaseResult) Passed() bool { return c.Err == nil && len(c.Mismatch) == 0 }

// Run runs every case of s, judging the age of catalog evidence at now (zero: the current time). An
// error means the suite itself could not run (its policy, catalog or resources are unreadable).
func Run(s *Suite, now time.Time) (*SuiteResult, error) {
	resources, err := manifest.ReadPaths(relAll(s, s.Resources), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: resources: %w", s.path, err)
	}
	// Without a policy file the built-in policy applies, even if a resource file holds one: a suite
	// says what it tests.
	ev, err := offline.New(offline.Options{PolicyFile: s.rel(s.Policy), Catalog: s.rel(s.SKUCatalog), Location: s.Location, Namespace: s.Namespace, Now: now},
		withoutPolicies(resources))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.path, err)
	}
	out := &SuiteResult{Name: s.Name, Path: s.path, Policy: ev.Policy.Source}
	for _, c := range s.Cases {
		start := time.Now()
		r := CaseResult{Name: c.Name, Line: c.line}
		obj, err := s.object(c)
		if err == nil {
			r.Mismatch, err = check(ev, c, obj)
		}
		r.Err, r.Duration = err, time.Since(start)
		out.Cases = append(out.Cases, r)
	}
	return out, nil
}

func relAll(s *Suite, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = s.rel(p)
	}
	return out
}

func withoutPolicies(objs []manifest.Object) []manifest.Object {
	var out []manifest.Object
	for _, o := range objs {
		if o.APIVersion != policy.APIVersion || o.Kind != policy.Kind {
			out = append(out, o)
		}
	}
	return out
}

// object returns the case's object: inline, or picked from its file.
func (s *Suite) object(c Case) (manifest.Object, error) {
	if c.Object.Kind != 0 {
		data, err := yaml.Marshal(&c.Object)
		if err != nil {
			return manifest.Object{}, err
		}
		objs, err := manifest.Parse(fmt.Sprintf("%s:%d", s.path, c.line), data)
		if err != nil {
			return manifest.Object{}, err
		}
		if len(objs) != 1 {
			return manifest.Object{}, fmt.Errorf("object: want one object, found %d", len(objs))
		}
		return objs[0], nil
	}
	objs, err := manifest.ReadPaths([]string{s.rel(c.File)}, nil)
	if err != nil {
		return manifest.Object{}, err
	}
	var found []manifest.Object
	for _, o := range objs {
		if c.Select == nil && !policy.Handles(o.APIVersion, o.Kind) {
			continue
		}
		if c.Select != nil && (c.Select.Kind != "" && o.Kind != c.Select.Kind || c.Select.Name != "" && o.Name != c.Select.Name) {
			continue
		}
		found = append(found, o)
	}
	if len(found) != 1 {
		return manifest.Object{}, fmt.Errorf("%s: %d objects match (want one; use select: {kind, name})", c.File, len(found))
	}
	return found[0], nil
}

// check evaluates the case and lists every expectation it misses.
func check(ev *offline.Evaluator, c Case, obj manifest.Object) ([]string, error) {
	labels := c.NamespaceLabels
	if labels != nil {
		ns := obj.Namespace
		if ns == "" {
			ns = ev.Namespace()
		}
		// The apiserver sets this label on every namespace.
		labels = maps(labels, "kubernetes.io/metadata.name", ns)
	}
	d, _, err := ev.Evaluate(offline.Object{Object: obj, NamespaceLabels: labels, Location: c.Location})
	if err != nil {
		return nil, err
	}
	var miss []string
	want := c.Expect
	if *want.Allowed != d.Allowed {
		m := fmt.Sprintf("allowed: want %v, got %v", *want.Allowed, d.Allowed)
		if want.Violations == nil {
			// Otherwise the violations mismatch below lists them.
			for _, f := range d.Violations() {
				m += fmt.Sprintf("\n  denied by [%s] %s: %s", f.Rule, f.Field, f.Message)
			}
		}
		miss = append(miss, m)
	}
	if want.Violations != nil {
		if m := ruleSet("violations", *want.Violations, d.Violations()); m != "" {
			miss = append(miss, m)
		}
	}
	if want.Warnings != nil {
		if m := ruleSet("warnings", *want.Warnings, d.Warnings()); m != "" {
			miss = append(miss, m)
		}
	}
	patch, err := json.Marshal(d.Patch)
	if err != nil {
		return nil, err
	}
	if d.Patch == nil {
		patch = []byte("[]")
	}
	if want.Patch.Kind != 0 {
		wantPatch, err := nodeJSON(&want.Patch)
		if err != nil {
			return nil, fmt.Errorf("expect.patch: %w", err)
		}
		if m := diff("patch", wantPatch, normalize(patch)); m != "" {
			miss = append(miss, m)
		}
	}
	if len(want.Fields) > 0 {
		result := obj.JSON
		if len(d.Patch) > 0 {
			p, err := jsonpatchv5.DecodePatch(patch)
			if err != nil {
				return nil, err
			}
			if result, err = p.Apply(obj.JSON); err != nil {
				return nil, fmt.Errorf("applying the patch: %w", err)
			}
		}
		var doc any
		if err := json.Unmarshal(result, &doc); err != nil {
			return nil, err
		}
		for _, ptr := range sortedKeys(want.Fields) {
			n := want.Fields[ptr]
			w, err := nodeJSON(&n)
			if err != nil {
				return nil, fmt.Errorf("expect.fields[%s]: %w", ptr, err)
			}
			got, ok, err := pointer(doc, ptr)
			if err != nil {
				return nil, fmt.Errorf("expect.fields: %w", err)
			}
			switch {
			case w == nil && !ok:
			case !reflect.DeepEqual(w, got) || !ok:
				miss = append(miss, fmt.Sprintf("%s: want %s, got %s", ptr, show(w, w != nil), show(got, ok)))
			}
		}
	}
	return miss, nil
}

func maps(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	if _, ok := out[k]; !ok {
		out[k] = v
	}
	return out
}

// ruleSet compares the wanted rule IDs with the findings, as sets, and says what is missing and what
// is extra (with its message, which usually says why).
func ruleSet(what string, want []policy.RuleID, got []policy.Finding) string {
	var b strings.Builder
	for _, r := range want {
		if !slices.ContainsFunc(got, func(f policy.Finding) bool { return f.Rule == r }) {
			fmt.Fprintf(&b, "\n  - %s (expected, not hit)", r)
		}
	}
	for _, f := range got {
		if !slices.Contains(want, f.Rule) {
			fmt.Fprintf(&b, "\n  + %s %s: %s", f.Rule, f.Field, f.Message)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	ids := make([]string, 0, len(got))
	for _, f := range got {
		if !slices.Contains(ids, string(f.Rule)) {
			ids = append(ids, string(f.Rule))
		}
	}
	return fmt.Sprintf("%s: want %v, got [%s]%s", what, want, strings.Join(ids, " "), b.String())
}

// diff compares two JSON values and shows a unified diff of their YAML forms.
func diff(what string, want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	w, _ := sigsyaml.Marshal(want)
	g, _ := sigsyaml.Marshal(got)
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(strings.TrimSuffix(string(w), "\n")), B: difflib.SplitLines(strings.TrimSuffix(string(g), "\n")),
		FromFile: "want", ToFile: "got", Context: 3,
	})
	return what + ":\n" + indent(strings.TrimRight(d, "\n"), "  ")
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// nodeJSON decodes a YAML node into the value encoding/json would give for it.
func nodeJSON(n *yaml.Node) (any, error) {
	data, err := yaml.Marshal(n)
	if err != nil {
		return nil, err
	}
	js, err := sigsyaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	return normalize(js), nil
}

func normalize(js []byte) any {
	var v any
	_ = json.Unmarshal(js, &v)
	return v
}

// show prints a value; a missing one (or an expected null) as absent.
func show(v any, ok bool) string {
	if !ok {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// pointer resolves an RFC 6901 JSON pointer in a decoded JSON value.
func pointer(doc any, p string) (any, bool, error) {
	if p == "" {
		return doc, true, nil
	}
	if !strings.HasPrefix(p, "/") {
		return nil, false, fmt.Errorf("%q is not a JSON pointer (it starts with /)", p)
	}
	cur := doc
	for _, seg := range strings.Split(p[1:], "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false, nil
			}
			cur = v
		case []any:
			// A segment that is no index of the list names nothing in it.
			i, convErr := strconv.Atoi(seg)
			if convErr != nil || i < 0 || i >= len(c) {
				return nil, false, nil //nolint:nilerr // not an error: the field is absent
			}
			cur = c[i]
		default:
			return nil, false, nil
		}
	}
	return cur, true, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
