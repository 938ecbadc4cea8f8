package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/desid"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// Disk Encryption Set types (Azure's encryptionType values) that the rules tell apart.
const (
	desTypeConfidential = "ConfidentialVmEncryptedWithCustomerKey"
)

// desSlot is one place a Disk Encryption Set ID can be set.
type desSlot struct {
	field        fieldPath // ...diskEncryptionSet.id
	confidential bool      // the OS disk's securityProfile slot (confidential VMs)
	disk         string    // "OS disk" or "data disk N", for messages
}

func (e *evaluation) validate() {
	e.reportRegionConflicts()
	e.spec.validate(e)
}

// validateAKS denies encryption settings aimed at an AKS cluster, wherever CAPZ lets them be written
// (spec is spec, or spec.template.spec of a template): AzureManagedMachinePool's
// enableEncryptionAtHost and the ASO merge patches CAPZ applies to the agent pool and the managed
// cluster, and the ASO objects the AzureASOManaged kinds embed in resources[].
func (e *evaluation) validateAKS(spec fieldPath) {
	const eahWhy = "encryption at host is not supported for AKS clusters on this platform"
	const desWhy = "server-side encryption with customer-managed keys is not supported for AKS clusters on this platform"
	if f := spec.child("enableEncryptionAtHost"); lookupBool(e.obj, f) {
		e.report(RuleAKSTarget, f, "%s; remove %s (or set it to false)", eahWhy, f)
	}
	pool := spec.child("asoManagedClustersAgentPoolPatches")
	for i, raw := range lookupSlice(e.obj, pool) {
		if s, _ := raw.(string); patchSets(s, isEAH) {
			e.report(RuleAKSTarget, pool.at(i), "this patch sets enableEncryptionAtHost on the AKS agent pool (ASO ManagedClustersAgentPool); %s: remove the patch", eahWhy)
		}
	}
	cluster := spec.child("asoManagedClusterPatches")
	for i, raw := range lookupSlice(e.obj, cluster) {
		s, _ := raw.(string)
		if patchSets(s, isDES) {
			e.report(RuleAKSTarget, cluster.at(i),
				"this patch sets a Disk Encryption Set on the AKS ManagedCluster (diskEncryptionSetReference); %s: remove the patch", desWhy)
		} else if patchSets(s, isEAH) {
			e.report(RuleAKSTarget, cluster.at(i), "this patch sets enableEncryptionAtHost on the AKS cluster's agent pools (agentPoolProfiles); %s: remove the patch", eahWhy)
		}
	}
	resources := spec.child("resources")
	for i, raw := range lookupSlice(e.obj, resources) {
		r, _ := raw.(map[string]any)
		kind, _ := r["kind"].(string)
		item := resources.at(i)
		switch kind {
		case "ManagedClustersAgentPool":
			if f := item.child("spec", "enableEncryptionAtHost"); lookupBool(e.obj, f) {
				e.report(RuleAKSTarget, f, "%s (ASO ManagedClustersAgentPool) sets enableEncryptionAtHost; %s: remove it", item, eahWhy)
			}
		case "ManagedCluster":
			if f := item.child("spec", "diskEncryptionSetReference"); lookupPresent(e.obj, f) {
				e.report(RuleAKSTarget, f, "%s (ASO ManagedCluster) sets a Disk Encryption Set; %s: remove diskEncryptionSetReference", item, desWhy)
			}
			profiles := item.child("spec", "agentPoolProfiles")
			for j := range lookupSlice(e.obj, profiles) {
				if f := profiles.at(j).child("enableEncryptionAtHost"); lookupBool(e.obj, f) {
					e.report(RuleAKSTarget, f, "%s (ASO ManagedCluster) sets enableEncryptionAtHost on an agent pool profile; %s: remove it", item, eahWhy)
				}
			}
		}
	}
}

func isDES(key string, v any) bool {
	return strings.Contains(strings.ToLower(key), "diskencryptionset") && v != nil
}

func isEAH(key string, v any) bool {
	b, _ := v.(bool)
	return strings.EqualFold(key, "enableEncryptionAtHost") && b
}

// patchSets reports whether a JSON merge patch (CAPZ's asoManaged*Patches) sets a key that hit
// accepts, at any depth. A patch that is not valid JSON is searched as text for the key names, so
// that a typo cannot smuggle a setting through.
func patchSets(patch string, hit func(key string, v any) bool) bool {
	var v any
	if err := json.Unmarshal([]byte(patch), &v); err != nil {
		text := strings.ToLower(patch)
		return (hit("diskEncryptionSet", "") && strings.Contains(text, "diskencryptionset")) ||
			(hit("enableEncryptionAtHost", true) && strings.Contains(text, "enableencryptionathost"))
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				if hit(k, c) || walk(c) {
					return true
				}
			}
		case []any:
			for _, c := range t {
				if walk(c) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

func (e *evaluation) validateMachine(base fieldPath) {
	if lookupMap(e.obj, base) == nil {
		e.report(RuleSKUUnknown, base, "%s is missing: the object has no machine settings to check", base)
		return
	}
	sizeField := base.child("vmSize")
	size, isString, present := lookupString(e.obj, sizeField)
	if present && !isString {
		e.report(RuleSKUUnknown, sizeField, "%s must be a string naming an Azure VM size, e.g. Standard_D4s_v3", sizeField)
	}
	eahField := base.child("securityProfile", "encryptionAtHost")
	eah := lookupBool(e.obj, eahField)
	// Machines of AKS clusters get aks-target for encryption at host instead of a size verdict.
	e.checkSize(size, sizeField, eahField, eah, (eah || e.eahDefaulted) && !e.env.Cluster.AKS)

	slots := e.desSlots(base)
	for _, s := range slots {
		e.validateDES(s)
	}

	e.validateExtensions(base)
	if e.env.Cluster.AKS {
		e.validateAKSMachine(slots, eah, eahField)
	} else if e.policy.RequireCustomerManagedKeys {
		e.requireDES(base)
	}
	if e.req.Operation == OperationUpdate && e.old != nil {
		e.warnRepave(base)
	}
	e.validateActual(base)
}

// checkSize asks the VM-size catalog only what the decision needs. The size's capabilities matter
// to this policy only for encryption at host: when the object asks for it (eah: as received, or
// after a default injected it) or a default tried to inject it, the verdict decides sku-unknown,
// and eah-sku-unsupported if the object asks for it; otherwise no size rule runs, and a size that
// does not exist is CAPZ's to report. A region no catalog layer covers
// is reported either way (catalog-region-missing): a gap in our data, which warns by default and
// denies only where a site wants nothing unverified.
func (e *evaluation) checkSize(size string, sizeField, eahField fieldPath, eah, needed bool) {
	region := e.decision.Region
	uncovered := region != "" && (e.env.Catalog == nil || !e.env.Catalog.HasRegion(region))
	if !needed {
		if uncovered {
			gap := e.verdictGap(region)
			e.report(RuleCatalogRegionMissing, sizeField,
				"%s, so VM size %q was not checked; nothing here needs its capabilities (no encryption at host asked for or injected). %s",
				gap, size, supplyCatalog)
		}
		return
	}
	v := e.verdictFor(size)
	if v.gap != "" {
		basis := v.basis
		if basis == "" {
			basis = "see " + string(RuleEAHSKUUnsupported)
		}
		e.report(RuleCatalogRegionMissing, sizeField, "%s, so encryption at host of VM size %q was judged from the catalog's other regions: %s. %s",
			v.gap, size, basis, supplyCatalog)
	}
	if v.unknown {
		e.reportAtMost(RuleSKUUnknown, v.unknownCeiling, sizeField, "%s", v.unknownMsg)
	}
	if !eah {
		return // the default that could not inject it says why (default-not-applied)
	}
	switch v.eah {
	case eahUnsupported:
		e.reportAtMost(RuleEAHSKUUnsupported, v.eahCeiling, eahField, "%s; choose a size that supports it or remove %s", v.eahMsg, eahField)
	case eahMixed:
		e.reportAtMost(RuleEAHSKUUnsupported, ActionWarn, eahField, "%s", v.eahMsg)
	}
}

// supplyCatalog tells the user (or the platform team) how to close a gap in the catalog.
const supplyCatalog = "To check sizes there, give the webhook a catalog that covers the region: live Azure data (serve --azure-subscription-id, chart value azure.subscriptionID) or a catalog file of `az vm list-skus --all -o json` (--sku-catalog, chart value skuCatalog.configMapName)"

// verdictGap describes a region no catalog layer covers, as the size verdict would.
func (e *evaluation) verdictGap(region string) string {
	cat := e.env.Catalog
	if cat == nil {
		return fmt.Sprintf("region %s is not covered by the VM-size catalog (no VM-size catalog is configured)", region)
	}
	return fmt.Sprintf("region %s is not covered by the VM-size catalog (%s)", region, coverage(cat))
}

// desSlots lists every DES field of the machine settings that is present, in document order. A
// diskEncryptionSet object without an id counts, as the empty placeholder it is.
func (e *evaluation) desSlots(base fieldPath) []desSlot {
	var out []desSlot
	add := func(ds fieldPath, confidential bool, disk string) {
		if lookupPresent(e.obj, ds) {
			out = append(out, desSlot{field: ds.child("id"), confidential: confidential, disk: disk})
		}
	}
	osMD := base.child("osDisk", "managedDisk")
	add(osMD.child("diskEncryptionSet"), false, "OS disk")
	add(osMD.child("securityProfile", "diskEncryptionSet"), true, "OS disk (confidential)")
	for i := range lookupSlice(e.obj, base.child("dataDisks")) {
		add(base.child("dataDisks").at(i).child("managedDisk", "diskEncryptionSet"), false, fmt.Sprintf("data disk %d", i))
	}
	return out
}

func (e *evaluation) validateDES(s desSlot) {
	raw, _ := lookup(e.obj, s.field)
	str, isString := raw.(string)
	if raw != nil && !isString {
		e.report(RuleDESIDMalformed, s.field, "%s must be a string holding a Disk Encryption Set resource ID", s.field)
		return
	}
	id, err := desid.Parse(str)
	if err != nil {
		e.report(RuleDESIDMalformed, s.field, "%s (%s) is not a valid Disk Encryption Set ID: %v", s.field, s.disk, err)
		return
	}
	if len(e.policy.AllowedDESSubscriptions) > 0 && !slices.Contains(e.policy.AllowedDESSubscriptions, strings.ToLower(id.SubscriptionID)) {
		e.report(RuleDESSubscriptionNotAllowed, s.field,
			"%s uses a Disk Encryption Set in subscription %s, which the policy does not allow (allowed: %s); use a Disk Encryption Set from an allowed subscription",
			s.field, id.SubscriptionID, strings.Join(e.policy.AllowedDESSubscriptions, ", "))
	}
	if e.env.DES == nil {
		return
	}
	info, state := e.env.DES.LookupDES(id.String())
	switch state {
	case DESNotFound:
		e.report(RuleDESNotFound, s.field, "Disk Encryption Set %s does not exist (or the webhook's identity cannot read it); create it, or fix %s", id, s.field)
	case DESFound:
		e.checkFoundDES(s, id, info)
	}
}

func (e *evaluation) checkFoundDES(s desSlot, id desid.ID, info DESInfo) {
	if loc := skus.NormalizeRegion(info.Location); loc != "" && e.decision.Region != "" && loc != e.decision.Region {
		e.report(RuleDESLocationMismatch, s.field,
			"Disk Encryption Set %s is in %s but the machine is in %s (region from %s); a disk can only use a Disk Encryption Set of its own region: use one in %s",
			id.Name, loc, e.decision.Region, e.decision.RegionSource, e.decision.Region)
	}
	if !info.RotationToLatestKeyVersion {
		e.report(RuleDESKeyRotation, s.field,
			"Disk Encryption Set %s has automatic key rotation off (rotationToLatestKeyVersionEnabled: false): when its Key Vault key expires, cluster operations fail; enable auto key rotation on the set",
			id.Name)
	}
	if info.AutoKeyRotationError != "" {
		e.report(RuleDESKeyRotation, s.field, "the last automatic key rotation of Disk Encryption Set %s failed: %s; fix the Key Vault access of the set's identity", id.Name, info.AutoKeyRotationError)
	}
	e.checkKeyExpiry(s, id, info)
	confidentialSet := strings.EqualFold(info.EncryptionType, desTypeConfidential)
	switch {
	case s.confidential && !confidentialSet && info.EncryptionType != "":
		e.report(RuleDESEncryptionType, s.field,
			"%s needs a Disk Encryption Set of type %s, but %s is %s", s.field, desTypeConfidential, id.Name, info.EncryptionType)
	case !s.confidential && confidentialSet:
		e.report(RuleDESEncryptionType, s.field,
			"Disk Encryption Set %s is of type %s, which only encrypts confidential-VM OS disks (osDisk.managedDisk.securityProfile.diskEncryptionSet); use an EncryptionAtRestWithCustomerKey set here",
			id.Name, info.EncryptionType)
	}
}

// validateExtensions denies Azure Disk Encryption. CAPZ uses an extension's name as its ARM type, so
// name + publisher identify it.
func (e *evaluation) validateExtensions(base fieldPath) {
	exts := base.child("vmExtensions")
	for i, raw := range lookupSlice(e.obj, exts) {
		m, _ := raw.(map[string]any)
		publisher, _ := m["publisher"].(string)
		name, _ := m["name"].(string)
		if strings.EqualFold(publisher, "Microsoft.Azure.Security") && strings.HasPrefix(strings.ToLower(name), "azurediskencryption") {
			e.report(RuleADEExtension, exts.at(i),
				"%s is Azure Disk Encryption (%s/%s), which is not supported for any Azure cluster on this platform: remove it and use a Disk Encryption Set (osDisk.managedDisk.diskEncryptionSet) and/or securityProfile.encryptionAtHost instead",
				exts.at(i), publisher, name)
		}
	}
}

func (e *evaluation) validateAKSMachine(slots []desSlot, eah bool, eahField fieldPath) {
	cluster := e.env.Cluster.Name
	for _, s := range slots {
		if hasValue(e.obj, s.field) {
			e.report(RuleAKSTarget, s.field,
				"cluster %q is an AKS cluster (%s): server-side encryption with customer-managed keys is not supported for AKS on this platform; remove %s",
				cluster, aksWhy(e.env.Cluster), s.field)
		}
	}
	if eah {
		e.report(RuleAKSTarget, eahField, "cluster %q is an AKS cluster (%s): encryption at host is not supported for AKS on this platform; remove %s", cluster, aksWhy(e.env.Cluster), eahField)
	}
}

func aksWhy(c ClusterInfo) string {
	var parts []string
	if IsAKSKind(c.InfrastructureKind) {
		parts = append(parts, "infrastructure "+c.InfrastructureKind)
	}
	if IsAKSKind(c.ControlPlaneKind) {
		parts = append(parts, "control plane "+c.ControlPlaneKind)
	}
	if len(parts) == 0 {
		return "managed"
	}
	return strings.Join(parts, ", ")
}

// requireDES enforces customer-managed keys on every managed disk.
func (e *evaluation) requireDES(base fieldPath) {
	has := func(f fieldPath) bool { return hasValue(e.obj, f) }
	osDisk := base.child("osDisk")
	osDES := osDisk.child("managedDisk", "diskEncryptionSet", "id")
	cvmDES := osDisk.child("managedDisk", "securityProfile", "diskEncryptionSet", "id")
	switch {
	case has(osDES) || has(cvmDES):
	case lookupPresent(e.obj, osDisk.child("diffDiskSettings")):
		e.report(RuleDESRequired, osDisk.child("diffDiskSettings"),
			"the policy requires customer-managed keys, but the OS disk is ephemeral (diffDiskSettings) and cannot use a Disk Encryption Set: remove diffDiskSettings and set %s", osDES)
	default:
		e.requireAt(osDES)
	}
	for i := range lookupSlice(e.obj, base.child("dataDisks")) {
		if f := base.child("dataDisks").at(i).child("managedDisk", "diskEncryptionSet", "id"); !has(f) {
			e.requireAt(f)
		}
	}
}

// requireAt reports a disk without a Disk Encryption Set. A template of a ClusterClass makes no
// machine itself: CAPI's topology controller copies it for each Cluster of the class, labelled with
// the cluster, and the copy is judged, and gets its region's default, when it is created. So there it
// is recorded, not enforced: denying it would only block installing the class.
func (e *evaluation) requireAt(f fieldPath) {
	if e.env.Cluster.Class != "" && e.env.Cluster.Name == "" {
		e.reportAtMost(RuleDESRequired, ActionAudit, f,
			"%s has no Disk Encryption Set; this is a template of ClusterClass %s, whose copies for each Cluster are judged, and get their region's default, when CAPI's topology controller creates them", f, e.env.Cluster.Class)
		return
	}
	e.report(RuleDESRequired, f, "the policy requires customer-managed keys: set %s to a Disk Encryption Set ID (%s)", f, e.whyNotDefaulted(f))
}

// whyNotDefaulted explains why no organisation default filled a missing encryption field, so that a
// user can tell their own omission from a mutating webhook that did not run.
func (e *evaluation) whyNotDefaulted(f fieldPath) string {
	switch {
	case e.stored && e.wouldFill(f):
		return fmt.Sprintf("default %q fills it on CREATE, but the object was stored without it (see %s)", e.decision.DefaultName, RuleCreatedBeforeDefault)
	case e.wouldFill(f):
		return fmt.Sprintf("default %q fills it, but the object reached validation without it: the mutating webhook did not inject it (disabled, failed open, or a later mutating webhook removed it)", e.decision.DefaultName)
	case e.req.Operation == OperationUpdate && !e.stored:
		return "organisation defaults are injected on CREATE only"
	case e.def == nil:
		return "no organisation default applies to this object"
	case e.def.DiskEncryptionSetID == "" && (e.def.DataDiskEncryptionSetID == "" || !strings.Contains(f.String(), "dataDisks")):
		return fmt.Sprintf("default %q sets no Disk Encryption Set for this disk", e.def.Name)
	case e.def.DataDiskStorageAccountType == "" && len(f) > 3 && !lookupPresent(e.obj, f[:len(f)-2]):
		return fmt.Sprintf("the disk has no managedDisk and default %q names no dataDiskStorageAccountType to create one with", e.def.Name)
	default:
		return fmt.Sprintf("default %q could not fill it; see %s", e.def.Name, RuleDefaultNotApplied)
	}
}

// wouldFill reports whether replaying the defaults filled f, or a parent of f that was injected
// whole (a data disk's managedDisk).
func (e *evaluation) wouldFill(f fieldPath) bool {
	rel := relative(f, e.spec.machine)
	for p := range e.wouldInject {
		if rel == p || strings.HasPrefix(rel, p+".") {
			return true
		}
	}
	return false
}

// repaveFields are the settings a change of which replaces every machine: machine-wide, encryption
// at host and the OS disk's Disk Encryption Set and confidential-VM profile; and the Disk Encryption
// Set of each of dataDisks data disks. UPDATEs (warnRepave) and bindings (encryptionSettings) both
// read these.
func repaveFields(base fieldPath, dataDisks int) (machine, disks []fieldPath) {
	machine = []fieldPath{
		base.child("securityProfile", "encryptionAtHost"),
		base.child("osDisk", "managedDisk", "diskEncryptionSet"),
		base.child("osDisk", "managedDisk", "securityProfile"),
	}
	for i := range dataDisks {
		disks = append(disks, base.child("dataDisks").at(i).child("managedDisk", "diskEncryptionSet"))
	}
	return machine, disks
}

// warnRepave warns when an UPDATE changes encryption settings: every machine gets replaced.
func (e *evaluation) warnRepave(base fieldPath) {
	n := max(len(lookupSlice(e.obj, base.child("dataDisks"))), len(lookupSlice(e.old, base.child("dataDisks"))))
	machine, disks := repaveFields(base, n)
	for _, f := range append(machine, disks...) {
		nv, _ := lookup(e.obj, f)
		ov, _ := lookup(e.old, f)
		if !reflect.DeepEqual(nv, ov) {
			e.report(RuleRepave, f, "changing %s on an existing object replaces every machine that uses it (a full repave); plan the rollout", f)
		}
	}
}
