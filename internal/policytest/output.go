package policytest

import (
	"fmt"
	"io"
	"strings"

	"github.com/jstemmer/go-junit-report/v2/junit"
)

// Totals counts cases over suites.
type Totals struct{ Cases, Passed, Failed, Errors int }

// Count totals the results.
func Count(results []*SuiteResult) Totals {
	var t Totals
	for _, s := range results {
		for _, c := range s.Cases {
			t.Cases++
			switch {
			case c.Err != nil:
				t.Errors++
			case len(c.Mismatch) > 0:
				t.Failed++
			default:
				t.Passed++
			}
		}
	}
	return t
}

// WriteText writes one line per case, what a failed case missed under it, and a summary.
func WriteText(w io.Writer, results []*SuiteResult) error {
	for _, s := range results {
		fmt.Fprintf(w, "suite %s (%s), policy: %s\n", s.Name, s.Path, s.Policy)
		for _, c := range s.Cases {
			switch {
			case c.Err != nil:
				fmt.Fprintf(w, "ERROR %s (%s:%d): %v\n", c.Name, s.Path, c.Line, c.Err)
			case len(c.Mismatch) > 0:
				fmt.Fprintf(w, "FAIL  %s (%s:%d)\n", c.Name, s.Path, c.Line)
				for _, m := range c.Mismatch {
					fmt.Fprintln(w, indent(m, "      "))
				}
			default:
				fmt.Fprintf(w, "PASS  %s\n", c.Name)
			}
		}
	}
	t := Count(results)
	_, err := fmt.Fprintf(w, "\n%d cases: %d passed, %d failed, %d errors\n", t.Cases, t.Passed, t.Failed, t.Errors)
	return err
}

// WriteJUnit writes the results as JUnit XML: a test suite per suite file, a test case per case.
func WriteJUnit(w io.Writer, results []*SuiteResult) error {
	out := junit.Testsuites{Name: "capz-encryption-webhook test"}
	for _, s := range results {
		ts := junit.Testsuite{Name: s.Name, File: s.Path}
		for _, c := range s.Cases {
			tc := junit.Testcase{Name: c.Name, Classname: s.Name, Time: fmt.Sprintf("%.3f", c.Duration.Seconds())}
			switch {
			case c.Err != nil:
				tc.Error = &junit.Result{Message: c.Err.Error()}
			case len(c.Mismatch) > 0:
				tc.Failure = &junit.Result{Message: fmt.Sprintf("%s:%d: %d expectation(s) not met", s.Path, c.Line, len(c.Mismatch)),
					Data: strings.Join(c.Mismatch, "\n")}
			}
			ts.AddTestcase(tc)
		}
		out.AddSuite(ts)
	}
	return out.WriteXML(w)
}
