package report

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// WriteText writes the verdicts for people: one block per object, then a summary line.
func WriteText(w io.Writer, r *Report) error {
	for _, res := range r.Results {
		verdict := "ALLOWED"
		if !res.Allowed {
			verdict = "DENIED"
		}
		region := "region unknown"
		if res.Region != "" {
			region = "region " + res.Region + " from " + res.RegionSource
		}
		if res.Binding != "" && res.Binding != policy.BindingUnbound {
			region += ", bound by " + res.Binding
		}
		fmt.Fprintf(w, "%s %s/%s (%s:%d): %s  [%s; catalog %s]\n", res.Kind, res.Namespace, res.Name, res.File, res.Line, verdict, region, res.Catalog)
		for _, f := range res.Violations {
			fmt.Fprintf(w, "  deny  [%s] %s: %s\n", f.Rule, f.Field, f.Message)
		}
		for _, f := range res.Warnings {
			fmt.Fprintf(w, "  warn  [%s] %s: %s\n", f.Rule, f.Field, f.Message)
		}
		for _, f := range res.Audit {
			fmt.Fprintf(w, "  audit [%s] %s: %s\n", f.Rule, f.Field, f.Message)
		}
		if len(res.Patch) > 0 {
			fmt.Fprintf(w, "  patch (default %q):\n", res.Default)
			for _, op := range res.Patch {
				v, _ := json.Marshal(op["value"])
				fmt.Fprintf(w, "    %s %s %s\n", op["op"], op["path"], v)
			}
		}
	}
	_, err := fmt.Fprintf(w, "\n%s\n", Summary(r))
	return err
}

// Summary is the one-line summary of a run.
func Summary(r *Report) string {
	c := r.Count()
	return fmt.Sprintf("%d checked: %d denied, %d allowed (%d with defaults injected, %d with warnings); %d other objects skipped; policy: %s",
		c.Checked, c.Denied, c.Checked-c.Denied, c.Patched, c.Warned, r.Skipped, r.Policy)
}

// WriteJSON writes the results as one JSON array.
func WriteJSON(w io.Writer, r *Report) error {
	results := r.Results
	if results == nil {
		results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(results)
}
