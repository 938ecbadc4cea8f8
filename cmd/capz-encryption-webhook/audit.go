package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-logr/zapr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/audit"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/audit/report"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/offline"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	checkreport "github.com/capz-encryption-webhook/capz-encryption-webhook/internal/report"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
)

type auditOptions struct {
	kubeconfig string
	policyFile string
	catalog    string
	output     string
	namespace  string
	readAzure  bool
	pageSize   int64
	timeout    time.Duration
	logLevel   string
	azure      azureOptions
}

func newAuditCmd() *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit [--kubeconfig FILE] [--policy FILE] [--azure] [-o text|json|report]",
		Short: "Judge the CAPZ objects that already exist in a cluster (and, with --azure, what Azure built for them)",
		Long: `Lists every kind the webhook guards, page by page, and judges each stored object with the policy
as it would be judged today: what would be denied, which organisation defaults it lacks, and which
cluster and region it belongs to (resolved as admission resolves them). Nothing is changed.

With --azure-subscription-id the VM sizes and Disk Encryption Sets (with their Key Vault keys) are
read live, as serve reads them; with --azure as well, every AzureMachine's VM and managed disks and
every AzureMachinePool's scale set are compared with what the object and the policy ask for.

Output: text, json (the shape of check -o json) or report (openreports.io Report objects as YAML,
one per namespace, ready for kubectl apply).

Exit status: 0 nothing denied, 1 something denied, 2 the audit could not run or could not judge
everything (an object it could not evaluate, a machine it could not read in Azure).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.StringVar(&o.policyFile, "policy", "", "policy file (EncryptionPolicy or Palette pack values); default: built-in policy, every rule at its built-in action, no defaults")
	// pflag takes text in backquotes as the flag's value name, so the az command is quoted otherwise.
	f.StringVar(&o.catalog, "sku-catalog", "", "VM-size catalog `FILE`: the JSON that 'az vm list-skus --all -o json' prints; layered over the embedded catalog")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text, json or report")
	f.StringVarP(&o.namespace, "namespace", "n", "", "audit one namespace only (default: all)")
	f.BoolVar(&o.readAzure, "azure", false, "also read every machine's VM, managed disks and scale set from Azure (needs --azure-subscription-id)")
	f.Int64Var(&o.pageSize, "page-size", audit.DefaultPageSize, "objects per list call")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on the whole audit")
	f.StringVar(&o.logLevel, "log-level", "error", "log level of the diagnostics on stderr (debug, info, error)")
	o.azure.addFlags(f)
	return cmd
}

func (o *auditOptions) run(ctx context.Context, stdout io.Writer) error {
	if o.output != "text" && o.output != outputJSON && o.output != "report" {
		return &exitError{code: 2, err: fmt.Errorf("--output must be text, json or report, not %q", o.output)}
	}
	if o.readAzure && o.azure.subscription == "" {
		return &exitError{code: 2, err: errors.New("--azure needs --azure-subscription-id (or AZURE_SUBSCRIPTION_ID)")}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	zl, err := newLogger(o.logLevel) // diagnostics go to stderr, as serve's logs do
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	log := zapr.NewLogger(zl)
	pol, err := offline.LoadPolicy(o.policyFile, nil) // the built-in policy without --policy
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	live, err := o.azure.newLiveData(nil, log.WithName("azure"), func() []string { return pol.AllowedDESSubscriptions })
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	liveSKUs, des := live.catalogs()
	catalog, err := skucatalog.Build(liveSKUs, o.catalog)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	c, err := o.client()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	served := clusterinfo.ServedVersions(c.RESTMapper())
	s := &audit.Scanner{Reader: c, ClusterGVK: served.ClusterGVK(), Served: served, Policy: func() *policy.Policy { return pol }, Catalog: catalog, DES: des,
		Now: time.Now, PageSize: o.pageSize, Namespace: o.namespace, Log: log}
	if live != nil {
		s.Warm = live
		if o.readAzure {
			s.Machines, s.DefaultSubscription = live.machines, o.azure.subscription
		}
	}
	var results []audit.Result
	sum, err := s.Run(ctx, func(r audit.Result) error {
		if o.output == "text" {
			printAuditText(stdout, r)
			return nil
		}
		results = append(results, r)
		return nil
	})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	switch o.output {
	case outputJSON:
		out := make([]auditResult, 0, len(results))
		for _, r := range results {
			out = append(out, toAuditResult(r))
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return &exitError{code: 2, err: err}
		}
	case "report":
		for _, rep := range report.Build(results, time.Now()) {
			b, err := yaml.Marshal(rep)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			fmt.Fprintf(stdout, "---\n%s", b)
		}
	default:
		fmt.Fprintf(stdout, "\n%d audited: %d denied, %d with warnings only, %d not fully judged (errors)", sum.Objects, sum.Denied, sum.Warned, sum.Errors)
		if len(sum.Skipped) > 0 {
			fmt.Fprintf(stdout, "; kinds not served by the cluster: %s", strings.Join(sum.Skipped, ", "))
		}
		fmt.Fprintf(stdout, "; policy: %s\n", sum.Policy)
	}
	switch {
	case sum.Denied > 0:
		return &exitError{code: 1, err: errors.New("")}
	case sum.Errors > 0:
		return &exitError{code: 2, err: fmt.Errorf("%d objects could not be fully judged", sum.Errors)}
	}
	return nil
}

func (o *auditOptions) client() (client.Client, error) {
	cfg, err := (&serveOptions{kubeconfig: o.kubeconfig}).restConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// auditResult is one object's verdict in `audit -o json`: the fields of `check -o json` (less the
// file and line an object in a cluster does not have), plus where the object lives.
type auditResult struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	checkreport.Verdict
	APIVersion      string           `json:"apiVersion"`
	UID             string           `json:"uid"`
	MissingDefaults []string         `json:"missingDefaults"`
	Azure           *audit.AzureRead `json:"azure,omitempty"`
	Error           string           `json:"error,omitempty"`
}

func toAuditResult(r audit.Result) auditResult {
	out := auditResult{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, APIVersion: r.APIVersion, UID: string(r.UID), Azure: r.Azure, Error: r.Error,
		MissingDefaults: []string{}}
	d := r.Decision
	if d == nil {
		// An object that could not be judged: the lists are empty, not null, as for any other.
		d = &policy.Decision{}
	}
	out.Verdict = checkreport.NewVerdict(d, r.Cluster, nil)
	if d.MissingDefaults != nil {
		out.MissingDefaults = d.MissingDefaults
	}
	return out
}

func printAuditText(w io.Writer, r audit.Result) {
	if r.Decision == nil {
		fmt.Fprintf(w, "%s %s/%s: ERROR %s\n", r.Kind, r.Namespace, r.Name, r.Error)
		return
	}
	d := r.Decision
	verdict := "OK"
	switch {
	case !d.Allowed:
		verdict = "DENIED"
	case len(d.Warnings()) > 0:
		verdict = "WARN"
	}
	where := "region unknown"
	if d.Region != "" {
		where = "region " + d.Region + " from " + d.RegionSource
	}
	if r.Cluster.Name != "" {
		where = "cluster " + r.Cluster.Name + "; " + where
	}
	fmt.Fprintf(w, "%s %s/%s: %s  [%s; catalog %s]\n", r.Kind, r.Namespace, r.Name, verdict, where, d.Catalog.Name)
	for _, f := range d.Findings {
		fmt.Fprintf(w, "  %-5s [%s] %s: %s\n", f.Action, f.Rule, f.Field, f.Message)
	}
	if len(d.MissingDefaults) > 0 {
		fmt.Fprintf(w, "  missing defaults of %q: %s\n", d.DefaultName, strings.Join(d.MissingDefaults, ", "))
	}
	if a := r.Azure; a != nil {
		if a.Error != "" {
			fmt.Fprintf(w, "  azure: ERROR %s\n", a.Error)
		} else {
			fmt.Fprintf(w, "  azure: compared with %s\n", a.Resource)
		}
	}
}
