package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
)

type checkOptions struct {
	files      []string
	policyFile string
	catalog    string
	location   string
	namespace  string
	output     string
}

func newCheckCmd() *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check -f FILE|DIR|- [-f ...]",
		Short: "Evaluate CAPZ manifests offline, as the webhook would on CREATE",
		Long: `Reads multi-document YAML or JSON, evaluates every CAPZ machine object it knows as a CREATE
(other kinds are skipped and counted), and prints the verdict, the rules hit and the patch of defaults.
Clusters and AzureClusters in the same input are used to find each object's region and whether its
cluster is AKS, as the webhook does in a live cluster.

Exit status: 0 when nothing is denied, 1 when something is denied, 2 on unreadable input or a bad policy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.files, "filename", "f", nil, "manifest file, directory or - for stdin (repeatable)")
	f.StringVar(&o.policyFile, "policy", "", "policy file (EncryptionPolicy or Palette pack values); default: built-in policy, every rule deny, no defaults")
	// pflag takes text in backquotes as the flag's value name, so the az command is quoted otherwise.
	f.StringVar(&o.catalog, "sku-catalog", "", "VM-size catalog `FILE`: the JSON that 'az vm list-skus --all -o json' prints; layered over the embedded catalog")
	f.StringVar(&o.location, "location", "", "region of objects whose region cannot be found from spec.location, their Cluster or their location annotation")
	f.StringVar(&o.namespace, "namespace", "default", "namespace of objects that name none")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// checkResult is one object's verdict, in the shape of `check -o json`.
type checkResult struct {
	Kind         string              `json:"kind"`
	Namespace    string              `json:"namespace"`
	Name         string              `json:"name"`
	File         string              `json:"file"`
	Line         int                 `json:"line"`
	Allowed      bool                `json:"allowed"`
	Violations   []findingOut        `json:"violations"`
	Warnings     []findingOut        `json:"warnings"`
	Audit        []findingOut        `json:"audit"`
	Patch        []map[string]any    `json:"patch"`
	Injected     []string            `json:"injected,omitempty"`
	Region       string              `json:"region"`
	RegionSource string              `json:"regionSource"`
	Binding      string              `json:"binding"`
	Catalog      string              `json:"catalog"`
	Default      string              `json:"default,omitempty"`
	Cluster      *policy.ClusterInfo `json:"cluster,omitempty"`
	Evidence     []policy.Evidence   `json:"evidence,omitempty"` // the VM-size data the verdicts used, and when it was captured
}

type findingOut struct {
	Rule    policy.RuleID `json:"rule"`
	Field   string        `json:"field"`
	Message string        `json:"message"`
}

func (o *checkOptions) run(stdin io.Reader, stdout io.Writer) error {
	if o.output != "text" && o.output != "json" {
		return &exitError{code: 2, err: fmt.Errorf("--output must be text or json, not %q", o.output)}
	}
	objs, err := manifest.ReadPaths(o.files, stdin)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	pol, err := o.loadPolicy(objs)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	catalog, err := skucatalog.Build(nil, o.catalog)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	store, err := newInputStore(objs, o.namespace)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	now := time.Now()
	var results []checkResult
	skipped := 0
	for _, obj := range objs {
		if !policy.Handles(obj.APIVersion, obj.Kind) {
			skipped++
			continue
		}
		ns := obj.Namespace
		if ns == "" {
			ns = o.namespace
		}
		info, err := store.resolve(obj, ns)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		if o.location != "" {
			info.Locations = append(info.Locations, policy.LocationCandidate{Location: o.location, Source: "flag"})
		}
		env := info.Environment(catalog, nil)
		env.Now = now // the age of catalog evidence is judged against it, as the webhook does
		cluster := info.Cluster
		d, err := policy.Evaluate(pol, policy.Request{Operation: policy.OperationCreate, Object: obj.JSON, Namespace: ns}, env)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("%s:%d: %s %s: %w", obj.File, obj.Line, obj.Kind, obj.Name, err)}
		}
		results = append(results, toResult(obj, d, cluster))
	}

	denied := 0
	for _, r := range results {
		if !r.Allowed {
			denied++
		}
	}
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if results == nil {
			results = []checkResult{}
		}
		if err := enc.Encode(results); err != nil {
			return &exitError{code: 2, err: err}
		}
	} else {
		printText(stdout, results, skipped, pol.Source)
	}
	if denied > 0 {
		return &exitError{code: 1, err: errors.New("")}
	}
	return nil
}

// loadPolicy reads --policy; without it, an EncryptionPolicy document in the input is used (so a
// directory can carry its own policy), else the built-in policy.
func (o *checkOptions) loadPolicy(objs []manifest.Object) (*policy.Policy, error) {
	if o.policyFile != "" {
		data, err := os.ReadFile(o.policyFile)
		if err != nil {
			return nil, err
		}
		return policy.Parse(o.policyFile, data)
	}
	var found []manifest.Object
	for _, obj := range objs {
		if obj.APIVersion == policy.APIVersion && obj.Kind == policy.Kind {
			found = append(found, obj)
		}
	}
	switch len(found) {
	case 0:
		return policy.DefaultPolicy(), nil
	case 1:
		return policy.Parse(fmt.Sprintf("%s (document at line %d)", found[0].File, found[0].Line), found[0].JSON)
	default:
		return nil, fmt.Errorf("the input holds %d %s documents (%s:%d, %s:%d, ...); keep one, or choose with --policy",
			len(found), policy.Kind, found[0].File, found[0].Line, found[1].File, found[1].Line)
	}
}

func toResult(obj manifest.Object, d *policy.Decision, cluster policy.ClusterInfo) checkResult {
	r := checkResult{
		Kind: d.Kind, Namespace: d.Namespace, Name: d.Name, File: obj.File, Line: obj.Line,
		Allowed: d.Allowed, Region: d.Region, RegionSource: d.RegionSource, Binding: d.Binding, Catalog: d.Catalog.Name,
		Default: d.DefaultName, Injected: d.Injected,
		Violations: []findingOut{}, Warnings: []findingOut{}, Audit: []findingOut{}, Patch: []map[string]any{},
	}
	r.Evidence = d.Evidence
	if cluster.Name != "" {
		c := cluster
		r.Cluster = &c
	}
	for _, f := range d.Findings {
		fo := findingOut{Rule: f.Rule, Field: f.Field, Message: f.Message}
		switch f.Action {
		case policy.ActionDeny:
			r.Violations = append(r.Violations, fo)
		case policy.ActionWarn:
			r.Warnings = append(r.Warnings, fo)
		default:
			r.Audit = append(r.Audit, fo)
		}
	}
	for _, op := range d.Patch {
		r.Patch = append(r.Patch, map[string]any{"op": op.Operation, "path": op.Path, "value": op.Value})
	}
	return r
}

func printText(w io.Writer, results []checkResult, skipped int, policySource string) {
	denied, patched := 0, 0
	for _, r := range results {
		verdict := "ALLOWED"
		if !r.Allowed {
			verdict = "DENIED"
			denied++
		}
		if len(r.Patch) > 0 {
			patched++
		}
		region := "region unknown"
		if r.Region != "" {
			region = "region " + r.Region + " from " + r.RegionSource
		}
		if r.Binding != "" && r.Binding != policy.BindingUnbound {
			region += ", bound by " + r.Binding
		}
		fmt.Fprintf(w, "%s %s/%s (%s:%d): %s  [%s; catalog %s]\n", r.Kind, r.Namespace, r.Name, r.File, r.Line, verdict, region, r.Catalog)
		for _, f := range r.Violations {
			fmt.Fprintf(w, "  deny  [%s] %s: %s\n", f.Rule, f.Field, f.Message)
		}
		for _, f := range r.Warnings {
			fmt.Fprintf(w, "  warn  [%s] %s: %s\n", f.Rule, f.Field, f.Message)
		}
		for _, f := range r.Audit {
			fmt.Fprintf(w, "  audit [%s] %s: %s\n", f.Rule, f.Field, f.Message)
		}
		if len(r.Patch) > 0 {
			fmt.Fprintf(w, "  patch (default %q):\n", r.Default)
			for _, op := range r.Patch {
				v, _ := json.Marshal(op["value"])
				fmt.Fprintf(w, "    %s %s %s\n", op["op"], op["path"], v)
			}
		}
	}
	fmt.Fprintf(w, "\n%d checked: %d denied, %d allowed (%d with defaults injected); %d other objects skipped; policy: %s\n",
		len(results), denied, len(results)-denied, patched, skipped, policySource)
}

// inputStore holds the whole input, so that objects are bound to their clusters the way the webhook
// binds them from its cache: by label, by owner, and by whoever references them (a flavor's
// KubeadmControlPlane and MachineDeployments), then read the Cluster and its AzureCluster.
type inputStore struct{ store *clusterinfo.ObjectStore }

func newInputStore(objs []manifest.Object, defaultNS string) (*inputStore, error) {
	decoded := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		var m map[string]any
		if err := json.Unmarshal(o.JSON, &m); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", o.File, o.Line, err)
		}
		decoded = append(decoded, m)
	}
	return &inputStore{store: clusterinfo.NewObjectStore(decoded, defaultNS)}, nil
}

func (st *inputStore) resolve(obj manifest.Object, ns string) (clusterinfo.Result, error) {
	meta, err := objmeta.Decode(obj.JSON)
	if err != nil {
		return clusterinfo.Result{}, fmt.Errorf("%s:%d: %w", obj.File, obj.Line, err)
	}
	subject := clusterinfo.SubjectOf(meta, ns, nil)
	self := st.store.Excluding(schema.GroupKind{Group: subject.Group, Kind: subject.Kind}, ns, subject.Name)
	cluster, locations := clusterinfo.Resolve(context.Background(), self, subject)
	return clusterinfo.Result{Cluster: cluster, Locations: locations}, nil
}
