package policy

import (
	"fmt"
	"strings"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/desid"
)

// Disk encryption types (Azure's encryption.type, and the securityType of confidential disks) that
// encrypt with a customer-managed key.
var customerKeyTypes = []string{
	"EncryptionAtRestWithCustomerKey",
	"EncryptionAtRestWithPlatformAndCustomerKeys",
	"ConfidentialVM_DiskEncryptedWithCustomerKey",
}

// IsCustomerKeyType reports whether a disk's encryption type (or confidential security type)
// encrypts with a customer-managed key.
func IsCustomerKeyType(t string) bool {
	for _, c := range customerKeyTypes {
		if strings.EqualFold(t, c) {
			return true
		}
	}
	return false
}

// validateActual compares what Azure built for the machine (Environment.Actual, read by the audit)
// with what the object and the policy ask for: each managed disk encrypted with a customer key, with
// the object's Disk Encryption Set (or the default's), and encryption at host where asked. What a
// disk should use comes from the object first, then from the organisation default that applies; with
// requireCustomerManagedKeys any customer key will do.
func (e *evaluation) validateActual(base fieldPath) {
	a := e.env.Actual
	if a == nil || e.env.Cluster.AKS {
		return
	}
	var def *Default
	if d, ok := e.policy.DefaultFor(e.decision.Region, e.nsLabels); ok {
		def = &d
	}
	fromDefault := func() string { return fmt.Sprintf("organisation default %q", def.Name) }

	osField := base.child("osDisk", "managedDisk", "diskEncryptionSet", "id")
	want, from := stringAt(e.obj, osField), "the object"
	if cvm := base.child("osDisk", "managedDisk", "securityProfile", "diskEncryptionSet", "id"); want == "" && stringAt(e.obj, cvm) != "" {
		osField, want = cvm, stringAt(e.obj, cvm)
	}
	if want == "" && def != nil && def.DiskEncryptionSetID != "" {
		want, from = def.DiskEncryptionSetID, fromDefault()
	}
	e.checkActualDisk(a, a.OSDisk, "OS disk", osField, want, from)

	disks := base.child("dataDisks")
	objDisks := lookupSlice(e.obj, disks)
	for _, d := range a.DataDisks {
		field, want, from := disks, "", ""
		for i, raw := range objDisks {
			if lun, ok := lunOf(raw); ok && lun == d.Lun {
				field = disks.at(i).child("managedDisk", "diskEncryptionSet", "id")
				want, from = stringAt(e.obj, field), "the object"
				break
			}
		}
		if want == "" && def != nil {
			if w := firstNonEmpty(def.DataDiskEncryptionSetID, def.DiskEncryptionSetID); w != "" {
				want, from = w, fromDefault()
			}
		}
		e.checkActualDisk(a, d, fmt.Sprintf("data disk (lun %d)", d.Lun), field, want, from)
	}

	eahField := base.child("securityProfile", "encryptionAtHost")
	v, _ := lookup(e.obj, eahField)
	asked, isBool := v.(bool)
	from = "the object"
	if !isBool && v == nil && def != nil && def.EncryptionAtHost {
		if verdict := e.verdictFor(stringAt(e.obj, base.child("vmSize"))); verdict.eah == eahSupported {
			asked, from = true, fromDefault()
		}
	}
	if asked && !a.EncryptionAtHost {
		e.report(RuleAzureEAHDisabled, eahField,
			"%s asks for encryption at host, but %s %s has securityProfile.encryptionAtHost off: its temporary disk and disk caches are not encrypted at the host; the setting only takes effect on new VMs: replace the machine (roll the MachineDeployment or scale set)",
			from, kindOfResource(a), a.Resource)
	}
}

// checkActualDisk judges one disk against the Disk Encryption Set want (from names where it came
// from); with no set wanted it still needs a customer key when the policy requires one.
func (e *evaluation) checkActualDisk(a *ActualVM, d ActualDisk, what string, field fieldPath, want, from string) {
	if want == "" && !e.policy.RequireCustomerManagedKeys {
		return
	}
	expect := "Disk Encryption Set " + want
	if want == "" {
		expect, from = "customer-managed keys", "the policy (requireCustomerManagedKeys)"
	}
	customer := IsCustomerKeyType(d.EncryptionType) || (d.EncryptionType == "" && d.DESID != "")
	if !customer {
		has := "encryption.type " + d.EncryptionType
		if d.EncryptionType == "" {
			has = "no Disk Encryption Set in the scale-set model"
		}
		e.report(RuleAzureDiskNotCustomerKey, field,
			"the %s %s of %s %s is encrypted with platform-managed keys only (%s), but %s asks for %s: the data is not under your key; replace the machine so that its disks are created with the set",
			what, d.Name, kindOfResource(a), a.Resource, has, from, expect)
		return
	}
	if want != "" && d.DESID != "" && !desid.Same(want, d.DESID) {
		e.report(RuleAzureDiskDESMismatch, field,
			"the %s %s of %s %s is encrypted with Disk Encryption Set %s, but %s asks for %s; replace the machine (or change the object) so that they agree",
			what, d.Name, kindOfResource(a), a.Resource, d.DESID, from, want)
	}
}

func kindOfResource(a *ActualVM) string {
	if a.ScaleSet {
		return "scale set"
	}
	return "VM"
}

// lunOf reads a data disk's lun from the decoded object (decodeObject gives numbers as float64).
func lunOf(raw any) (int32, bool) {
	m, _ := raw.(map[string]any)
	v, ok := m["lun"].(float64)
	return int32(v), ok && v >= 0 && v < 1<<15
}
