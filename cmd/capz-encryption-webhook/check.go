package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/offline"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/report"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/streamcheck"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/version"
)

// clock is the time check and test judge the age of catalog evidence against; the golden-file tests
// pin it, since a capture's age decides between a denial and a warning.
var clock = time.Now

// checkFormats are the values of check --output.
var checkFormats = []string{"text", "json", "junit", "sarif", "github", "yaml"}

type checkOptions struct {
	files      []string
	policyFile string
	catalog    string
	location   string
	namespace  string
	output     string
	failOnWarn bool
}

func newCheckCmd() *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check [-f] FILE|DIR|- ...",
		Short: "Evaluate CAPZ manifests offline, as the webhook would on CREATE",
		Long: `Reads multi-document YAML or JSON, evaluates every CAPZ machine object it knows as a CREATE
(other kinds are skipped and counted), and prints the verdict, the rules hit and the patch of defaults.
Clusters and AzureClusters in the same input are used to find each object's region and whether its
cluster is AKS, as the webhook does in a live cluster. Files are given with -f or as arguments.

Output formats (-o):
  text    verdicts for people (default)
  json    one array of results
  junit   JUnit XML: a test suite per file, a test case per object, failed when denied
  sarif   SARIF 2.1.0 for code scanning: results at the field's file and line
  github  GitHub Actions annotations (::error / ::warning) at the field's file and line
  yaml    the input with the defaults applied, for GitOps repositories that commit what will be
          stored: documents without a patch are written back byte for byte; patched ones keep
          comments, key order and quoting (blank lines inside them are lost). The verdicts go to
          stderr. Unlike the other formats, which read one document at a time, -o yaml holds
          its whole input in memory.

Exit status: 0 when nothing is denied, 1 when something is denied (or, with --fail-on-warn, warned),
2 on unreadable input or a bad policy.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.files = append(o.files, args...)
			if len(o.files) == 0 {
				return &exitError{code: 2, err: errors.New("no input: give files or directories with -f or as arguments (- for stdin)")}
			}
			return o.run(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "manifest file, directory or - for stdin (repeatable)")
	f.StringVar(&o.policyFile, "policy", "", "policy file (EncryptionPolicy or Palette pack values); default: built-in policy, every rule deny, no defaults")
	// pflag takes text in backquotes as the flag's value name, so the az command is quoted otherwise.
	f.StringVar(&o.catalog, "sku-catalog", "", "VM-size catalog `FILE`: the JSON that 'az vm list-skus --all -o json' prints; layered over the embedded catalog")
	f.StringVar(&o.location, "location", "", "region of objects whose region cannot be found from spec.location, their Cluster or their location annotation")
	f.StringVar(&o.namespace, "namespace", "default", "namespace of objects that name none")
	f.StringVarP(&o.output, "output", "o", "text", "output `FORMAT`: "+strings.Join(checkFormats, ", "))
	f.BoolVar(&o.failOnWarn, "fail-on-warn", false, "exit 1 when an object has a warning, as when one is denied")
	return cmd
}

func (o *checkOptions) run(stdin io.Reader, stdout, stderr io.Writer) error {
	valid := false
	for _, f := range checkFormats {
		valid = valid || o.output == f
	}
	if !valid {
		return &exitError{code: 2, err: fmt.Errorf("--output must be one of %s, not %q", strings.Join(checkFormats, ", "), o.output)}
	}
	opts := offline.Options{PolicyFile: o.policyFile, Catalog: o.catalog, Location: o.location, Namespace: o.namespace, Now: clock()}
	var rep *report.Report
	var files []manifest.File
	var objs []manifest.Object
	var decisions map[*manifest.Object]*policy.Decision
	if o.output == "yaml" {
		// -o yaml writes the input back, so it holds the input: read whole, decided whole.
		var err error
		if files, err = manifest.ReadFiles(o.files, stdin); err != nil {
			return &exitError{code: 2, err: err}
		}
		objs = manifest.Objects(files)
		if rep, decisions, err = streamcheck.Whole(objs, opts); err != nil {
			return &exitError{code: 2, err: err}
		}
	} else {
		// Every other format streams: one document at a time (see internal/streamcheck).
		in := streamcheck.OpenInputs(o.files, stdin)
		var err error
		rep, _, err = streamcheck.Run(in.Sources, opts)
		if cerr := in.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("removing the copy of stdin: %w", cerr)
		}
		if err != nil {
			return &exitError{code: 2, err: err}
		}
	}

	var err error
	switch o.output {
	case "json":
		err = report.WriteJSON(stdout, rep)
	case "junit":
		err = report.WriteJUnit(stdout, rep, o.failOnWarn)
	case "sarif":
		err = report.WriteSARIF(stdout, rep, version.Version)
	case "github":
		err = report.WriteGitHub(stdout, rep)
	case "yaml":
		if err = writePatchedManifests(stdout, files, objs, decisions); err == nil {
			err = report.WriteText(stderr, rep)
		}
	default:
		err = report.WriteText(stdout, rep)
	}
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if rep.Failed(o.failOnWarn) {
		return &exitError{code: 1, err: errors.New("")}
	}
	return nil
}
