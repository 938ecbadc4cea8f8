package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/selftest"
)

type selftestOptions struct {
	kubeconfig string
	namespace  string
	expect     string
	timeout    time.Duration
}

func newSelftestCmd() *cobra.Command {
	o := &selftestOptions{}
	cmd := &cobra.Command{
		Use:   "selftest",
		Short: "Check that the installed webhook denies: a server-side dry run of an AzureMachineTemplate with a placeholder DES ID",
		Long: `Sends the API server a server-side dry run (nothing is created) of an AzureMachineTemplate whose
Disk Encryption Set ID is the documentation's placeholder, and expects the webhook's des-id-malformed
denial (--expect deny), or its warning when the policy only warns (--expect warn). With a chart
cel.mode, the compiled ValidatingAdmissionPolicy for des-id-malformed refuses the probe before any
validating webhook is asked; that denial passes too, and the message says the webhook itself was
not shown to answer. The chart's
helm test Pod runs it with in-cluster credentials; it needs create on azuremachinetemplates in
--namespace, which the dry run requires.

Exit status: 0 when the answer is the expected one, 1 when it is not (the message says what is wrong),
2 on bad flags or no Kubernetes configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
	f.StringVar(&o.namespace, "namespace", "default", "namespace of the dry run: one the webhook's namespaceSelector covers")
	f.StringVar(&o.expect, "expect", string(selftest.ExpectDeny), "expected answer: deny, or warn when policy.warnOnly is on or the rule is at warn")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound on the dry run")
	return cmd
}

func (o *selftestOptions) run(ctx context.Context, out io.Writer) error {
	expect := selftest.Expect(o.expect)
	if expect != selftest.ExpectDeny && expect != selftest.ExpectWarn {
		return &exitError{code: 2, err: fmt.Errorf("--expect must be deny or warn, not %q", o.expect)}
	}
	cfg, err := (&serveOptions{kubeconfig: o.kubeconfig}).restConfig() // the same rules as serve and audit
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	msg, err := selftest.Run(ctx, cfg, o.namespace, expect)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("selftest failed: %w", err)}
	}
	fmt.Fprintln(out, "selftest passed:", msg)
	return nil
}
