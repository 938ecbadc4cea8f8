package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/azure"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

const sub = testsupport.Subscription

var (
	desEast = testsupport.DESID("keys-eastus", "des-eastus")
	desWest = testsupport.DESID("keys-west", "des-west")
)

// apiserver is an in-memory client.Reader that pages as the apiserver does (limit and continue), and
// counts the calls, so the tests can see that the scan reads in bounded pages and each namespace once.
type apiserver struct {
	objects    []*unstructured.Unstructured
	namespaces map[string]*corev1.Namespace
	served     map[string]bool // Kind → served
	lists      map[string]int  // "Kind ns" → list calls
	maxLimit   int64
}

func newAPIServer() *apiserver {
	return &apiserver{namespaces: map[string]*corev1.Namespace{}, served: map[string]bool{}, lists: map[string]int{}}
}

func (a *apiserver) add(u *unstructured.Unstructured) *unstructured.Unstructured {
	if u.GetUID() == "" {
		u.SetUID(types.UID("uid-" + u.GetKind() + "-" + u.GetNamespace() + "-" + u.GetName()))
	}
	a.objects = append(a.objects, u)
	a.served[u.GetKind()] = true
	return u
}

func (a *apiserver) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return errors.New("only namespaces are read one by one")
	}
	got, found := a.namespaces[key.Name]
	if !found {
		return apierrors.NewNotFound(corev1.Resource("namespaces"), key.Name)
	}
	got.DeepCopyInto(ns)
	return nil
}

func (a *apiserver) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	ul := list.(*unstructured.UnstructuredList)
	kind := strings.TrimSuffix(ul.GetKind(), "List")
	a.lists[kind+" "+o.Namespace]++
	a.maxLimit = max(a.maxLimit, o.Limit)
	if o.Limit == 0 {
		return errors.New("the scan must list in pages")
	}
	if !a.served[kind] && kind != "Cluster" && kind != "AzureCluster" {
		return &apierrors.StatusError{ErrStatus: metav1.Status{Reason: metav1.StatusReasonNotFound, Code: 404}}
	}
	var match []*unstructured.Unstructured
	for _, u := range a.objects {
		if u.GetKind() == kind && u.GroupVersionKind().Version == ul.GroupVersionKind().Version && (o.Namespace == "" || u.GetNamespace() == o.Namespace) {
			match = append(match, u)
		}
	}
	sort.Slice(match, func(i, j int) bool {
		return match[i].GetNamespace()+"/"+match[i].GetName() < match[j].GetNamespace()+"/"+match[j].GetName()
	})
	start := 0
	if o.Continue != "" {
		start, _ = strconv.Atoi(o.Continue)
	}
	end := min(start+int(o.Limit), len(match))
	for _, u := range match[start:end] {
		ul.Items = append(ul.Items, *u.DeepCopy())
	}
	if end < len(match) {
		ul.SetContinue(strconv.Itoa(end))
	}
	return nil
}

func u(apiVersion, kind, ns, name string, labels map[string]string, spec map[string]any) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec}}
	o.SetLabels(labels)
	return o
}

func capz(kind, ns, name string, labels map[string]string, spec map[string]any) *unstructured.Unstructured {
	return u("infrastructure.cluster.x-k8s.io/v1beta1", kind, ns, name, labels, spec)
}

func cluster(ns, name, infraKind string) *unstructured.Unstructured {
	return u("cluster.x-k8s.io/v1beta2", "Cluster", ns, name, nil, map[string]any{
		"infrastructureRef": map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": infraKind, "name": name}})
}

func machineSpec(des string) map[string]any {
	md := map[string]any{"storageAccountType": "Premium_LRS"}
	if des != "" {
		md["diskEncryptionSet"] = map[string]any{"id": des}
	}
	return map[string]any{"vmSize": "Standard_D4s_v3", "osDisk": map[string]any{"osType": "Linux", "managedDisk": md}}
}

func inCluster(name string) map[string]string {
	return map[string]string{policy.LabelClusterName: name}
}

const policyYAML = `apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
requireCustomerManagedKeys: true
defaults:
- name: eastus
  regions: [eastus]
  diskEncryptionSetID: ` + "/subscriptions/" + sub + "/resourceGroups/keys-eastus/providers/Microsoft.Compute/diskEncryptionSets/des-eastus" + `
`

func mustPolicy(t testing.TB) *policy.Policy {
	p, err := policy.Parse("p.yaml", []byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func scanner(a *apiserver, p *policy.Policy) *Scanner {
	return &Scanner{Reader: a, ClusterGVK: clusterinfo.ClusterV1Beta2, Policy: func() *policy.Policy { return p },
		Catalog: skucatalog.Embedded(), PageSize: 2, Log: logr.Discard(),
		Now: func() time.Time { return time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) }}
}

func collect(t *testing.T, s *Scanner) ([]Result, Summary) {
	t.Helper()
	var out []Result
	sum, err := s.Run(context.Background(), func(r Result) error { out = append(out, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return out, sum
}

func byName(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Namespace+"/"+r.Name] = r
	}
	return m
}

func rulesOf(r Result) []string {
	var out []string
	for _, f := range r.Decision.Findings {
		out = append(out, string(f.Rule)+":"+string(f.Action))
	}
	return out
}

// TestScan: every guarded kind is listed in pages; each object is judged as stored, with its cluster
// and region resolved as admission resolves them (AzureCluster location, namespace annotation, AKS),
// and each namespace's clusters are read once.
func TestScan(t *testing.T) {
	a := newAPIServer()
	a.namespaces["team-a"] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
	a.namespaces["team-b"] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b",
		Annotations: map[string]string{policy.AnnotationLocation: "westcentralus"}, Labels: map[string]string{"env": "dev"}}}
	a.add(cluster("team-a", "east", "AzureCluster"))
	a.add(capz("AzureCluster", "team-a", "east", nil, map[string]any{"location": "eastus"}))
	a.add(cluster("team-a", "aks", "AzureManagedCluster"))
	for i := range 3 {
		a.add(capz("AzureMachineTemplate", "team-a", fmt.Sprintf("old-%d", i), inCluster("east"), map[string]any{"template": map[string]any{"spec": machineSpec("")}}))
	}
	a.add(capz("AzureMachineTemplate", "team-a", "compliant", inCluster("east"), map[string]any{"template": map[string]any{"spec": machineSpec(desEast)}}))
	a.add(capz("AzureMachine", "team-a", "aks-machine", inCluster("aks"), machineSpec(desEast)))
	a.add(capz("AzureMachineTemplate", "team-b", "no-cluster", nil, map[string]any{"template": map[string]any{"spec": machineSpec("")}}))
	a.add(capz("AzureManagedMachinePool", "team-b", "pool", nil, map[string]any{"mode": "System", "sku": "Standard_D4s_v3", "enableEncryptionAtHost": true}))

	results, sum := collect(t, scanner(a, mustPolicy(t)))
	if sum.Objects != 7 || sum.Denied != 6 || len(results) != 7 {
		t.Fatalf("summary %+v (%d results)", sum, len(results))
	}
	// These kinds are not served by this apiserver.
	if !slices.Equal(sum.Skipped, []string{"AzureMachinePool", "AzureManagedMachinePoolTemplate", "AzureManagedControlPlane", "AzureManagedControlPlaneTemplate",
		"AzureASOManagedMachinePool", "AzureASOManagedMachinePoolTemplate", "AzureASOManagedControlPlane", "AzureASOManagedControlPlaneTemplate"}) {
		t.Errorf("skipped kinds = %v", sum.Skipped)
	}
	got := byName(results)
	old := got["team-a/old-1"]
	if d := old.Decision; d.Region != "eastus" || d.RegionSource != "cluster" || old.Cluster.Name != "east" || !old.Cluster.Found ||
		!slices.Equal(rulesOf(old), []string{"created-before-default:warn", "des-required:deny"}) || d.MissingDefaults[0] != "osDisk.managedDisk.diskEncryptionSet.id" {
		t.Errorf("old-1: %+v %v", d, rulesOf(old))
	}
	if old.UID != "uid-AzureMachineTemplate-team-a-old-1" || old.APIVersion != "infrastructure.cluster.x-k8s.io/v1beta1" {
		t.Errorf("identity: %+v", old)
	}
	if r := got["team-a/compliant"]; !r.Decision.Allowed || len(r.Decision.Findings) != 0 {
		t.Errorf("compliant: %v", rulesOf(r))
	}
	if r := got["team-a/aks-machine"]; !r.Cluster.AKS || !slices.Contains(rulesOf(r), "aks-target:deny") {
		t.Errorf("aks machine: %+v %v", r.Cluster, rulesOf(r))
	}
	// No cluster: the namespace annotation names the region; no default there.
	if r := got["team-b/no-cluster"]; r.Decision.Region != "westcentralus" || r.Decision.RegionSource != "namespace-annotation" ||
		!slices.Equal(rulesOf(r), []string{"default-not-applied:warn", "des-required:deny"}) {
		t.Errorf("no-cluster: %s from %s, %v", r.Decision.Region, r.Decision.RegionSource, rulesOf(r))
	}
	if r := got["team-b/pool"]; !slices.Equal(rulesOf(r), []string{"aks-target:deny"}) {
		t.Errorf("AKS pool: %v", rulesOf(r))
	}
	// Paged: never more than the page size per call, and more than one call for four templates.
	if a.maxLimit != 2 || a.lists["AzureMachineTemplate "] != 3 {
		t.Errorf("limit %d, AzureMachineTemplate list calls %d (want pages of 2: 3 calls)", a.maxLimit, a.lists["AzureMachineTemplate "])
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if a.lists["Cluster "+ns] != 1 || a.lists["AzureCluster "+ns] != 1 {
			t.Errorf("namespace %s: Clusters listed %d times, AzureClusters %d times; want once per scan", ns, a.lists["Cluster "+ns], a.lists["AzureCluster "+ns])
		}
	}
}

// fakeMachines answers like azure.Machines.
type fakeMachines struct {
	vms       map[string]*policy.ActualVM // providerID → VM
	scaleSets map[string]*policy.ActualVM // sub/rg/name → model
	asked     []string
}

func (f *fakeMachines) VM(_ context.Context, pid string) (*policy.ActualVM, error) {
	f.asked = append(f.asked, pid)
	if vm, ok := f.vms[pid]; ok {
		return vm, nil
	}
	return nil, fmt.Errorf("VM %s: %w", pid, azure.ErrNotFound)
}

func (f *fakeMachines) ScaleSet(_ context.Context, s, rg, name string) (*policy.ActualVM, error) {
	key := s + "/" + rg + "/" + name
	f.asked = append(f.asked, key)
	if vm, ok := f.scaleSets[key]; ok {
		return vm, nil
	}
	return nil, fmt.Errorf("scale set %s: %w", key, azure.ErrNotFound)
}

// TestScanReadsAzure: AzureMachines are compared with their VM (from spec.providerID), AzureMachinePools
// with their scale set (named after the pool; resource group from providerIDList, else the AzureCluster);
// a machine Azure does not know is an error of the result, not of the scan.
func TestScanReadsAzure(t *testing.T) {
	a := newAPIServer()
	a.namespaces["team"] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}
	a.add(cluster("team", "east", "AzureCluster"))
	a.add(capz("AzureCluster", "team", "east", nil, map[string]any{"location": "eastus", "resourceGroup": "rg-east", "subscriptionID": sub}))
	pid := func(name string) string {
		return "azure:///subscriptions/" + sub + "/resourceGroups/rg-east/providers/Microsoft.Compute/virtualMachines/" + name
	}
	withPID := func(des, name string) map[string]any {
		s := machineSpec(des)
		s["providerID"] = pid(name)
		return s
	}
	a.add(capz("AzureMachine", "team", "m-platform", inCluster("east"), withPID(desEast, "m-platform")))
	a.add(capz("AzureMachine", "team", "m-gone", inCluster("east"), withPID(desEast, "m-gone")))
	a.add(capz("AzureMachine", "team", "m-pending", inCluster("east"), machineSpec(desEast)))
	a.add(capz("AzureMachinePool", "team", "mp-listed", inCluster("east"), map[string]any{"location": "eastus", "template": machineSpec(desEast),
		"providerIDList": []any{"azure:///subscriptions/" + sub + "/resourceGroups/rg-nodes/providers/Microsoft.Compute/virtualMachineScaleSets/mp-listed/virtualMachines/0"}}))
	a.add(capz("AzureMachinePool", "team", "mp-new", inCluster("east"), map[string]any{"location": "eastus", "template": machineSpec(desEast)}))
	m := &fakeMachines{
		vms: map[string]*policy.ActualVM{pid("m-platform"): {Resource: "vm/m-platform", OSDisk: policy.ActualDisk{Name: "os", Lun: -1, EncryptionType: "EncryptionAtRestWithPlatformKey"}}},
		scaleSets: map[string]*policy.ActualVM{
			sub + "/rg-nodes/mp-listed": {Resource: "vmss/mp-listed", ScaleSet: true, OSDisk: policy.ActualDisk{Lun: -1, DESID: desWest}},
			sub + "/rg-east/mp-new":     {Resource: "vmss/mp-new", ScaleSet: true, OSDisk: policy.ActualDisk{Lun: -1, DESID: desEast}},
		},
	}
	s := scanner(a, mustPolicy(t))
	s.Machines = m
	results, sum := collect(t, s)
	got := byName(results)
	if r := got["team/m-platform"]; r.Azure == nil || r.Azure.Resource != "vm/m-platform" || !slices.Contains(rulesOf(r), "azure-disk-not-customer-key:deny") {
		t.Errorf("m-platform: %+v %v", r.Azure, rulesOf(r))
	}
	if r := got["team/m-gone"]; r.Azure == nil || !strings.Contains(r.Azure.Error, "not found in Azure") || r.Decision == nil {
		t.Errorf("m-gone: %+v", r.Azure)
	}
	if r := got["team/m-pending"]; r.Azure != nil {
		t.Errorf("a machine without providerID was read: %+v", r.Azure)
	}
	if r := got["team/mp-listed"]; !slices.Contains(rulesOf(r), "azure-disk-des-mismatch:deny") {
		t.Errorf("mp-listed: %v", rulesOf(r))
	}
	if r := got["team/mp-new"]; r.Azure == nil || r.Azure.Resource != "vmss/mp-new" || len(r.Decision.Findings) != 0 {
		t.Errorf("mp-new: %+v %v", r.Azure, rulesOf(r))
	}
	if sum.Errors != 1 {
		t.Errorf("errors = %d, want 1 (m-gone)", sum.Errors)
	}
	if len(m.asked) != 4 {
		t.Errorf("Azure reads: %v", m.asked)
	}
}

// warmDES knows a set only once Warm has loaded it.
type warmDES struct{ loaded map[string]bool }

func (w *warmDES) LookupDES(id string) (policy.DESInfo, policy.DESState) {
	if w.loaded[strings.ToLower(id)] {
		return policy.DESInfo{Location: "westus2", EncryptionType: "EncryptionAtRestWithCustomerKey", RotationToLatestKeyVersion: true}, policy.DESFound
	}
	return policy.DESInfo{}, policy.DESUnknown
}

func (w *warmDES) Warm(_ context.Context, regions, ids []string) bool {
	if len(regions) != 1 || regions[0] != "eastus" {
		return false
	}
	loaded := false
	for _, id := range ids {
		if !w.loaded[strings.ToLower(id)] {
			w.loaded[strings.ToLower(id)], loaded = true, true
		}
	}
	return loaded
}

// TestScanWarms: a one-shot scan loads the Disk Encryption Sets an object names and judges it again,
// so live rules apply on the first run.
func TestScanWarms(t *testing.T) {
	a := newAPIServer()
	a.namespaces["team"] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}
	a.add(capz("AzureMachine", "team", "m", map[string]string{}, machineSpec(desWest))).
		SetAnnotations(map[string]string{policy.AnnotationLocation: "eastus"})
	w := &warmDES{loaded: map[string]bool{}}
	s := scanner(a, policy.DefaultPolicy())
	s.DES, s.Warm = w, w
	results, _ := collect(t, s)
	if !slices.Contains(rulesOf(results[0]), "des-location-mismatch:deny") {
		t.Fatalf("the set was not loaded and judged: %v", rulesOf(results[0]))
	}
}

func TestScanListErrorEndsTheScan(t *testing.T) {
	s := scanner(nil, policy.DefaultPolicy())
	s.Reader = failingReader{}
	if _, err := s.Run(context.Background(), func(Result) error { return nil }); err == nil || !strings.Contains(err.Error(), "azuremachinetemplates") {
		t.Fatalf("err = %v", err)
	}
}

type failingReader struct{ client.Reader }

func (failingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return apierrors.NewForbidden(schema.GroupResource{Group: policy.Group, Resource: "azuremachinetemplates"}, "", errors.New("RBAC"))
}

// TestScanFindsAnAKSClustersRegion: an AKS cluster's region is its AzureManagedControlPlane's, as
// admission reads it from its cache; the audit lists the control planes too, so a machine pool of
// that cluster is judged in that region, not in none.
func TestScanFindsAnAKSClustersRegion(t *testing.T) {
	a := newAPIServer()
	c := cluster("team-a", "aks", "AzureManagedCluster")
	c.Object["spec"].(map[string]any)["controlPlaneRef"] = map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io",
		"kind": "AzureManagedControlPlane", "name": "aks"}
	a.add(c)
	a.add(capz("AzureManagedControlPlane", "team-a", "aks", nil, map[string]any{"location": "westcentralus", "version": "v1.33.0"}))
	a.add(capz("AzureManagedMachinePool", "team-a", "pool", inCluster("aks"), map[string]any{"mode": "System", "sku": "Standard_D4s_v3"}))
	results, _ := collect(t, scanner(a, mustPolicy(t)))
	r, ok := byName(results)["team-a/pool"]
	if !ok {
		t.Fatalf("no result for the pool: %v", results)
	}
	if !r.Cluster.AKS || r.Decision.Region != "westcentralus" || r.Decision.RegionSource != "cluster" {
		t.Errorf("AKS pool: cluster %+v, region %q from %q", r.Cluster, r.Decision.Region, r.Decision.RegionSource)
	}
}
