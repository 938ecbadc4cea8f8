package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteGitHub writes GitHub Actions workflow commands: one ::error annotation per violation and one
// ::warning per warning, at the field's file and line, so they show on the pull request's diff, then
// the summary as a plain log line.
// https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands
func WriteGitHub(w io.Writer, r *Report) error {
	for _, res := range r.Results {
		for _, level := range []struct {
			cmd      string
			findings []Finding
		}{{"error", res.Violations}, {"warning", res.Warnings}} {
			for _, f := range level.findings {
				msg := findingText(res, f)
				if _, err := fmt.Fprintf(w, "::%s file=%s,line=%d,title=%s::%s\n", level.cmd,
					escapeProperty(res.File), f.Line, escapeProperty("capz-encryption-webhook "+string(f.Rule)), escapeData(msg)); err != nil {
					return err
				}
			}
		}
	}
	_, err := fmt.Fprintln(w, Summary(r))
	return err
}

// escapeData and escapeProperty escape as the Actions toolkit does (@actions/core, command.ts):
// a message may not hold line breaks or %, a property not , or : either.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// findingText is a finding as one message: the object, and the message, which names the field (the
// field is added when it does not).
func findingText(res Result, f Finding) string {
	msg := f.Message
	if f.Field != "" && !strings.Contains(msg, f.Field) {
		msg = f.Field + ": " + msg
	}
	return fmt.Sprintf("%s %s/%s: %s", res.Kind, res.Namespace, res.Name, msg)
}
