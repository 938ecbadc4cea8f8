// Command capz-encryption-webhook enforces the organisation's disk-encryption policy on Cluster API
// Provider Azure objects: `serve` runs the admission webhook, `check` evaluates manifests offline,
// `test` runs policy test suites, `audit` judges what already exists in a cluster (and in Azure),
// `selftest` checks from a client's seat that the installed webhook denies.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/version"
)

// exitError carries a process exit code through cobra, so that `check` can exit 1 on a denial and 2
// on unreadable input without cobra printing usage for either.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "capz-encryption-webhook",
		Short:         "Admission webhook that enforces disk encryption on Cluster API Provider Azure machines",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newCheckCmd(), newServeCmd(), newAuditCmd(), newCELCmd(), newTestCmd(), newSelftestCmd(), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.String())
		},
	}
}

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "error:", ee.err)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(2)
}

// outputJSON is the -o value for JSON output (check, audit, cel).
const outputJSON = "json"
