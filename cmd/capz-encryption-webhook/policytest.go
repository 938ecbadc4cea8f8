package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policytest"
)

type testOptions struct {
	files  []string
	output string
}

func newTestCmd() *cobra.Command {
	o := &testOptions{}
	cmd := &cobra.Command{
		Use:   "test [-f] SUITE ...",
		Short: "Run policy test suites: objects and the decisions, rules and patches the policy must give",
		Long: `Runs EncryptionPolicyTest suites, as kyverno test and gator verify run theirs: each case is an
object (inline, or from a manifest file) evaluated offline as a CREATE with defaults injected, as check
does, and compared with what the case expects: allowed or not, the exact rules that deny and that warn,
the exact patch, and fields of the object after the patch. See docs/examples/policy-tests.

Exit status: 0 when every case passes, 1 when one fails (the output says how), 2 when a suite or a
case cannot run (unreadable suite, policy or manifest; a case that matches no object).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.files = append(o.files, args...)
			if len(o.files) == 0 {
				return &exitError{code: 2, err: errors.New("no suite: give suite files with -f or as arguments")}
			}
			return o.run(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringArrayVarP(&o.files, "filename", "f", nil, "suite file (repeatable)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "output `FORMAT`: text or junit")
	return cmd
}

func (o *testOptions) run(stdout io.Writer) error {
	if o.output != "text" && o.output != "junit" {
		return &exitError{code: 2, err: fmt.Errorf("--output must be text or junit, not %q", o.output)}
	}
	var results []*policytest.SuiteResult
	for _, f := range o.files {
		s, err := policytest.Load(f)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		r, err := policytest.Run(s, clock())
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		results = append(results, r)
	}
	write := policytest.WriteText
	if o.output == "junit" {
		write = policytest.WriteJUnit
	}
	if err := write(stdout, results); err != nil {
		return &exitError{code: 2, err: err}
	}
	switch t := policytest.Count(results); {
	case t.Errors > 0:
		return &exitError{code: 2, err: errors.New("")}
	case t.Failed > 0:
		return &exitError{code: 1, err: errors.New("")}
	}
	return nil
}
