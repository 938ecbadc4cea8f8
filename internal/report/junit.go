package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/jstemmer/go-junit-report/v2/junit"
)

// WriteJUnit writes a JUnit XML report: one test suite per input file, one test case per checked
// object, failed when the object is denied (or, failOnWarn, has a warning). The failure's type lists
// the rules; its text has one line per finding with its line and field. Warnings of a passing object
// go to its system-out.
func WriteJUnit(w io.Writer, r *Report, failOnWarn bool) error {
	suites := junit.Testsuites{Name: "capz-encryption-webhook check"}
	var order []string
	byFile := map[string]*junit.Testsuite{}
	for _, res := range r.Results {
		s, ok := byFile[res.File]
		if !ok {
			s = &junit.Testsuite{Name: res.File, File: res.File}
			byFile[res.File] = s
			order = append(order, res.File)
		}
		tc := junit.Testcase{
			Name:      fmt.Sprintf("%s %s/%s", res.Kind, res.Namespace, res.Name),
			Classname: res.File,
		}
		failing := res.Violations
		if failOnWarn {
			failing = append(append([]Finding{}, res.Violations...), res.Warnings...)
		}
		if len(failing) > 0 {
			var rules []string
			for _, f := range failing {
				rules = append(rules, string(f.Rule))
			}
			verdict := "denied"
			if len(res.Violations) == 0 {
				verdict = "warned (--fail-on-warn)"
			}
			tc.Failure = &junit.Result{
				Message: fmt.Sprintf("%s by %s", verdict, strings.Join(rules, ", ")),
				Type:    strings.Join(rules, ","),
				Data:    findingLines(res.File, failing),
			}
		}
		if !failOnWarn && len(res.Warnings) > 0 {
			tc.SystemOut = &junit.Output{Data: findingLines(res.File, res.Warnings)}
		}
		s.AddTestcase(tc)
	}
	for _, f := range order {
		suites.AddSuite(*byFile[f])
	}
	return suites.WriteXML(w)
}

func findingLines(file string, fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s:%d: [%s] %s: %s\n", file, f.Line, f.Rule, f.Field, f.Message)
	}
	return b.String()
}
