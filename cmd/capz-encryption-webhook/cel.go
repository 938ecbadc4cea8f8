package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/offline"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
)

type celOptions struct {
	policyFile string
	catalog    string
	output     string
	explain    bool
	namespace  string
	now        string
}

func newCELCmd() *cobra.Command {
	o := &celOptions{}
	cmd := &cobra.Command{
		Use:   "cel [--policy FILE] [--sku-catalog FILE] [-o yaml|json] [--explain]",
		Short: "Print the admission policies that enforce the CEL-expressible part of the policy in the apiserver",
		Long: `Compiles what the policy can decide from the object alone into ValidatingAdmissionPolicies
(Kubernetes 1.30+) and, for a single default that applies to every region and namespace,
MutatingAdmissionPolicies (1.36+), with their bindings; the VM-size verdicts are constants in
the policies that need them. kubectl apply --server-side -f - installs them; they are labelled
app.kubernetes.io/managed-by=capz-encryption-webhook.

What needs data the apiserver cannot see (the Cluster's region, live Disk Encryption Set facts) is
left to the webhook; the YAML header lists it with the reasons, and --explain prints only that.
The VM-size verdicts are what the webhook concludes wherever the machine is, with evidence more
than 3 years old only warning, as of now (--now fixes the date for reproducible output).

Exit status: 0 on success, 2 on an unreadable policy or catalog or a bad flag.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.policyFile, "policy", "", "policy file (EncryptionPolicy or Palette pack values); default: built-in policy, every rule deny, no defaults")
	f.StringVar(&o.catalog, "sku-catalog", "", "VM-size catalog `FILE`: the JSON that 'az vm list-skus --all -o json' prints; layered over the embedded catalog")
	f.StringVarP(&o.output, "output", "o", "yaml", "output format: yaml or json (a v1 List)")
	f.BoolVar(&o.explain, "explain", false, "print what is compiled and what is left to the webhook, and why, instead of the objects")
	f.StringVar(&o.namespace, "namespace", celpolicy.DefaultNamespace, "the webhook's namespace, which the bindings leave out (as they leave out kube-system)")
	f.StringVar(&o.now, "now", "", "judge the age of catalog evidence as of this time (RFC 3339, or a date YYYY-MM-DD) instead of now, for reproducible output")
	return cmd
}

func (o *celOptions) run(stdout io.Writer) error {
	if o.output != "yaml" && o.output != outputJSON {
		return &exitError{code: 2, err: fmt.Errorf("--output must be yaml or json, not %q", o.output)}
	}
	pol, err := offline.LoadPolicy(o.policyFile, nil) // the built-in policy without --policy
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	// The same catalog as check and serve without live data: a catalog file over the embedded one.
	catalog, err := skucatalog.Build(nil, o.catalog)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	now := time.Now()
	if o.now != "" {
		if now, err = parseNow(o.now); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	res, err := celpolicy.Compile(pol, catalog, celpolicy.Options{Namespace: o.namespace, Now: now})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	switch {
	case o.explain:
		err = res.WriteExplain(stdout)
	case o.output == outputJSON:
		err = res.WriteJSON(stdout)
	default:
		err = res.WriteYAML(stdout)
	}
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	return nil
}

// parseNow reads --now: RFC 3339, or a date (midnight UTC).
func parseNow(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--now %q: want RFC 3339 (2026-11-27T00:00:00Z) or a date (2026-11-27)", s)
	}
	return t, nil
}
