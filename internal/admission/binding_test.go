package admission

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

// objects is an ObjectReader over a map keyed by kind/name.
type objects map[string]map[string]any

func (o objects) Object(_ context.Context, gk schema.GroupKind, _, name string) (map[string]any, bool) {
	m, ok := o[gk.Kind+"/"+name]
	return m, ok
}

func amtWithDES(name, des string) map[string]any {
	osDisk := map[string]any{"osType": "Linux", "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}
	if des != "" {
		osDisk["managedDisk"].(map[string]any)["diskEncryptionSet"] = map[string]any{"id": des}
	}
	return map[string]any{"apiVersion": policy.Group + "/v1beta1", "kind": "AzureMachineTemplate",
		"metadata": map[string]any{"name": name, "namespace": "team"},
		"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"vmSize": "Standard_D2s_v3", "osDisk": osDisk}}}}
}

func bindingRequest(t *testing.T, op admissionv1.Operation, kind metav1.GroupVersionKind, obj, old map[string]any) admission.Request {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	r := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "uid-b", Operation: op, Namespace: "team", Name: "md-0",
		Kind: kind, Object: runtime.RawExtension{Raw: raw}}}
	if old != nil {
		if r.OldObject.Raw, err = json.Marshal(old); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

var mdKind = metav1.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta2", Kind: "MachineDeployment"}

func md(template string, replicas int) map[string]any {
	return map[string]any{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment",
		"metadata": map[string]any{"name": "md-0", "namespace": "team"},
		"spec": map[string]any{"clusterName": "c1", "replicas": replicas, "template": map[string]any{"spec": map[string]any{
			"infrastructureRef": map[string]any{"apiGroup": policy.Group, "kind": "AzureMachineTemplate", "name": template}}}}}
}

func bindingHandler(t *testing.T, r Resolver, objs objects, logs *testsupport.LogLines) (admission.Handler, *prometheus.Registry) {
	t.Helper()
	p, err := policy.Parse("p.yaml", []byte("apiVersion: policy.capz-encryption-webhook.io/v1alpha1\nkind: EncryptionPolicy\nrequireCustomerManagedKeys: true\n"+
		"defaults:\n- name: eastus\n  regions: [eastus]\n  diskEncryptionSetID: "+des+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	return New(Config{Mode: Binding, Policies: staticPolicy{p}, Resolver: r, Objects: objs, Catalog: skucatalog.Embedded(),
		Recorder: decisionlog.NewRecorder(logs.Logger()), Metrics: NewMetrics(reg)}), reg
}

func TestBindingDeniesATemplateDeniedInTheCluster(t *testing.T) {
	logs := &testsupport.LogLines{}
	bound := staticResolver{Cluster: policy.ClusterInfo{Name: "c1", BoundBy: "spec.clusterName", Found: true},
		Locations: []policy.LocationCandidate{{Location: "eastus", Source: "cluster"}}}
	h, _ := bindingHandler(t, bound, objects{"AzureMachineTemplate/plain": amtWithDES("plain", "")}, logs)
	resp := h.Handle(context.Background(), bindingRequest(t, admissionv1.Create, mdKind, md("plain", 3), nil))
	if resp.Allowed {
		t.Fatal("a template without a DES, bound where one is required, must deny the binding")
	}
	for _, want := range []string{"capz-encryption-webhook denied MachineDeployment team/md-0", "[des-required] spec.template.spec.infrastructureRef",
		"AzureMachineTemplate plain", `cluster "c1", region eastus`, "stored without it"} {
		if !strings.Contains(resp.Result.Message, want) {
			t.Errorf("message lacks %q: %s", want, resp.Result.Message)
		}
	}
	if !strings.Contains(logs.Lines()[0], `"webhook":"validate-binding"`) || !strings.Contains(logs.Lines()[0], `"binding":"spec.clusterName"`) {
		t.Errorf("log line: %s", logs.Lines()[0])
	}
}

func TestBindingScaleNeverResolves(t *testing.T) {
	logs := &testsupport.LogLines{}
	// panicResolver: a scale-up must not even look the cluster up.
	h, _ := bindingHandler(t, panicResolver{}, objects{}, logs)
	resp := h.Handle(context.Background(), bindingRequest(t, admissionv1.Update, mdKind, md("plain", 5), md("plain", 3)))
	if !resp.Allowed || !strings.Contains(logs.Lines()[0], `"exempt":"infrastructure reference unchanged"`) {
		t.Errorf("scale-up: %+v %v", resp.Result, logs.Lines())
	}
}

// TestBindingBeforeItsTemplateNeverResolves: in CAPZ's flavors the MachineDeployment comes before
// its template, which its own CREATE judges; the binding check answers without looking the cluster up.
func TestBindingBeforeItsTemplateNeverResolves(t *testing.T) {
	logs := &testsupport.LogLines{}
	h, _ := bindingHandler(t, panicResolver{}, objects{}, logs)
	resp := h.Handle(context.Background(), bindingRequest(t, admissionv1.Create, mdKind, md("later", 3), nil))
	if !resp.Allowed || !strings.Contains(logs.Lines()[0], `"exempt":"template not found yet: judged at its own CREATE"`) {
		t.Errorf("binding before its template: %+v %v", resp.Result, logs.Lines())
	}
}

func TestBindingRepaveWarning(t *testing.T) {
	logs := &testsupport.LogLines{}
	bound := staticResolver{Cluster: policy.ClusterInfo{Name: "c1", Found: true}, Locations: []policy.LocationCandidate{{Location: "eastus", Source: "cluster"}}}
	other := testsupport.DESID("keys", "other")
	h, _ := bindingHandler(t, bound, objects{"AzureMachineTemplate/old": amtWithDES("old", des), "AzureMachineTemplate/new": amtWithDES("new", other)}, logs)
	old := md("old", 3)
	old["status"] = map[string]any{"replicas": 2}
	updated := md("new", 3)
	updated["status"] = map[string]any{"replicas": 2}
	resp := h.Handle(context.Background(), bindingRequest(t, admissionv1.Update, mdKind, updated, old))
	if !resp.Allowed || len(resp.Warnings) != 1 {
		t.Fatalf("want an allowed switch with one warning: %+v %v", resp.Result, resp.Warnings)
	}
	for _, want := range []string{"[encryption-change-repave]", "from AzureMachineTemplate old to AzureMachineTemplate new", "all 2 of its machines will be replaced"} {
		if !strings.Contains(resp.Warnings[0], want) {
			t.Errorf("warning lacks %q: %s", want, resp.Warnings[0])
		}
	}
}

// A KubeadmControlPlane in v1beta1 shape, as an apiserver without CAPI's conversion webhook sends it
// to a webhook registered for v1beta2.
func TestBindingReadsBothShapes(t *testing.T) {
	logs := &testsupport.LogLines{}
	bound := staticResolver{Cluster: policy.ClusterInfo{Name: "c1", Found: true}, Locations: []policy.LocationCandidate{{Location: "eastus", Source: "cluster"}}}
	h, _ := bindingHandler(t, bound, objects{"AzureMachineTemplate/cp": amtWithDES("cp", "")}, logs)
	kcp := map[string]any{"apiVersion": "controlplane.cluster.x-k8s.io/v1beta2", "kind": "KubeadmControlPlane",
		"metadata": map[string]any{"name": "cp", "namespace": "team"},
		"spec": map[string]any{"machineTemplate": map[string]any{"infrastructureRef": map[string]any{
			"apiVersion": policy.Group + "/v1beta1", "kind": "AzureMachineTemplate", "name": "cp"}}}}
	resp := h.Handle(context.Background(), bindingRequest(t, admissionv1.Create,
		metav1.GroupVersionKind{Group: "controlplane.cluster.x-k8s.io", Version: "v1beta2", Kind: "KubeadmControlPlane"}, kcp, nil))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "spec.machineTemplate.infrastructureRef") {
		t.Errorf("KCP in v1beta1 shape: %+v", resp.Result)
	}
}
