package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

var ampGVK = schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: "AzureMachinePool"}

func ampPath(p ...string) []string { return append([]string{"spec", "template"}, p...) }

// machinePool is an AzureMachinePool in eastus whose OS disk and data disk "etcd" carry a DES: it
// complies with the e2e policy (customer-managed keys required).
func machinePool(name string) *unstructured.Unstructured {
	return object(ampGVK, name, map[string]any{"location": "eastus", "template": map[string]any{
		"vmSize": "Standard_D2s_v3",
		"osDisk": map[string]any{"osType": "Linux", "diskSizeGB": int64(128), "managedDisk": map[string]any{
			"storageAccountType": "Premium_LRS", "diskEncryptionSet": map[string]any{"id": desUser}}},
		"dataDisks": []any{map[string]any{"nameSuffix": "etcd", "diskSizeGB": int64(64), "lun": int64(0),
			"managedDisk": map[string]any{"storageAccountType": "Premium_LRS", "diskEncryptionSet": map[string]any{"id": desUser}}}},
	}})
}

// TestUpdateCannotAddViolations: ratcheting waives only what the stored object already broke. An
// UPDATE that adds a data disk without a DES, or strips a DES, is denied like a CREATE would be.
func TestUpdateCannotAddViolations(t *testing.T) {
	mp := machinePool("ratchet-pool")
	if err := k8s.Create(ctx(t), mp); err != nil {
		t.Fatal(err)
	}

	added := get(t, mp)
	disks, _, _ := unstructured.NestedSlice(added.Object, ampPath("dataDisks")...)
	disks = append(disks, map[string]any{"nameSuffix": "logs", "diskSizeGB": int64(32), "lun": int64(1),
		"managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}})
	setField(added, disks, ampPath("dataDisks")...)
	expectDenied(t, k8s.Update(ctx(t), added), "des-required", "spec.template.dataDisks[1].managedDisk.diskEncryptionSet.id")

	stripped := get(t, mp)
	unstructured.RemoveNestedField(stripped.Object, ampPath("osDisk", "managedDisk", "diskEncryptionSet")...)
	expectDenied(t, k8s.Update(ctx(t), stripped), "des-required", "spec.template.osDisk.managedDisk.diskEncryptionSet.id")

	// The confidential-VM slot: a pool whose OS disk key sits in securityProfile.diskEncryptionSet.
	cvm := machinePool("ratchet-cvm-pool")
	unstructured.RemoveNestedField(cvm.Object, ampPath("osDisk", "managedDisk", "diskEncryptionSet")...)
	setField(cvm, map[string]any{"securityEncryptionType": "VMGuestStateOnly", "diskEncryptionSet": map[string]any{"id": desUser}},
		ampPath("osDisk", "managedDisk", "securityProfile")...)
	if err := k8s.Create(ctx(t), cvm); err != nil {
		t.Fatal(err)
	}
	cvm = get(t, cvm)
	unstructured.RemoveNestedField(cvm.Object, ampPath("osDisk", "managedDisk", "securityProfile", "diskEncryptionSet")...)
	expectDenied(t, k8s.Update(ctx(t), cvm), "des-required")

	// An edit that leaves the encryption alone still goes through.
	resized := get(t, mp)
	setField(resized, "Standard_D4s_v3", ampPath("vmSize")...)
	if err := k8s.Update(ctx(t), resized); err != nil {
		t.Fatalf("an update that adds no violation was refused: %v", err)
	}
	d := hook.auditLine(5*time.Second, func(l map[string]any) bool {
		return l["name"] == "ratchet-pool" && l["webhook"] == "validate" && l["operation"] == "UPDATE" && l["outcome"] == "denied"
	})
	if d == nil || !strings.Contains(fmt.Sprint(d["rules"]), "des-required:deny") {
		t.Errorf("the denied UPDATE's audit line = %v, want rules with des-required:deny", d)
	}
}

// TestValidatingWebhookJudgesWhatItReceives: with only the chart's validating configuration
// registered (webhook.mutating.enabled=false), nothing injects the default DES, and the validating
// webhook must deny instead of judging the object as if the mutation had happened.
func TestValidatingWebhookJudgesWhatItReceives(t *testing.T) {
	objs, err := chart.Render(chart.Options{Helm: os.Getenv("HELM"), Namespace: releaseNamespace, Args: []string{"--set", "webhook.mutating.enabled=false"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(chart.Find(objs, "MutatingWebhookConfiguration")); n != 0 {
		t.Fatalf("webhook.mutating.enabled=false still renders %d mutating configurations", n)
	}
	m, _, err := suiteWebhooks(os.Getenv("HELM"))
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx(t), &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: m.ObjectMeta}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := k8s.Create(ctx(t), m); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Errorf("restoring the mutating configuration: %v", err)
		}
		// Wait until the apiserver mutates again, so that later tests see the chart's full setup.
		eventually(t, 20*time.Second, func() error {
			u := template(fmt.Sprintf("mutating-back-%d", time.Now().UnixNano()), "eastus", "Standard_D2s_v3")
			return k8s.Create(ctx(t), u)
		})
	})

	// The apiserver drops the mutating webhook a moment after the configuration is deleted.
	n := 0
	eventually(t, 20*time.Second, func() error {
		n++
		u := template(fmt.Sprintf("validate-only-%d", n), "eastus", "Standard_D2s_v3")
		err := k8s.Create(ctx(t), u)
		if err == nil {
			return fmt.Errorf("admitted: %s still carries the injected DES? %q", u.GetName(),
				nestedString(t, get(t, u), tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...))
		}
		if !strings.Contains(err.Error(), "[des-required]") {
			return fmt.Errorf("refused, but not by des-required: %w", err)
		}
		for _, w := range []string{"spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id", "mutating webhook did not inject it"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("the denial lacks %q: %v", w, err)
			}
		}
		return nil
	})
	// An object that carries its own DES needs no mutation and is admitted.
	own := template("validate-only-own-des", "eastus", "Standard_D2s_v3")
	setField(own, desUser, tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
	if err := k8s.Create(ctx(t), own); err != nil {
		t.Fatalf("a compliant object was refused with only the validating webhook: %v", err)
	}
}
