package e2e

// The regression suite from CAPZ's own templates (issue 9): every flavor of the pinned CAPZ module,
// rendered as `clusterctl generate cluster` renders it, in two regions, under e2ePolicy (a default
// per region, customer-managed keys required, dataDiskStorageAccountType set). Each rendering is
// (a) run through `check` and (b) created object by object, in file order, on the real apiserver with
// the webhook; the two must agree on every object, and testdata/flavors.golden.md records what they
// decided. CAPI's topology controller's part of the ClusterClass flavors is played here (topologyFlow),
// with the labels, annotations and owners CAPI's source gives the objects it writes.
//
// Regenerate the golden table after an intended change:
//
//	KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)" HELM=... go test ./test/e2e -run TestFlavors -args -update

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/capzflavors"
)

var update = flag.Bool("update", false, "rewrite testdata/flavors.golden.md from this run")

const goldenFile = "testdata/flavors.golden.md"

// skippedFlavors cannot be installed here, with the reason (test/capzflavors/README.md, section b).
var skippedFlavors = map[string]string{
	"clusterclass-rke2": "its RKE2ControlPlaneTemplate and RKE2ConfigTemplate have no CRD here (github.com/rancher/cluster-api-provider-rke2 " +
		"does not resolve from the module proxy), and its AzureClusterTemplate and AzureMachineTemplates lack location and vmSize, " +
		"which only the class's patches fill: the CRDs refuse them",
}

// topologyClass: a topology flavor is a Cluster of the ClusterClass its class flavor defines; it is
// created in that flavor's namespace.
var topologyClass = map[string]string{"topology": "clusterclass", "aks-topology": "aks-clusterclass", "aks-aso-topology": "aks-aso-clusterclass"}

// knownDenials are the denials that are right under e2ePolicy, by flavor: anything else denied is a
// false denial.
var knownDenials = map[string]string{
	// CAPZ's ephemeral flavor puts both OS disks on the VM's cache (diffDiskSettings), which cannot use
	// a Disk Encryption Set; the policy requires customer-managed keys.
	"ephemeral": "des-required:deny@spec.template.spec.osDisk.diffDiskSettings",
}

// decision is what one side (check, or the webhook's two decision lines) decided on one object.
type decision struct {
	Outcome  string // patched, allowed, denied, refused by the CRD
	Region   string // "eastus (cluster)"
	Binding  string
	Default  string
	Injected []string
	Findings []string // rule:action@field, sorted
}

type flavorRow struct {
	region, flavor, kind, name string
	etcd                       bool // the object has CAPZ's etcd data disk
	check, hook                decision
	refused                    string // the CRD's error, when the apiserver refused the object
}

func TestFlavors(t *testing.T) {
	flavors, err := capzflavors.Flavors()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	policyFile := filepath.Join(tmp, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(e2ePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	var rows []flavorRow
	var skipped []string
	for _, region := range []string{"eastus", "southcentralus"} {
		for _, f := range flavors {
			if why, ok := skippedFlavors[f.Name]; ok {
				if region == "eastus" {
					skipped = append(skipped, fmt.Sprintf("- `%s`: %s", f.Name, why))
				}
				continue
			}
			ns := flavorNamespace(region, f.Name)
			vars := capzflavors.DefaultVars(region)
			vars[capzflavors.VarNamespace] = ns
			rendered, err := capzflavors.Render(f, vars)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := capzflavors.Objects(rendered)
			if err != nil {
				t.Fatal(err)
			}
			if _, isTopology := topologyClass[f.Name]; !isTopology {
				namespace(t, ns)
			}
			rows = append(rows, applyAndCheck(t, region, f.Name, ns, objs, nil, policyFile, tmp)...)
			if f.Name == "topology" || f.Name == "aks-topology" {
				rows = append(rows, topologyFlow(t, region, f.Name, ns, policyFile, tmp)...)
			}
		}
	}
	compareGolden(t, rows, skipped)
	reportFigures(t, rows)
}

func flavorNamespace(region, flavor string) string {
	if class, ok := topologyClass[flavor]; ok {
		flavor = class
	}
	short := map[string]string{"eastus": "e", "southcentralus": "scus"}[region]
	return "flv-" + short + "-" + flavor
}

// applyAndCheck runs check on the objects, creates them in order, and returns one row per object the
// policy decides on, with both sides' decisions. existing are objects already in the apiserver that
// check must see too (it resolves against its whole input, as the webhook against what exists).
// Only CRD refusals (recorded) and the webhook's denials are expected errors.
func applyAndCheck(t *testing.T, region, flavor, ns string, objs, existing []*unstructured.Unstructured, policyFile, tmp string) []flavorRow {
	t.Helper()
	checked := runCheck(t, append(slices.Clone(existing), objs...), policyFile, tmp, ns)
	var rows []flavorRow
	for _, o := range objs {
		err := k8s.Create(ctx(t), o)
		if !policy.Handles(o.GetAPIVersion(), o.GetKind()) {
			if err != nil {
				t.Errorf("%s/%s: %s %s refused: %v", region, flavor, o.GetKind(), o.GetName(), err)
			}
			continue
		}
		r := flavorRow{region: region, flavor: flavor, kind: o.GetKind(), name: o.GetName(), etcd: hasEtcdDisk(o),
			check: checked[o.GetKind()+"/"+o.GetName()]}
		var se apierrors.APIStatus
		switch {
		case err == nil:
		case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "capz-encryption-webhook denied"):
		case errors.As(err, &se) && apierrors.IsInvalid(err):
			r.refused = se.Status().Message
		default:
			t.Fatalf("%s/%s: %s %s: %v", region, flavor, o.GetKind(), o.GetName(), err)
		}
		rows = append(rows, r)
	}
	for i := range rows {
		rows[i].hook = hookDecision(t, ns, rows[i])
	}
	return rows
}

// hasEtcdDisk: the object has CAPZ's etcd data disk (no managedDisk in every flavor).
func hasEtcdDisk(o *unstructured.Unstructured) bool {
	for _, p := range [][]string{{"spec", "template", "spec", "dataDisks"}, {"spec", "template", "dataDisks"}} {
		disks, _, _ := unstructured.NestedSlice(o.Object, p...)
		for _, d := range disks {
			if m, _ := d.(map[string]any); m["nameSuffix"] == "etcddisk" {
				return true
			}
		}
	}
	return false
}

// runCheck runs the real binary's check on objs and returns its decisions by kind/name.
func runCheck(t *testing.T, objs []*unstructured.Unstructured, policyFile, tmp, ns string) map[string]decision {
	t.Helper()
	var manifest []byte
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		manifest = append(append(manifest, "---\n"...), b...)
	}
	file := filepath.Join(tmp, ns+".yaml")
	if err := os.WriteFile(file, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(hook.bin, "check", "-f", file, "--policy", policyFile, "-o", "json").Output()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
		t.Fatalf("check %s: %v\n%s", file, err, out)
	}
	var results []struct {
		Kind, Name, Region, RegionSource, Binding, Default string
		Allowed                                            bool
		Injected                                           []string
		Violations, Warnings, Audit                        []struct{ Rule, Field string }
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("check output: %v\n%s", err, out)
	}
	byName := map[string]decision{}
	for _, r := range results {
		d := decision{Region: regionOf(r.Region, r.RegionSource), Binding: r.Binding, Default: r.Default, Injected: sorted(r.Injected)}
		for action, fs := range map[string][]struct{ Rule, Field string }{"deny": r.Violations, "warn": r.Warnings, "audit": r.Audit} {
			for _, f := range fs {
				d.Findings = append(d.Findings, f.Rule+":"+action+"@"+f.Field)
			}
		}
		d.Findings = sorted(d.Findings)
		d.Outcome = outcomeOf(r.Allowed, d.Injected)
		byName[r.Kind+"/"+r.Name] = d
	}
	return byName
}

func regionOf(region, source string) string {
	if region == "" {
		return "— (" + source + ")"
	}
	return region + " (" + source + ")"
}

func outcomeOf(allowed bool, injected []string) string {
	switch {
	case !allowed:
		return "denied"
	case len(injected) > 0:
		return "patched"
	default:
		return "allowed"
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	if out == nil {
		out = []string{}
	}
	sort.Strings(out)
	return out
}

// hookDecision reads the webhook's decision lines for the object: the mutating webhook's (what it
// injected) and the validating webhook's (the verdict on what was stored).
func hookDecision(t *testing.T, ns string, r flavorRow) decision {
	t.Helper()
	match := func(webhook string) func(map[string]any) bool {
		return func(l map[string]any) bool {
			return l["webhook"] == webhook && l["namespace"] == ns && l["kind"] == r.kind && l["name"] == r.name && l["operation"] == "CREATE"
		}
	}
	var d decision
	if r.refused != "" {
		d.Outcome = "refused by the CRD"
		return d
	}
	v := hook.auditLine(10*time.Second, match("validate"))
	if v == nil {
		t.Errorf("%s %s/%s: no decision of the validating webhook", r.kind, ns, r.name)
		return d
	}
	str := func(l map[string]any, k string) string { s, _ := l[k].(string); return s }
	d.Region, d.Binding = regionOf(str(v, "region"), str(v, "regionSource")), str(v, "binding")
	fs, _ := v["findings"].([]any)
	for _, f := range fs {
		m, _ := f.(map[string]any)
		d.Findings = append(d.Findings, fmt.Sprintf("%s:%s@%s", m["rule"], m["action"], m["field"]))
	}
	d.Findings = sorted(d.Findings)
	if k, ok := policyKind(r.kind); ok && k.Mutable {
		if m := hook.auditLine(10*time.Second, match("mutate")); m != nil {
			d.Default = str(m, "default")
			inj, _ := m["injected"].([]any)
			for _, p := range inj {
				d.Injected = append(d.Injected, fmt.Sprint(p))
			}
		} else {
			t.Errorf("%s %s/%s: no decision of the mutating webhook", r.kind, ns, r.name)
		}
	}
	d.Injected = sorted(d.Injected)
	allowed, _ := v["allowed"].(bool)
	d.Outcome = outcomeOf(allowed, d.Injected)
	return d
}

func policyKind(kind string) (policy.KindInfo, bool) {
	for _, k := range policy.Kinds() {
		if k.Kind == kind {
			return k, true
		}
	}
	return policy.KindInfo{}, false
}

// --- CAPI's topology controller ------------------------------------------------------------------

// topologyFlow plays CAPI's topology controller for the Cluster of a topology flavor, against the
// objects of its class flavor, in CAPI v1.14's order (core/reconcilers/topology/cluster/
// reconcile_state.go): the infrastructure cluster, then the control plane's machine template and the
// control plane, then the Cluster's references, then per MachineDeployment (or MachinePool) its
// machine template and itself. Objects get CAPI's labels, annotations and owners
// (exp/topology/desiredstate/desired_state.go; test/capzflavors/README.md, section c); their random
// name suffixes are fixed here, so that the golden table stays stable. Only the fields the webhook
// reads are written besides what the CRDs require; the templates' specs are the class's, as stored.
func topologyFlow(t *testing.T, region, flavor, ns, policyFile, tmp string) []flavorRow {
	t.Helper()
	clusterName := "capz-" + region
	cluster := get(t, withGVK(clusterGVK, ns, clusterName))
	owner := []any{map[string]any{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster", "name": clusterName, "uid": string(cluster.GetUID())}}
	labels := func(extra ...string) map[string]any {
		l := map[string]any{"cluster.x-k8s.io/cluster-name": clusterName, "topology.cluster.x-k8s.io/owned": ""}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	cloned := func(from *unstructured.Unstructured) map[string]any {
		return map[string]any{"cluster.x-k8s.io/cloned-from-name": from.GetName(),
			"cluster.x-k8s.io/cloned-from-groupkind": from.GetKind() + "." + from.GroupVersionKind().Group}
	}
	// clone is templateToObject / templateToTemplate: the class template's spec as stored.
	clone := func(from *unstructured.Unstructured, kind, name string, labels map[string]any, owned bool) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": from.GetAPIVersion(), "kind": kind,
			"metadata": map[string]any{"name": name, "namespace": ns, "labels": labels, "annotations": cloned(from)}}}
		spec, _, _ := unstructured.NestedMap(from.Object, "spec")
		if kind != from.GetKind() { // an object from its template: the template's spec.template.spec
			spec, _, _ = unstructured.NestedMap(from.Object, "spec", "template", "spec")
		}
		u.Object["spec"] = spec
		if owned {
			u.Object["metadata"].(map[string]any)["ownerReferences"] = owner
		}
		return u
	}
	classObj := func(gvk schema.GroupVersionKind, name string) *unstructured.Unstructured {
		return get(t, withGVK(gvk, ns, name))
	}
	amtClass := func(name string) *unstructured.Unstructured { return classObj(amtGVK, clusterName+"-"+name) }
	gvkInfra := func(kind string) schema.GroupVersionKind {
		return schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: kind}
	}
	var objs []*unstructured.Unstructured
	var clusterPatch map[string]any
	switch flavor {
	case "topology":
		az := clone(classObj(gvkInfra("AzureClusterTemplate"), clusterName+"-azure-cluster"), "AzureCluster", clusterName+"-x7k2p", labels(), false)
		cpTmpl := clone(amtClass("control-plane"), "AzureMachineTemplate", clusterName+"-q4w8r", labels(), true)
		kcp := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlane",
			"metadata": map[string]any{"name": clusterName + "-k9z4m", "namespace": ns, "labels": labels()},
			"spec": map[string]any{"version": "v1.35.0", "replicas": int64(1),
				"machineTemplate": map[string]any{"spec": map[string]any{"infrastructureRef": refV2("AzureMachineTemplate", cpTmpl.GetName())}}}}}
		clusterPatch = map[string]any{"infrastructureRef": refV2("AzureCluster", az.GetName()),
			"controlPlaneRef": map[string]any{"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": kcp.GetName()}}
		mdTmpl := clone(amtClass("md-0"), "AzureMachineTemplate", clusterName+"-md-0-w3f8h", labels("topology.cluster.x-k8s.io/deployment-name", "md-0"), true)
		md := machineDeployment(mdV2, ns, clusterName+"-md-0-b5n6m", clusterName, mdTmpl.GetName(), 2)
		md.SetLabels(map[string]string{"cluster.x-k8s.io/cluster-name": clusterName, "topology.cluster.x-k8s.io/owned": "", "topology.cluster.x-k8s.io/deployment-name": "md-0"})
		objs = []*unstructured.Unstructured{az, cpTmpl, kcp, nil, mdTmpl, md}
	case "aks-topology":
		// The AKS class's AzureManagedControlPlaneTemplate is refused by its CRD (see the golden
		// table), so only the worker pools are played: each AzureManagedMachinePool from its
		// template, then the MachinePool that references it.
		clusterPatch = map[string]any{"infrastructureRef": refV2("AzureManagedCluster", clusterName+"-m2v6c"),
			"controlPlaneRef": refV2("AzureManagedControlPlane", clusterName+"-p8d3s")}
		objs = append(objs, nil)
		for i, pool := range []string{"pool0", "pool1"} {
			ammp := clone(classObj(gvkInfra("AzureManagedMachinePoolTemplate"), clusterName+"-"+pool), "AzureManagedMachinePool",
				fmt.Sprintf("%s-%s-t%dn5x", clusterName, pool, i), labels("topology.cluster.x-k8s.io/pool-name", pool), true)
			mp := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachinePool",
				"metadata": map[string]any{"name": fmt.Sprintf("%s-%s-h%dk2j", clusterName, pool, i), "namespace": ns,
					"labels": labels("topology.cluster.x-k8s.io/pool-name", pool)},
				"spec": map[string]any{"clusterName": clusterName, "replicas": int64(2), "template": map[string]any{"spec": map[string]any{
					"clusterName": clusterName, "bootstrap": map[string]any{"dataSecretName": ""},
					"infrastructureRef": refV2("AzureManagedMachinePool", ammp.GetName())}}}}}
			objs = append(objs, ammp, mp)
		}
	}
	// nil marks where the controller writes the Cluster's references. check sees what exists in the
	// namespace at each step, as the webhook does.
	flavor += " (topology controller)"
	i := slices.Index(objs, nil)
	rows := applyAndCheck(t, region, flavor, ns, objs[:i], listNamespace(t, ns), policyFile, tmp)
	cluster = get(t, cluster)
	// The flavor wrote the Cluster in v1beta1; the controller writes v1beta2. CAPI's conversion
	// webhook would convert spec.topology.class; this apiserver has none (see loadCRDs), so it is
	// done here, for the one field of the flavor's Cluster whose shape differs.
	if class, ok, _ := unstructured.NestedString(cluster.Object, "spec", "topology", "class"); ok {
		unstructured.RemoveNestedField(cluster.Object, "spec", "topology", "class")
		setField(cluster, map[string]any{"name": class}, "spec", "topology", "classRef")
	}
	for k, v := range clusterPatch {
		setField(cluster, v, "spec", k)
	}
	if err := k8s.Update(ctx(t), cluster); err != nil {
		t.Fatal(err)
	}
	return append(rows, applyAndCheck(t, region, flavor, ns, objs[i+1:], listNamespace(t, ns), policyFile, tmp)...)
}

// listNamespace returns the objects of the namespace that check needs to resolve bindings and
// regions: Clusters, ClusterClasses, the CAPI objects that reference templates, AzureClusters.
func listNamespace(t *testing.T, ns string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, gvk := range []schema.GroupVersionKind{clusterGVK, {Group: "cluster.x-k8s.io", Version: "v1beta2", Kind: "ClusterClass"},
		mdV2, {Group: "cluster.x-k8s.io", Version: "v1beta2", Kind: "MachinePool"}, {Group: "controlplane.cluster.x-k8s.io", Version: "v1beta2", Kind: "KubeadmControlPlane"},
		azureClusterGVK} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := k8s.List(ctx(t), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
	}
	return out
}

func withGVK(gvk schema.GroupVersionKind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// --- golden table and figures ---------------------------------------------------------------------

func compareGolden(t *testing.T, rows []flavorRow, skipped []string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# CAPZ's flavors under test/e2e's policy\n\n")
	b.WriteString("Generated by `TestFlavors` (test/e2e/flavors_test.go); regenerate with `-args -update`. Every row is what\n")
	b.WriteString("`check` decided and what the webhook decided on the real apiserver: the test fails where they differ.\n")
	b.WriteString("Policy: e2ePolicy (a default per region, customer-managed keys required, dataDiskStorageAccountType\n")
	b.WriteString("Premium_LRS). Injected paths are relative to the machine settings.\n\n")
	b.WriteString("Skipped flavors:\n\n" + strings.Join(skipped, "\n") + "\n\n")
	b.WriteString("CAPI's topology controller is played for `topology` (ClusterClass `clusterclass`) and `aks-topology` (its pools; the\n")
	b.WriteString("class's AzureManagedControlPlaneTemplate is refused by its CRD), not for `aks-aso-topology`: that class's ASO templates\n")
	b.WriteString("are empty, and the objects come from patches, which only CAPI can compute.\n\n")
	b.WriteString("| region | flavor | object | outcome | region (source) | bound by | default | injected | findings |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		d := r.check
		if r.refused != "" {
			d = decision{Outcome: "refused by the CRD: " + r.refused}
		} else if diff := diffDecisions(r.check, r.hook); diff != "" {
			t.Errorf("%s/%s %s %s: check and the webhook disagree: %s", r.region, r.flavor, r.kind, r.name, diff)
		}
		fmt.Fprintf(&b, "| %s | %s | %s %s | %s | %s | %s | %s | %s | %s |\n", r.region, r.flavor, r.kind, r.name, d.Outcome,
			d.Region, d.Binding, d.Default, strings.Join(d.Injected, ", "), strings.Join(d.Findings, ", "))
	}
	if *update {
		if err := os.WriteFile(goldenFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (run with -args -update to create it)", err)
	}
	if string(want) != b.String() {
		t.Errorf("%s differs from this run (run with -args -update to accept):\n%s", goldenFile, lineDiff(string(want), b.String()))
	}
}

func diffDecisions(check, hook decision) string {
	var out []string
	for _, f := range []struct {
		name string
		c, h any
	}{
		{"outcome", check.Outcome, hook.Outcome}, {"region", check.Region, hook.Region}, {"binding", check.Binding, hook.Binding},
		{"default", check.Default, hook.Default}, {"injected", check.Injected, hook.Injected}, {"findings", check.Findings, hook.Findings},
	} {
		if fmt.Sprint(f.c) != fmt.Sprint(f.h) {
			out = append(out, fmt.Sprintf("%s: check %v, webhook %v", f.name, f.c, f.h))
		}
	}
	return strings.Join(out, "; ")
}

func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			out = append(out, "- "+w, "+ "+g)
		}
	}
	return strings.Join(out, "\n")
}

// reportFigures checks issue 9's targets and logs the figures: every VM machine object (an
// AzureMachineTemplate or AzureMachinePool a cluster's machines are made from) gets its own region's
// default, etcd disks included; no false denial; check and the webhook agree on every object.
func reportFigures(t *testing.T, rows []flavorRow) {
	t.Helper()
	var vm, defaultApplied, defaulted, etcd, etcdDefaulted, class, aks, refused, agree, denied, falseDenials int
	for _, r := range rows {
		if r.refused != "" {
			refused++
			continue
		}
		if diffDecisions(r.check, r.hook) == "" {
			agree++
		}
		d := r.check
		if d.Outcome == "denied" {
			denied++
			if want := knownDenials[r.flavor]; want == "" || !slices.Contains(d.Findings, want) {
				falseDenials++
				t.Errorf("false denial: %s/%s %s %s: %v", r.region, r.flavor, r.kind, r.name, d.Findings)
			}
		}
		k, _ := policyKind(r.kind)
		switch {
		case !k.Mutable:
			aks++
		case strings.HasPrefix(d.Binding, "ClusterClass "):
			class++
		default:
			vm++
			if d.Default == r.region {
				defaultApplied++
			}
			full := d.Default == r.region && !slices.ContainsFunc(d.Findings, func(f string) bool {
				return strings.HasPrefix(f, "des-required:") || strings.HasPrefix(f, "default-not-applied:")
			})
			if full {
				defaulted++
			} else if knownDenials[r.flavor] == "" {
				t.Errorf("%s/%s %s %s did not get its region's default: default %q, findings %v", r.region, r.flavor, r.kind, r.name, d.Default, d.Findings)
			}
			if r.etcd {
				etcd++
				if slices.Contains(d.Injected, "dataDisks[0].managedDisk") {
					etcdDefaulted++
				}
			}
		}
	}
	if defaultApplied != vm {
		t.Errorf("%d of %d VM machine objects got their own region's default", defaultApplied, vm)
	}
	t.Logf("flavor regression: %d objects the policy decides on (%d refused by their CRD); %d VM machine objects: %d (%.1f%%) got their own region's default, "+
		"%d (%.1f%%) everything it sets (the rest: the ephemeral flavor's OS disks, which cannot hold a DES, denied by des-required), "+
		"etcd disks %d/%d given a managedDisk with the DES; %d ClusterClass templates (class templates: judged, not defaulted; their copies are); "+
		"%d AKS objects (nothing injected); %d denials, %d false; check and the webhook agree on %d/%d",
		len(rows), refused, vm, defaultApplied, 100*float64(defaultApplied)/float64(max(vm, 1)), defaulted, 100*float64(defaulted)/float64(max(vm, 1)),
		etcdDefaulted, etcd, class, aks, denied, falseDenials, agree, len(rows)-refused)
}
