package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var (
	amtGVK     = schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: "AzureMachineTemplate"}
	clusterGVK = schema.GroupVersionKind{Group: "cluster.x-k8s.io", Version: "v1beta2", Kind: "Cluster"}
)

func desPlaceholder() string {
	return "/subscriptions/subscriptionId/resourceGroups/resourceGroup/providers/Microsoft.Compute/diskEncryptionSets/diskEncryptionSet"
}

func object(gvk schema.GroupVersionKind, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": name, "namespace": testNS}, "spec": spec}}
	u.SetGroupVersionKind(gvk)
	return u
}

// template is an AzureMachineTemplate without encryption settings; location "" leaves the region to
// the cluster-name label.
func template(name, location, size string) *unstructured.Unstructured {
	u := object(amtGVK, name, map[string]any{"template": map[string]any{"spec": map[string]any{
		"vmSize": size,
		"osDisk": map[string]any{"osType": "Linux", "diskSizeGB": int64(128), "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}},
	}}})
	if location != "" {
		u.SetAnnotations(map[string]string{"capz-encryption-webhook.io/location": location})
	}
	return u
}

func setField(u *unstructured.Unstructured, v any, path ...string) {
	if err := unstructured.SetNestedField(u.Object, v, path...); err != nil {
		panic(err)
	}
}

func tplPath(p ...string) []string { return append([]string{"spec", "template", "spec"}, p...) }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func get(t *testing.T, u *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	out := &unstructured.Unstructured{}
	out.SetGroupVersionKind(u.GroupVersionKind())
	if err := k8s.Get(ctx(t), client.ObjectKeyFromObject(u), out); err != nil {
		t.Fatalf("get %s: %v", u.GetName(), err)
	}
	return out
}

func nestedString(t *testing.T, u *unstructured.Unstructured, path ...string) string {
	t.Helper()
	v, _, err := unstructured.NestedFieldNoCopy(u.Object, path...)
	if err != nil {
		t.Fatalf("%v: %v", path, err)
	}
	s, _ := v.(string)
	return s
}

func expectDenied(t *testing.T, err error, rule string, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a denial by %s, the object was admitted", rule)
	}
	if !apierrors.IsForbidden(err) {
		t.Fatalf("want 403 Forbidden from the webhook, got %v", err)
	}
	for _, w := range append([]string{"capz-encryption-webhook denied", "[" + rule + "]"}, wants...) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the client's error lacks %q:\n%v", w, err)
		}
	}
	// The status details the webhook sets reach the client through the apiserver: one cause per
	// violation, the rule ID as its reason.
	if c := causeFor(err, rule); c == nil || c.Field == "" || c.Message == "" {
		t.Errorf("the client's status has no cause with reason %s and a field (details %+v)", rule, statusDetails(err))
	}
}

func statusDetails(err error) *metav1.StatusDetails {
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		return nil
	}
	return se.ErrStatus.Details
}

func causeFor(err error, rule string) *metav1.StatusCause {
	d := statusDetails(err)
	if d == nil {
		return nil
	}
	for i := range d.Causes {
		if string(d.Causes[i].Type) == rule {
			return &d.Causes[i]
		}
	}
	return nil
}

// TestDenialCausesReachTheClient: two violations in one object come back to the client as a 403 with
// the object named in the details and one cause per violation, each with its field path, as
// apierrors.NewInvalid would report them.
func TestDenialCausesReachTheClient(t *testing.T) {
	u := template("causes", "eastus", "Standard_D2_v3")
	setField(u, desPlaceholder(), tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
	setField(u, true, tplPath("securityProfile", "encryptionAtHost")...)
	err := k8s.Create(ctx(t), u)
	if !apierrors.IsForbidden(err) {
		t.Fatalf("want 403 Forbidden, got %v", err)
	}
	d := statusDetails(err)
	if d == nil || d.Name != "causes" || d.Kind != "AzureMachineTemplate" || d.Group != amtGVK.Group {
		t.Fatalf("details = %+v, want the object named", d)
	}
	want := map[string]string{
		"des-id-malformed":    "spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id",
		"eah-sku-unsupported": "spec.template.spec.securityProfile.encryptionAtHost",
	}
	if len(d.Causes) != len(want) {
		t.Errorf("causes = %+v, want %d", d.Causes, len(want))
	}
	for rule, field := range want {
		if c := causeFor(err, rule); c == nil || c.Field != field || !strings.Contains(err.Error(), c.Message) {
			t.Errorf("cause %s = %+v, want field %s and the message the error shows", rule, c, field)
		}
	}
}

func TestEachRuleDenies(t *testing.T) {
	withDES := func(u *unstructured.Unstructured, id string) *unstructured.Unstructured {
		setField(u, id, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
		return u
	}
	eah := func(u *unstructured.Unstructured) *unstructured.Unstructured {
		setField(u, true, tplPath("securityProfile", "encryptionAtHost")...)
		return u
	}
	ade := template("rule-ade", "eastus", "Standard_D4s_v3")
	setField(ade, []any{map[string]any{"name": "AzureDiskEncryptionForLinux", "publisher": "Microsoft.Azure.Security", "version": "1.4"}}, tplPath("vmExtensions")...)
	ammp := object(schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: "AzureManagedMachinePool"}, "rule-aks-pool",
		map[string]any{"mode": "System", "sku": "Standard_D4s_v3", "enableEncryptionAtHost": true})
	amcp := object(schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: "AzureManagedControlPlane"}, "rule-aks-cp",
		map[string]any{"location": "eastus", "resourceGroupName": "aks", "version": "v1.33.2",
			"identityRef":              map[string]any{"kind": "AzureClusterIdentity", "name": "id"},
			"asoManagedClusterPatches": []any{`{"spec":{"diskEncryptionSetReference":{"armId":"` + desEast + `"}}}`}})
	cases := []struct {
		rule  string
		obj   *unstructured.Unstructured
		wants []string
	}{
		{"des-id-malformed", withDES(template("rule-des-malformed", "eastus", "Standard_D4s_v3"), desPlaceholder()), []string{"spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id", "documentation's placeholder"}},
		{"eah-sku-unsupported", eah(template("rule-eah", "eastus", "Standard_D2_v3")), []string{"Standard_D2_v3", "eastus"}},
		{"sku-unknown", template("rule-sku-unknown", "eastus", "Standard_Nope_v9"), []string{"Standard_Nope_v9", "not offered"}},
		{"ade-extension", ade, []string{"Azure Disk Encryption"}},
		{"des-required", template("rule-des-required", "westcentralus", "Standard_D4s_v3"), []string{"customer-managed keys"}},
		{"des-subscription-not-allowed", withDES(template("rule-des-sub", "eastus", "Standard_D4s_v3"),
			"/subscriptions/"+otherSub+"/resourceGroups/k/providers/Microsoft.Compute/diskEncryptionSets/d"), []string{otherSub}},
		{"aks-target", ammp, []string{"spec.enableEncryptionAtHost"}},
		{"aks-target", amcp, []string{"diskEncryptionSetReference"}},
	}
	for _, tc := range cases {
		t.Run(tc.rule+"/"+tc.obj.GetName(), func(t *testing.T) {
			expectDenied(t, k8s.Create(ctx(t), tc.obj), tc.rule, tc.wants...)
		})
	}
	t.Run("rules that warn by default, set to deny", testWarnRulesDeny)
}

// testWarnRulesDeny: catalog-region-missing, location-annotation-ignored and location-mismatch warn
// by default; a policy that sets them to deny (reloaded in place) gets denials.
func testWarnRulesDeny(t *testing.T) {
	// A cluster in eastus, for the location rules.
	if err := k8s.Create(ctx(t), object(schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: "AzureCluster"}, "rules-east-az",
		map[string]any{"location": "eastus"})); err != nil {
		t.Fatal(err)
	}
	createCluster(t, "rules-east",
		map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AzureCluster", "name": "rules-east-az"},
		map[string]any{"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "rules-east-cp"})
	// westeurope is in no catalog layer; the DES keeps des-required (customer-managed keys are
	// required, and no default covers westeurope) out of the way.
	uncovered := func(name string) *unstructured.Unstructured {
		u := template(name, "westeurope", "Standard_D4s_v3")
		setField(u, desUser, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
		return u
	}
	annotated := template("rule-annotation-ignored", "westus2", "Standard_D4s_v3")
	annotated.SetLabels(map[string]string{"cluster.x-k8s.io/cluster-name": "rules-east"})
	pool := machinePool("rule-location-mismatch")
	pool.SetLabels(map[string]string{"cluster.x-k8s.io/cluster-name": "rules-east"})
	setField(pool, "southcentralus", "spec", "location")

	strict := e2ePolicy + "rules:\n  catalog-region-missing: deny\n  location-annotation-ignored: deny\n  location-mismatch: deny\n"
	writeAtomically(t, hook.policy, strict)
	t.Cleanup(func() {
		writeAtomically(t, hook.policy, e2ePolicy)
		eventually(t, 20*time.Second, func() error { return k8s.Create(ctx(t), uncovered("rules-restored"), client.DryRunAll) })
	})
	eventually(t, 20*time.Second, func() error {
		if err := k8s.Create(ctx(t), uncovered("rules-reloaded"), client.DryRunAll); err == nil {
			return fmt.Errorf("the strict policy is not in force yet")
		}
		return nil
	})
	expectDenied(t, k8s.Create(ctx(t), uncovered("rule-catalog-region-missing")), "catalog-region-missing",
		"region westeurope is not covered by the VM-size catalog", "azure.subscriptionID")
	// The informer sees the new Cluster a moment after the apiserver stores it.
	eventually(t, 20*time.Second, func() error {
		err := k8s.Create(ctx(t), annotated.DeepCopy(), client.DryRunAll)
		switch {
		case err == nil:
			return fmt.Errorf("admitted: the webhook does not know cluster rules-east yet")
		case !strings.Contains(err.Error(), "[location-annotation-ignored]"):
			return fmt.Errorf("not denied by location-annotation-ignored yet: %w", err)
		}
		return nil
	})
	expectDenied(t, k8s.Create(ctx(t), annotated), "location-annotation-ignored", "names westus2", "is in eastus")
	expectDenied(t, k8s.Create(ctx(t), pool), "location-mismatch", "spec.location is southcentralus", "is in eastus")
}

func TestDefaultsInjected(t *testing.T) {
	u := template("defaults", "eastus", "Standard_D2s_v3")
	setField(u, []any{map[string]any{"nameSuffix": "etcd", "diskSizeGB": int64(64), "lun": int64(0), "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}}, tplPath("dataDisks")...)
	if err := k8s.Create(ctx(t), u); err != nil {
		t.Fatal(err)
	}
	got := get(t, u)
	if v := nestedString(t, got, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...); v != desEast {
		t.Errorf("OS disk DES = %q, want the eastus default", v)
	}
	disks, _, _ := unstructured.NestedSlice(got.Object, tplPath("dataDisks")...)
	if id, _, _ := unstructured.NestedString(disks[0].(map[string]any), "managedDisk", "diskEncryptionSet", "id"); id != desEast {
		t.Errorf("data disk DES = %q", id)
	}
	if on, _, _ := unstructured.NestedBool(got.Object, tplPath("securityProfile", "encryptionAtHost")...); !on {
		t.Error("encryptionAtHost was not injected")
	}
	if a := got.GetAnnotations()["capz-encryption-webhook.io/injected"]; !strings.Contains(a, "osDisk.managedDisk.diskEncryptionSet.id") || !strings.Contains(a, "securityProfile.encryptionAtHost") {
		t.Errorf("injected annotation = %q", a)
	}
	if v := nestedString(t, got, tplPath("osDisk", "managedDisk", "storageAccountType")...); v != "Premium_LRS" {
		t.Errorf("storageAccountType lost: %q", v)
	}
}

func TestUserValuesNeverOverwritten(t *testing.T) {
	u := template("user-values", "eastus", "Standard_D2s_v3")
	setField(u, desUser, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
	setField(u, false, tplPath("securityProfile", "encryptionAtHost")...)
	warnings.take()
	if err := k8s.Create(ctx(t), u); err != nil {
		t.Fatal(err)
	}
	got := get(t, u)
	if v := nestedString(t, got, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...); v != desUser {
		t.Errorf("user DES overwritten: %q", v)
	}
	if on, found, _ := unstructured.NestedBool(got.Object, tplPath("securityProfile", "encryptionAtHost")...); !found || on {
		t.Errorf("user's encryptionAtHost: false overwritten (found=%v value=%v)", found, on)
	}
	// The default could not be applied: the client is told, not refused.
	if w := strings.Join(warnings.take(), "\n"); !strings.Contains(w, "[default-not-applied]") {
		t.Errorf("want a default-not-applied warning, got %q", w)
	}
}

func TestUnknownFieldKept(t *testing.T) {
	u := template("future-field", "eastus", "Standard_D2s_v3")
	setField(u, "set by a newer CAPZ", tplPath("futureField")...)
	if err := k8s.Create(ctx(t), u); err != nil {
		t.Fatal(err)
	}
	got := get(t, u)
	if v := nestedString(t, got, tplPath("futureField")...); v != "set by a newer CAPZ" {
		t.Errorf("futureField = %q after mutation", v)
	}
	if v := nestedString(t, got, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...); v != desEast {
		t.Errorf("defaults not injected next to the unknown field: %q", v)
	}
}

func TestServerSideDryRun(t *testing.T) {
	bad := template("dry-run-bad", "eastus", "Standard_D2_v3")
	setField(bad, true, tplPath("securityProfile", "encryptionAtHost")...)
	dryErr := k8s.Create(ctx(t), bad.DeepCopy(), client.DryRunAll)
	expectDenied(t, dryErr, "eah-sku-unsupported", "Standard_D2_v3")
	// The same answer, word for word, as the real request.
	if realErr := k8s.Create(ctx(t), bad.DeepCopy()); realErr == nil || realErr.Error() != dryErr.Error() {
		t.Errorf("dry-run and real answers differ:\n dry-run: %v\n real:    %v", dryErr, realErr)
	}

	good := template("dry-run-good", "eastus", "Standard_D2s_v3")
	if err := k8s.Create(ctx(t), good, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	// The dry-run answer carries the same mutation...
	if v := nestedString(t, good, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...); v != desEast {
		t.Errorf("dry-run response lacks the default: %q", v)
	}
	// ...and leaves nothing behind.
	err := k8s.Get(ctx(t), client.ObjectKeyFromObject(good), &unstructured.Unstructured{Object: map[string]any{"apiVersion": amtGVK.GroupVersion().String(), "kind": amtGVK.Kind}})
	if !apierrors.IsNotFound(err) {
		t.Errorf("dry-run left an object: %v", err)
	}
	if hook.auditLine(5*time.Second, func(l map[string]any) bool { dry, _ := l["dryRun"].(bool); return l["name"] == "dry-run-good" && dry }) == nil {
		t.Error("the audit line must record dryRun: true")
	}
}

func TestMetadataUpdateOfNonCompliantObject(t *testing.T) {
	legacy := get(t, template(legacyName, "", ""))
	labels := legacy.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["owner"] = "team-b"
	legacy.SetLabels(labels)
	if err := k8s.Update(ctx(t), legacy); err != nil {
		t.Fatalf("a label change on an old non-compliant object was blocked: %v", err)
	}
	// A spec change that adds a new violation is still refused.
	legacy = get(t, legacy)
	setField(legacy, []any{map[string]any{"name": "AzureDiskEncryption", "publisher": "Microsoft.Azure.Security", "version": "2.2"}}, tplPath("vmExtensions")...)
	expectDenied(t, k8s.Update(ctx(t), legacy), "ade-extension")
}

// eventually retries f until it returns nil or the deadline passes: the webhook's informers see new
// Clusters a moment after the apiserver stores them.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func createCluster(t *testing.T, name string, infra, cp map[string]any) {
	t.Helper()
	if err := k8s.Create(ctx(t), object(clusterGVK, name, map[string]any{"infrastructureRef": infra, "controlPlaneRef": cp})); err != nil {
		t.Fatal(err)
	}
}

func TestAKSClusterTemplateDenied(t *testing.T) {
	createCluster(t, "aks1",
		map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AzureManagedCluster", "name": "aks1"},
		map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AzureManagedControlPlane", "name": "aks1"})
	eventually(t, 20*time.Second, func() error {
		u := template("aks1-md", "eastus", "Standard_D2s_v3")
		u.SetLabels(map[string]string{"cluster.x-k8s.io/cluster-name": "aks1"})
		setField(u, true, tplPath("securityProfile", "encryptionAtHost")...)
		err := k8s.Create(ctx(t), u)
		if err == nil {
			_ = k8s.Delete(ctx(t), u)
			return fmt.Errorf("admitted (the webhook has not seen Cluster aks1 yet?)")
		}
		if !strings.Contains(err.Error(), "[aks-target]") || !strings.Contains(err.Error(), "AzureManagedCluster") {
			return fmt.Errorf("denied, but not by aks-target: %w", err)
		}
		return nil
	})
}

func TestRegionFromClusterDecides(t *testing.T) {
	for _, c := range []struct{ name, location string }{{"east", "eastus"}, {"south", "southcentralus"}} {
		if err := k8s.Create(ctx(t), object(schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: "AzureCluster"}, c.name+"-az",
			map[string]any{"location": c.location})); err != nil {
			t.Fatal(err)
		}
		createCluster(t, c.name,
			map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AzureCluster", "name": c.name + "-az"},
			map[string]any{"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": c.name + "-cp"})
	}
	// Standard_M8-2ms supports encryption at host, but is restricted for the subscription in eastus.
	m8 := func(name, cluster string) *unstructured.Unstructured {
		u := template(name, "", "Standard_M8-2ms")
		u.SetLabels(map[string]string{"cluster.x-k8s.io/cluster-name": cluster})
		setField(u, true, tplPath("securityProfile", "encryptionAtHost")...)
		return u
	}
	eventually(t, 20*time.Second, func() error {
		err := k8s.Create(ctx(t), m8("m8-east", "east"))
		if err == nil {
			return fmt.Errorf("admitted in eastus")
		}
		if !strings.Contains(err.Error(), "[eah-sku-unsupported]") || !strings.Contains(err.Error(), "restricted for this subscription in eastus") {
			return fmt.Errorf("not the eastus restriction: %w", err)
		}
		return nil
	})
	eventually(t, 20*time.Second, func() error { return k8s.Create(ctx(t), m8("m8-south", "south")) })
	got := get(t, m8("m8-south", "south"))
	if v := nestedString(t, got, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...); v != desSouth {
		t.Errorf("southcentralus default not injected: %q", v)
	}
	var source string
	if l := hook.auditLine(5*time.Second, func(l map[string]any) bool {
		return l["name"] == "m8-south" && l["webhook"] == "validate" && l["outcome"] == "allowed"
	}); l != nil {
		source, _ = l["regionSource"].(string)
	}
	if source != "cluster" {
		t.Errorf("region source in the audit line = %q, want cluster", source)
	}
}

// TestAuditTrail joins the kube-apiserver audit log with the webhook's log by request UID: a denial
// and a mutation each appear in both.
func TestAuditTrail(t *testing.T) {
	bad := template("audit-denied", "eastus", "Standard_Nope_v9")
	expectDenied(t, k8s.Create(ctx(t), bad), "sku-unknown")
	good := template("audit-mutated", "eastus", "Standard_D2s_v3")
	if err := k8s.Create(ctx(t), good); err != nil {
		t.Fatal(err)
	}
	type event struct {
		ObjectRef struct {
			Name string `json:"name"`
		} `json:"objectRef"`
		Verb        string            `json:"verb"`
		Stage       string            `json:"stage"`
		Annotations map[string]string `json:"annotations"`
	}
	find := func(name, webhookPrefix, decision string) (uid, rules string, err error) {
		f, err := os.Open(auditLog)
		if err != nil {
			return "", "", err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
		for sc.Scan() {
			var e event
			if json.Unmarshal(sc.Bytes(), &e) != nil || e.ObjectRef.Name != name || e.Stage != "ResponseComplete" {
				continue
			}
			for k, v := range e.Annotations {
				if strings.HasPrefix(k, webhookPrefix) && strings.HasSuffix(k, "/decision") && v == decision {
					prefix := strings.TrimSuffix(k, "/decision")
					return e.Annotations[prefix+"/uid"], e.Annotations[prefix+"/rules"], nil
				}
			}
		}
		return "", "", fmt.Errorf("no %s audit event with decision %s for %s", webhookPrefix, decision, name)
	}
	for _, c := range []struct{ name, prefix, decision, webhook, rules string }{
		// An unknown size also cannot take the eastus encryption-at-host default: a warning.
		{"audit-denied", "validate.", "denied", "validate", "default-not-applied:warn,sku-unknown:deny"},
		{"audit-mutated", "mutate.", "patched", "mutate", "none"},
	} {
		var uid, rules string
		eventually(t, 10*time.Second, func() (err error) {
			uid, rules, err = find(c.name, c.prefix, c.decision)
			return err
		})
		if rules != c.rules {
			t.Errorf("%s: the apiserver audit event's rules annotation = %q, want %q", c.name, rules, c.rules)
		}
		joined := hook.auditLine(5*time.Second, func(l map[string]any) bool {
			return l["uid"] == uid && l["webhook"] == c.webhook && l["outcome"] == c.decision && l["name"] == c.name
		}) != nil
		if uid == "" || !joined {
			t.Errorf("%s: apiserver audit event (uid %q) has no matching webhook log line", c.name, uid)
		}
	}
}

// The last two tests restart and re-key the webhook; they run after the others.

// TestFailClosed: with the webhook down and failurePolicy Fail, what the webhook judges is refused —
// a CREATE, a spec change — while what it never judges still goes through, because the chart's
// matchConditions keep the apiserver from calling: an UPDATE that leaves the spec alone, and the
// finalizer removal that lets a deletion finish.
func TestFailClosed(t *testing.T) {
	labelled := template("outage-labelled", "eastus", "Standard_D2s_v3")
	held := template("outage-held", "eastus", "Standard_D2s_v3")
	held.SetFinalizers([]string{"e2e.capz-encryption-webhook.io/hold"})
	for _, o := range []*unstructured.Unstructured{labelled, held} {
		if err := k8s.Create(ctx(t), o); err != nil {
			t.Fatal(err)
		}
	}
	if err := k8s.Delete(ctx(t), held); err != nil {
		t.Fatal(err)
	}
	hook.stop()
	refused := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Errorf("%s with the webhook down and failurePolicy Fail must be refused; got %v", what, err)
		}
	}
	refused("a CREATE", k8s.Create(ctx(t), template("while-down", "eastus", "Standard_D2s_v3")))

	meta := get(t, labelled)
	meta.SetLabels(map[string]string{"team": "payments"})
	if err := k8s.Update(ctx(t), meta); err != nil {
		t.Errorf("a metadata-only UPDATE must not need the webhook: %v", err)
	}
	spec := get(t, labelled)
	setField(spec, "Standard_D4s_v3", tplPath("vmSize")...)
	refused("a spec change", k8s.Update(ctx(t), spec))

	deleting := get(t, held)
	if deleting.GetDeletionTimestamp() == nil {
		t.Fatal("the held object is not being deleted")
	}
	deleting.SetFinalizers(nil)
	if err := k8s.Update(ctx(t), deleting); err != nil {
		t.Errorf("removing the finalizer of an object being deleted must not need the webhook: %v", err)
	}
	gone := &unstructured.Unstructured{}
	gone.SetGroupVersionKind(held.GroupVersionKind())
	if err := k8s.Get(ctx(t), client.ObjectKeyFromObject(held), gone); !apierrors.IsNotFound(err) {
		t.Errorf("the deletion did not finish: %v", err)
	}

	// The binding check fails open (webhook.binding.failurePolicy Ignore): CAPI's MachineDeployments
	// never depend on the webhook.
	if err := k8s.Create(ctx(t), machineDeployment(mdV2, testNS, "while-down-md", "c", "while-down", 1)); err != nil {
		t.Errorf("with the webhook down, the binding check must let a MachineDeployment through; got %v", err)
	}
	if err := hook.start(); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx(t), template("after-restart", "eastus", "Standard_D2s_v3")); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestCertificateRotation(t *testing.T) {
	before, err := pki.ServedSerial(fmt.Sprintf("127.0.0.1:%d", hook.webhookPort))
	if err != nil {
		t.Fatal(err)
	}
	want, err := pki.IssueServing()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		got, err := pki.ServedSerial(fmt.Sprintf("127.0.0.1:%d", hook.webhookPort))
		if err != nil {
			return err
		}
		if got.Cmp(want) != 0 {
			return fmt.Errorf("still serving serial %v (was %v), want %v", got, before, want)
		}
		return nil
	})
	if err := k8s.Create(ctx(t), template("after-rotation", "eastus", "Standard_D2s_v3")); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
}
