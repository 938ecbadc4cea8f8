package e2e

// Parity of the compiled admission policies with the webhook on the real kube-apiserver (issue 16):
// every parity case (internal/celpolicy/paritycases) and every sample gets the same decision and the
// same patch from the compiled policies alone, in one namespace, as from the webhook alone, in
// another; and with the webhook down (failurePolicy Ignore, data-only condition) the compiled rules
// still hold.
//
// One webhook process serves both sides: `serve --cel-sync` keeps the compiled policies, bound to
// the namespaces labelled capz-e2e.io/side=cel, and its webhook configurations (rendered from the
// chart) select the namespaces labelled capz-e2e.io/side=webhook. The suite's own webhook leaves
// both out. Both sides select only namespaces labelled capz-e2e.io/enforce=on, so that the stored
// objects of the UPDATE cases can be created unchecked first.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy/paritycases"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

const (
	labelSide    = "capz-e2e.io/side"
	labelEnforce = "capz-e2e.io/enforce"
	outageNS     = "cel-outage"
)

// celParity is the webhook process with the CEL sync, and what it runs with.
type celParity struct {
	w          *webhookProcess
	policyFile string
	siteFile   string
}

// TestCELParity needs the webhook process for its whole length; its subtests run in order.
func TestCELParity(t *testing.T) {
	t.Run("the apiserver serves both admission policy APIs", testPolicyAPIsServed)
	cp := startCELParity(t)
	docs := map[string]string{"full": paritycases.FullPolicy, "palette": readRepoFile(t, "docs/examples/palette-pack-values.yaml"),
		"sample": readRepoFile(t, "config/samples/policy.yaml")}
	var report []string
	for _, name := range []string{"full", "palette", "sample"} {
		t.Run("policy "+name, func(t *testing.T) {
			report = append(report, cp.parity(t, name, docs[name])...)
		})
	}
	t.Logf("parity on kube-apiserver %s:\n%s", kubeVersion(), strings.Join(report, "\n"))
	t.Run("webhook outage", func(t *testing.T) { cp.outage(t, docs["palette"]) })
}

// MutatingAdmissionPolicy is GA (admissionregistration.k8s.io/v1) since Kubernetes 1.36: the e2e
// apiserver, started by envtest without feature gates or --runtime-config, must serve it.
func testPolicyAPIsServed(t *testing.T) {
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"} {
		m, err := k8s.RESTMapper().RESTMapping(schema.GroupKind{Group: "admissionregistration.k8s.io", Kind: kind}, "v1")
		if err != nil {
			t.Errorf("%s: %v (kube-apiserver %s)", kind, err, kubeVersion())
			continue
		}
		t.Logf("%s: served as %s", kind, m.Resource.String())
	}
}

func readRepoFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func startCELParity(t *testing.T) *celParity {
	t.Helper()
	dir := t.TempDir()
	cp := &celParity{policyFile: filepath.Join(dir, "policy.yaml"), siteFile: filepath.Join(dir, "site-skus.json")}
	if err := os.WriteFile(cp.policyFile, []byte(paritycases.FullPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp.siteFile, []byte(paritycases.SiteCatalogJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	// As the chart runs it: with exactly the RBAC the chart renders for a cel.mode.
	w, err := newWebhookProcess(hook.bin, chartUser(t, "cel-parity"), hook.certDir, cp.policyFile)
	if err != nil {
		t.Fatal(err)
	}
	w.baseArgs = []string{"--sku-catalog", cp.siteFile,
		"--cel-sync", "--cel-namespace", releaseNamespace, "--cel-sync-interval", "300ms",
		"--cel-namespace-selector", `{"matchLabels":{"` + labelSide + `":"cel","` + labelEnforce + `":"on"}}`,
		"--leader-election-namespace", releaseNamespace, "--leader-election-id", "cel-parity-audit"}
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.stop)
	cp.w = w
	m, v, err := chart.WebhooksForURL(mustEnv(t, "HELM"), releaseNamespace, fmt.Sprintf("https://127.0.0.1:%d", w.webhookPort), pki.PEM,
		"--set", "fullnameOverride=cel-parity-webhook",
		"--set-json", `webhook.namespaceSelector.matchLabels={"`+labelSide+`":"webhook","`+labelEnforce+`":"on"}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{m, v} {
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), o) })
	}
	return cp
}

// --- one policy ---------------------------------------------------------------------------------------

// parity runs every case and sample under one policy on both sides, and returns a line per outcome
// class for the report.
func (cp *celParity) parity(t *testing.T, name, doc string) []string {
	p, err := policy.Parse(name+".yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	writeAtomically(t, cp.policyFile, doc)
	cel, hook := "cel-"+name, "hook-"+name
	for ns, side := range map[string]string{cel: "cel", hook: "webhook"} {
		if err := k8s.Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{labelSide: side}}}); err != nil {
			t.Fatal(err)
		}
	}
	cp.waitInForce(t, p)

	// The objects of the UPDATE cases are stored while neither side enforces anything.
	type run struct {
		k paritycases.Kind
		c paritycases.Case
		n string
	}
	var runs []run
	add := func(k paritycases.Kind, cases []paritycases.Case) {
		for i, c := range cases {
			runs = append(runs, run{k, c, fmt.Sprintf("%s-%d", strings.ToLower(k.Kind), i)})
		}
	}
	if name != "sample" {
		add(paritycases.AzureMachineTemplate, paritycases.Machine)
		add(paritycases.AzureMachine, paritycases.Machine)
		add(paritycases.AzureMachinePool, paritycases.Machine)
		add(paritycases.AzureManagedMachinePool, paritycases.ManagedMachinePool)
		add(paritycases.AzureManagedControlPlane, paritycases.ManagedControlPlane)
		for _, k := range paritycases.MachineKinds {
			for i, m := range paritycases.Mutation {
				runs = append(runs, run{k, paritycases.Case{Name: "mutation: " + m.Name, Settings: m.Settings, Annotations: m.Annotations},
					fmt.Sprintf("%s-m%d", strings.ToLower(k.Kind), i)})
			}
		}
	}
	for _, ns := range []string{cel, hook} {
		for _, r := range runs {
			if r.c.Old == "" && !r.c.MetadataOnly && !r.c.Deleting {
				continue
			}
			old := r.c.Old
			if old == "" {
				old = r.c.Settings
			}
			o := caseObject(t, r.k, r.n, ns, old, nil)
			if r.c.Deleting {
				o.SetFinalizers([]string{"capz-e2e.io/hold"})
			}
			if err := k8s.Create(ctx(t), o); err != nil {
				t.Fatalf("storing %s/%s: %v", ns, r.n, err)
			}
		}
		setEnforce(t, ns, true)
	}
	cp.waitInForce(t, p)

	var same, schema, diverged, denied, patched int
	var divergences []string
	for _, r := range runs {
		t.Run(r.k.Kind+"/"+r.c.Name, func(t *testing.T) {
			got := caseOutcome(t, r.k, r.c, r.n, cel)
			want := caseOutcome(t, r.k, r.c, r.n, hook)
			if len(r.c.Diverge) > 0 {
				// Known: the compiled policies enforce less than the webhook (celpolicy.Result.NotCompiled).
				diverged++
				divergences = append(divergences, fmt.Sprintf("    %s/%s: compiled policies %s, webhook %s", r.k.Kind, r.c.Name, got.decision, want.decision))
				if got.stricterThan(want) {
					t.Errorf("known divergence the wrong way: compiled policies %s, webhook %s", got.decision, want.decision)
				}
				return
			}
			switch {
			case !got.agrees(want):
				t.Errorf("decision: compiled policies %s\n  %v\nwebhook %s\n  %v", got.decision, got.err, want.decision, want.err)
			case got.decision == "invalid":
				schema++
			default:
				same++
				if len(got.rules) > 0 {
					denied++
				}
				if got.obj != nil && got.obj.GetAnnotations()[policy.AnnotationInjected] != "" {
					patched++
				}
			}
			if d := got.patchDiff(want); d != "" {
				t.Errorf("patch: %s", d)
			}
		})
	}
	lines := []string{fmt.Sprintf("  %s: %d cases alike (%d refused by both, %d patched alike, %d refused by the CRD schema on both sides), %d known divergences",
		name, same+schema, denied, patched, schema, diverged)}
	lines = append(lines, divergences...)
	lines = append(lines, cp.samples(t, name, p, cel, hook)...)
	return lines
}

// setEnforce labels a namespace so that its side's admission applies, or not, and waits until the
// apiserver acts on it.
func setEnforce(t *testing.T, ns string, on bool) {
	t.Helper()
	n := &corev1.Namespace{}
	if err := k8s.Get(ctx(t), client.ObjectKey{Name: ns}, n); err != nil {
		t.Fatal(err)
	}
	if on {
		n.Labels[labelEnforce] = "on"
	} else {
		delete(n.Labels, labelEnforce)
	}
	if err := k8s.Update(ctx(t), n); err != nil {
		t.Fatal(err)
	}
}

// waitInForce waits until both sides enforce p in the namespaces labelled to enforce: the syncer has
// applied what celpolicy compiles from p, the apiserver acts on it, and the webhook reloaded p.
func (cp *celParity) waitInForce(t *testing.T, p *policy.Policy) {
	t.Helper()
	cat, err := skucatalog.Build(nil, cp.siteFile)
	if err != nil {
		t.Fatal(err)
	}
	res, err := celpolicy.Compile(p, cat, celpolicy.Options{Namespace: releaseNamespace})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, o := range res.Objects() {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		want[kind] = append(want[kind], o.GetName())
	}
	injects := len(res.MutatingPolicies) > 0
	subs := len(p.AllowedDESSubscriptions) > 0
	eventually(t, 60*time.Second, func() error {
		for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"} {
			list := &unstructured.UnstructuredList{}
			list.SetAPIVersion("admissionregistration.k8s.io/v1")
			list.SetKind(kind + "List")
			if err := k8s.List(context.Background(), list, client.MatchingLabelsSelector{Selector: celpolicy.OwnedSelector()}); err != nil {
				return err
			}
			var got []string
			for _, o := range list.Items {
				got = append(got, o.GetName())
			}
			sort.Strings(got)
			if !slices.Equal(got, want[kind]) {
				return fmt.Errorf("%s in the cluster: %v, want %v", kind, got, want[kind])
			}
		}
		// The apiserver acts on them: in every enforcing namespace of either side, a DES of another
		// subscription is refused exactly when the policy lists subscriptions, and (compiled side)
		// the default is injected exactly when the policy has one for everywhere.
		nss := &corev1.NamespaceList{}
		if err := k8s.List(context.Background(), nss, client.MatchingLabels{labelEnforce: "on"}); err != nil {
			return err
		}
		for _, ns := range nss.Items {
			// Every policy refuses a malformed DES ID, on both sides.
			bad := caseObject(t, paritycases.AzureMachineTemplate, "probe", ns.Name, paritycases.VMOK+paritycases.OSDES("des-name-only"), nil)
			if err := k8s.Create(context.Background(), bad, client.DryRunAll); !apierrors.IsForbidden(err) {
				return fmt.Errorf("namespace %s: a malformed DES ID not refused yet: %w", ns.Name, err)
			}
			probe := caseObject(t, paritycases.AzureMachineTemplate, "probe", ns.Name,
				paritycases.VMOK+paritycases.OSDES(strings.Replace(paritycases.DESOS, paritycases.Sub, paritycases.OtherSub, 1)), nil)
			err := k8s.Create(context.Background(), probe, client.DryRunAll)
			if refused := err != nil; refused != subs {
				return fmt.Errorf("namespace %s: a DES of another subscription refused: %v, want %v (%w)", ns.Name, refused, subs, err)
			}
			if ns.Labels[labelSide] != "cel" {
				continue
			}
			plain := caseObject(t, paritycases.AzureMachineTemplate, "probe", ns.Name, paritycases.VMOK+paritycases.PlainOS, nil)
			if err := k8s.Create(context.Background(), plain, client.DryRunAll); err != nil && !apierrors.IsForbidden(err) {
				return err
			}
			if injected := plain.GetAnnotations()[policy.AnnotationInjected] != ""; injected != injects && err == nil {
				return fmt.Errorf("namespace %s: default injected %v, want %v", ns.Name, injected, injects)
			}
		}
		return nil
	})
	// The webhook reloads the file every 200ms; the apiserver's informers of the policies update
	// each on its own: give the slowest a moment.
	time.Sleep(2 * time.Second)
}

// --- objects and outcomes -----------------------------------------------------------------------------

// caseObject builds a case's object in ns, with what the CRD schemas require besides the settings
// (a location for AzureMachinePool, which the webhook then uses as the region; a size and mode for
// AzureManagedMachinePool; an identity, location and resource group for AzureManagedControlPlane).
func caseObject(t *testing.T, k paritycases.Kind, name, ns, settings string, annotations map[string]string) *unstructured.Unstructured {
	t.Helper()
	m, err := paritycases.Object(k, name, ns, settings)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	spec, _ := m["spec"].(map[string]any)
	def := func(k string, v any) {
		if _, ok := spec[k]; !ok {
			spec[k] = v
		}
	}
	switch k.Kind {
	case paritycases.AzureMachinePool.Kind:
		def("location", "westeurope")
	case paritycases.AzureManagedMachinePool.Kind:
		def("mode", "User")
		def("sku", "Standard_D4s_v3")
	case paritycases.AzureManagedControlPlane.Kind:
		def("location", "eastus")
		def("resourceGroupName", "aks")
		def("identityRef", map[string]any{"kind": "AzureClusterIdentity", "name": "id"})
	}
	if len(annotations) > 0 {
		u.SetAnnotations(annotations)
	}
	return u
}

type outcome struct {
	decision string // allowed, denied [rules], invalid
	rules    []string
	err      error
	obj      *unstructured.Unstructured // as stored (or as the dry run returned it)
}

var ruleInMessage = regexp.MustCompile(`\[([a-z]+(?:-[a-z]+)+)\]`)

func newOutcome(err error, obj *unstructured.Unstructured) outcome {
	switch {
	case err == nil:
		return outcome{decision: "allowed", obj: obj}
	case apierrors.IsInvalid(err):
		return outcome{decision: "invalid", err: err}
	case apierrors.IsForbidden(err):
		var rules []string
		for _, m := range ruleInMessage.FindAllStringSubmatch(err.Error(), -1) {
			if !slices.Contains(rules, m[1]) && m[1] != "warn-only" {
				rules = append(rules, m[1])
			}
		}
		sort.Strings(rules)
		return outcome{decision: "denied " + strings.Join(rules, ","), rules: rules, err: err}
	}
	return outcome{decision: "error", err: err}
}

// agrees: the same decision; for a denial, the compiled policies' rule is among the webhook's (the
// apiserver reports the first compiled policy that denies, the webhook every rule).
func (o outcome) agrees(w outcome) bool {
	switch {
	case o.decision == "error" || w.decision == "error":
		return false
	case len(o.rules) > 0 && len(w.rules) > 0:
		for _, r := range o.rules {
			if !slices.Contains(w.rules, r) {
				return false
			}
		}
		return true
	}
	return o.decision == w.decision
}

// stricterThan: o refuses what w admits.
func (o outcome) stricterThan(w outcome) bool {
	return strings.HasPrefix(o.decision, "denied") && w.decision == "allowed"
}

// patchDiff compares what both sides stored: the spec and the record of injected defaults.
func (o outcome) patchDiff(w outcome) string {
	if o.obj == nil || w.obj == nil {
		return ""
	}
	a, b := o.obj.Object["spec"], w.obj.Object["spec"]
	ia, ib := o.obj.GetAnnotations()[policy.AnnotationInjected], w.obj.GetAnnotations()[policy.AnnotationInjected]
	if equality.Semantic.DeepEqual(a, b) && ia == ib {
		return ""
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return fmt.Sprintf("compiled policies stored\n  %s (injected %q)\nwebhook stored\n  %s (injected %q)", ja, ia, jb, ib)
}

// caseOutcome makes the case's request in ns: a CREATE (a dry run for the CAPI topology case), or an
// UPDATE of the object stored before enforcement began.
func caseOutcome(t *testing.T, k paritycases.Kind, c paritycases.Case, name, ns string) outcome {
	t.Helper()
	if c.Old == "" && !c.MetadataOnly && !c.Deleting {
		o := caseObject(t, k, name, ns, c.Settings, c.Annotations)
		var opts []client.CreateOption
		if c.DryRun {
			opts = append(opts, client.DryRunAll)
		}
		err := k8s.Create(ctx(t), o, opts...)
		return newOutcome(err, o)
	}
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(schema.FromAPIVersionAndKind(policy.Group+"/v1beta1", k.Kind))
	if err := k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, cur); err != nil {
		t.Fatal(err)
	}
	if c.Deleting {
		if err := k8s.Delete(ctx(t), cur.DeepCopy()); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, cur); err != nil {
			t.Fatal(err)
		}
	}
	if c.MetadataOnly {
		cur.SetLabels(map[string]string{"team": "a"})
	} else {
		next := caseObject(t, k, name, ns, c.Settings, nil)
		cur.Object["spec"] = next.Object["spec"]
	}
	err := k8s.Update(ctx(t), cur)
	return newOutcome(err, cur)
}

// --- samples --------------------------------------------------------------------------------------------

// samples creates every object of config/samples in both namespaces (Clusters and AzureClusters
// first, so that the webhook finds the region of the templates that name their cluster), and
// compares. The compiled policies inject only a default for every region and namespace: under the
// sample policy, whose defaults are per region, the webhook fills what they cannot, and only the
// decisions are compared.
func (cp *celParity) samples(t *testing.T, name string, p *policy.Policy, cel, hook string) []string {
	objs, err := manifest.ReadPaths([]string{filepath.Join(repoRoot, "config", "samples")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	regional := len(p.Defaults) > 0 && (len(p.Defaults[0].Regions) > 0 || p.Defaults[0].Selector != nil && !p.Defaults[0].Selector.Empty())
	var sorted []*unstructured.Unstructured
	for _, o := range objs {
		if o.Kind == "EncryptionPolicy" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(o.JSON); err != nil {
			t.Fatal(err)
		}
		sorted = append(sorted, u)
	}
	// Clusters and infrastructure first.
	sort.SliceStable(sorted, func(i, j int) bool {
		return !policy.Handles(sorted[i].GetAPIVersion(), sorted[i].GetKind()) && policy.Handles(sorted[j].GetAPIVersion(), sorted[j].GetKind())
	})
	var same, patched int
	for _, u := range sorted {
		if !policy.Handles(u.GetAPIVersion(), u.GetKind()) {
			for _, ns := range []string{cel, hook} {
				c := u.DeepCopy()
				c.SetNamespace(ns)
				if err := k8s.Create(ctx(t), c); err != nil && !apierrors.IsAlreadyExists(err) {
					if strings.Contains(err.Error(), "no matches for kind") {
						continue // no CRD in the e2e apiserver (KubeadmControlPlane, ...)
					}
					t.Fatalf("sample %s %s: %v", u.GetKind(), u.GetName(), err)
				}
			}
			continue
		}
		t.Run("sample "+u.GetName(), func(t *testing.T) {
			run := func(ns string) outcome {
				c := u.DeepCopy()
				c.SetNamespace(ns)
				return newOutcome(k8s.Create(ctx(t), c), c)
			}
			got := run(cel)
			var want outcome
			// The webhook finds a template's cluster through its informer, a moment after the Cluster
			// is stored: a template of the sample cluster is tried as a dry run until then.
			if cl := u.GetLabels()["cluster.x-k8s.io/cluster-name"]; cl != "" {
				eventually(t, 20*time.Second, func() error {
					c := u.DeepCopy()
					c.SetNamespace(hook)
					if err := k8s.Create(ctx(t), c, client.DryRunAll); err != nil && !apierrors.IsForbidden(err) {
						return err
					}
					if line := cp.w.auditLine(2*time.Second, func(m map[string]any) bool {
						return m["name"] == u.GetName() && m["namespace"] == hook && m["region"] == "eastus"
					}); line == nil {
						return fmt.Errorf("the webhook has not resolved the cluster of %s yet", u.GetName())
					}
					return nil
				})
			}
			want = run(hook)
			if !got.agrees(want) {
				t.Errorf("decision: compiled policies %s\n  %v\nwebhook %s\n  %v", got.decision, got.err, want.decision, want.err)
				return
			}
			same++
			if d := got.patchDiff(want); d != "" {
				if regional {
					patched++ // the webhook's regional default
					return
				}
				t.Errorf("patch: %s", d)
			}
		})
	}
	line := fmt.Sprintf("  %s, samples: %d decisions alike", name, same)
	if regional {
		line += fmt.Sprintf(" (%d patched only by the webhook: defaults per region are not compiled)", patched)
	}
	return []string{line}
}

// --- the outage -------------------------------------------------------------------------------------------

// outage: cel-and-data-webhook as the chart renders it (failurePolicy Ignore), with a single default
// for every region: while the webhook runs, an object that needs data goes to it; with every replica
// gone, the compiled rules still refuse malformed DES IDs, ADE and AKS targets and still inject the
// default, and what needed the webhook is admitted unchecked.
func (cp *celParity) outage(t *testing.T, doc string) {
	p, err := policy.Parse("palette.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	writeAtomically(t, cp.policyFile, doc)
	if err := k8s.Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: outageNS,
		Labels: map[string]string{labelSide: "cel", labelEnforce: "on"}}}); err != nil {
		t.Fatal(err)
	}
	cp.waitInForce(t, p)
	m, v, err := chart.WebhooksForURL(mustEnv(t, "HELM"), releaseNamespace, fmt.Sprintf("https://127.0.0.1:%d", cp.w.webhookPort), pki.PEM,
		"--set", "fullnameOverride=cel-outage", "--set", "cel.mode=cel-and-data-webhook", "--set", "webhook.failurePolicy=Ignore",
		"--set-json", "cloud="+toJSON(t, mustYAMLMap(t, doc)["cloud"]),
		"--set-json", `webhook.namespaceSelector.matchExpressions=[{"key":"kubernetes.io/metadata.name","operator":"In","values":["`+outageNS+`"]}]`)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []client.Object{m, v} {
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), o) })
	}
	mixed := func(name string) *unstructured.Unstructured {
		return caseObject(t, paritycases.AzureMachineTemplate, name, outageNS, "vmSize: Standard_Mixed_v1\n"+paritycases.PlainOS, nil)
	}
	// While the webhook runs, an object that needs it (encryption at host on a size with mixed
	// support) reaches it.
	eventually(t, 20*time.Second, func() error {
		o := mixed("before-outage-" + fmt.Sprint(time.Now().UnixNano()))
		if err := k8s.Create(ctx(t), o, client.DryRunAll); err != nil {
			return err
		}
		if cp.w.auditLine(2*time.Second, func(m map[string]any) bool { return m["name"] == o.GetName() && m["namespace"] == outageNS }) == nil {
			return fmt.Errorf("the webhook did not see %s", o.GetName())
		}
		return nil
	})

	cp.w.stop()
	ade := caseObject(t, paritycases.AzureMachineTemplate, "down-ade", outageNS, paritycases.VMOK+paritycases.OSDES(paritycases.DESOS)+
		"vmExtensions:\n  - name: AzureDiskEncryptionForLinux\n    publisher: Microsoft.Azure.Security\n    version: \"1.1\"\n", nil)
	for _, tc := range []struct {
		name string
		obj  *unstructured.Unstructured
		rule policy.RuleID
	}{
		{"malformed DES ID", caseObject(t, paritycases.AzureMachineTemplate, "down-des", outageNS, paritycases.VMOK+paritycases.OSDES(desPlaceholder()), nil), policy.RuleDESIDMalformed},
		{"Key Vault key URL as DES", caseObject(t, paritycases.AzureMachine, "down-kv", outageNS, paritycases.VMOK+paritycases.OSDES("https://kv.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef"), nil), policy.RuleDESIDMalformed},
		{"ADE extension", ade, policy.RuleADEExtension},
		{"AKS encryption at host", caseObject(t, paritycases.AzureManagedMachinePool, "down-aks-pool", outageNS, "mode: User\nenableEncryptionAtHost: true\n", nil), policy.RuleAKSTarget},
		{"AKS DES patch", caseObject(t, paritycases.AzureManagedControlPlane, "down-aks-cp", outageNS, "version: v1.33.0\nasoManagedClusterPatches:\n  - "+paritycases.Quoted(paritycases.DESPatch)+"\n", nil), policy.RuleAKSTarget},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			err := k8s.Create(ctx(t), tc.obj)
			if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") || !strings.Contains(err.Error(), "["+string(tc.rule)+"]") {
				t.Errorf("with the webhook down, want a denial by the compiled %s; got %v", tc.rule, err)
			}
		})
	}
	// The chart's helm test, with the webhook down: the compiled policy answers it, and says so.
	t.Run("selftest", func(t *testing.T) {
		out, code := runSelftest(t, selftestKubeconfig(t, outageNS), "--namespace", outageNS)
		if code != 0 || !strings.Contains(out, "denied as expected by the compiled admission policy (HTTP 403") {
			t.Errorf("selftest with the webhook down and the CEL layer on: exit %d\n%s", code, out)
		}
	})
	t.Run("default injected", func(t *testing.T) {
		o := caseObject(t, paritycases.AzureMachinePool, "down-plain", outageNS, paritycases.VMOK+paritycases.PlainOS, nil)
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Fatal(err)
		}
		des := p.Defaults[0].DiskEncryptionSetID
		if got := nestedString(t, o, "spec", "template", "osDisk", "managedDisk", "diskEncryptionSet", "id"); got != des {
			t.Errorf("DES %q, want the default %q", got, des)
		}
		if eah, _, _ := unstructured.NestedBool(o.Object, "spec", "template", "securityProfile", "encryptionAtHost"); !eah {
			t.Error("encryption at host not injected on a size that supports it everywhere")
		}
	})
	t.Run("what needs the webhook is admitted unchecked", func(t *testing.T) {
		o := mixed("down-mixed")
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Errorf("failurePolicy Ignore: %v", err)
		}
		if _, found, _ := unstructured.NestedBool(o.Object, "spec", "template", "spec", "securityProfile", "encryptionAtHost"); found {
			t.Error("encryption at host injected on a size with mixed support")
		}
	})
	t.Run("the compiled objects outlive the webhook", func(t *testing.T) {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion("admissionregistration.k8s.io/v1")
		list.SetKind("MutatingAdmissionPolicyBindingList")
		if err := k8s.List(ctx(t), list, client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(labels.Set{celpolicy.LabelManagedBy: celpolicy.ManagedBy})}); err != nil || len(list.Items) == 0 {
			t.Errorf("mutating bindings after the webhook stopped: %d (%v)", len(list.Items), err)
		}
	})
}

func mustYAMLMap(t *testing.T, doc string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// --- RBAC -------------------------------------------------------------------------------------------------

// The chart's RBAC for cel.mode is enough: a webhook whose user holds exactly the roles the chart
// renders (bound to a user instead of the service account) wins the election and applies every
// compiled object, and writes nothing it may not.
func TestCELSyncWithTheChartsRBAC(t *testing.T) {
	const name = "rbac-check"
	kubeconfigPath := chartUser(t, name)
	policyPath := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(paritycases.PaletteValues), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := newWebhookProcess(hook.bin, kubeconfigPath, hook.certDir, policyPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.start("--cel-sync", "--cel-namespace", releaseNamespace, "--cel-sync-interval", "300ms",
		"--cel-namespace-selector", `{"matchLabels":{"`+labelSide+`":"rbac"}}`,
		"--leader-election-namespace", releaseNamespace, "--leader-election-id", name+"-audit"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.stop)
	eventually(t, 60*time.Second, func() error {
		for _, l := range w.logLines() {
			if strings.Contains(l, "syncing the compiled admission policies; retrying") || strings.Contains(l, "forbidden") {
				return fmt.Errorf("the syncer is refused: %s", l)
			}
			if strings.Contains(l, "compiled admission policies in sync") {
				return nil
			}
		}
		return fmt.Errorf("not in sync yet")
	})
	m := &unstructured.Unstructured{}
	m.SetAPIVersion("admissionregistration.k8s.io/v1")
	m.SetKind("MutatingAdmissionPolicyBinding")
	if err := k8s.Get(ctx(t), client.ObjectKey{Name: "capz-encryption-webhook.inject-eah.azuremachine"}, m); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(m.GetManagedFields(), func(f metav1.ManagedFieldsEntry) bool { return f.Manager == "capz-encryption-webhook" }) {
		t.Errorf("the binding is not the syncer's: %v", m.GetManagedFields())
	}
}

func envtestUser(name string) envtest.User { return envtest.User{Name: name} }

// With --cel-sync, leader election is on; only the syncer needs it. A second replica that is not the
// leader still serves the webhook (it becomes ready) and still reloads its policy file.
func TestCELSyncFollowerServesAndReloads(t *testing.T) {
	const name = "follower-check"
	kubeconfig := chartUser(t, name)
	args := []string{"--cel-sync", "--cel-namespace", releaseNamespace, "--cel-namespace-selector", `{"matchLabels":{"` + labelSide + `":"none"}}`,
		"--leader-election-namespace", releaseNamespace, "--leader-election-id", name + "-audit"}
	var replicas []*webhookProcess
	for i := range 2 {
		policyFile := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(policyFile, []byte(paritycases.PaletteValues), 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := newWebhookProcess(hook.bin, kubeconfig, hook.certDir, policyFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.start(args...); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		t.Cleanup(w.stop)
		replicas = append(replicas, w)
		if i == 0 {
			eventually(t, 30*time.Second, func() error { return inLog(w, "Successfully acquired lease") })
		}
	}
	follower := replicas[1]
	if inLog(follower, "Successfully acquired lease") == nil {
		t.Fatal("both replicas lead")
	}
	writeAtomically(t, follower.policy, paritycases.FullPolicy)
	eventually(t, 20*time.Second, func() error { return inLog(follower, "policy reloaded") })
}

// inLog says whether a line of w's log contains msg.
func inLog(w *webhookProcess, msg string) error {
	for _, l := range w.logLines() {
		if strings.Contains(l, msg) {
			return nil
		}
	}
	return fmt.Errorf("no %q in the log", msg)
}

// chartUser creates a user bound to exactly the RBAC the chart renders with a cel.mode and
// fullnameOverride name (its roles, and the Role of the Lease name-audit), as the chart binds it to
// the pods' service account, and returns a kubeconfig file for it.
func chartUser(t *testing.T, name string) string {
	t.Helper()
	objs, err := chart.Render(chart.Options{Helm: mustEnv(t, "HELM"), Namespace: releaseNamespace,
		Args: []string{"--set", "fullnameOverride=" + name, "--set", "cel.mode=cel-and-webhook"}})
	if err != nil {
		t.Fatal(err)
	}
	subject := []any{map[string]any{"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}}
	var roles []string
	for _, o := range objs {
		if o.GetAnnotations()["helm.sh/hook"] != "" {
			continue // the helm test Pod's own account and Role, not the webhook's
		}
		switch o.GetKind() {
		case "ClusterRole", "Role":
			if strings.HasSuffix(o.GetName(), "-metrics-reader") {
				continue
			}
			roles = append(roles, o.GetKind()+" "+o.GetName())
		case "ClusterRoleBinding", "RoleBinding":
			o.Object["subjects"] = subject
		default:
			continue
		}
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), o) })
	}
	slices.Sort(roles)
	if want := []string{"ClusterRole " + name, "ClusterRole " + name + "-cel", "Role " + name + "-leader-election"}; !slices.Equal(roles, want) {
		t.Fatalf("roles %v, want the webhook's, the CEL sync's and the Lease's: %v", roles, want)
	}
	user, err := env.AddUser(envtestUser(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
