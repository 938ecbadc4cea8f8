package policy

import (
	"fmt"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// mutate injects the organisation default that matches the object's region and namespace. It only
// fills what is missing (or the empty placeholder ""), never overwrites what the user set, and only
// adds values at the encryption paths plus one annotation, so no field of any CRD version is lost.
func (e *evaluation) mutate() {
	if e.env.Cluster.AKS {
		// Nothing is injected into machines of an AKS cluster: the platform supports neither SSE with
		// customer-managed keys nor EAH there. Validation reports what the user set.
		return
	}
	def, ok := e.policy.DefaultFor(e.decision.Region, e.nsLabels)
	if !ok {
		switch {
		case len(e.policy.Defaults) > 0 && e.decision.Region == "" && e.env.Cluster.Class != "" && e.env.Cluster.Name == "":
			// A ClusterClass's template has no region of its own, by design: recorded, not warned.
			e.reportAtMost(RuleDefaultNotApplied, ActionAudit, e.spec.machine,
				"no default applies to a template of ClusterClass %s, which has no region of its own: CAPI's topology controller copies it for each Cluster of the class, and each copy gets its cluster's region's default", e.env.Cluster.Class)
		case len(e.policy.Defaults) > 0:
			// Silence would read as "nothing to inject"; say that the organisation's defaults exist
			// and why none of them reached this object.
			e.report(RuleDefaultNotApplied, e.spec.machine, "the policy has defaults, but none applies to this object: %s", e.whyNoDefault())
		}
		return
	}
	e.def = &def
	e.decision.DefaultName = def.Name
	base := e.spec.machine
	if _, isMap := lookup(e.obj, base); !isMap || lookupMap(e.obj, base) == nil {
		e.report(RuleDefaultNotApplied, base, "%s is missing, so default %q could not be applied", base, def.Name)
		return
	}
	if def.DiskEncryptionSetID != "" {
		e.defaultOSDiskDES(base, def)
	}
	if des := firstNonEmpty(def.DataDiskEncryptionSetID, def.DiskEncryptionSetID); des != "" {
		for i, disk := range lookupSlice(e.obj, base.child("dataDisks")) {
			e.defaultDataDiskDES(base.child("dataDisks").at(i), disk, des, def)
		}
	}
	if def.EncryptionAtHost {
		e.defaultEncryptionAtHost(base, def)
	}
	e.recordInjected()
}

func (e *evaluation) defaultOSDiskDES(base fieldPath, def Default) {
	osDisk := base.child("osDisk")
	if lookupMap(e.obj, osDisk) == nil {
		e.report(RuleDefaultNotApplied, osDisk, "%s is missing, so the default Disk Encryption Set of %q was not injected; set osDisk (osType, managedDisk) on the object", osDisk, def.Name)
		return
	}
	target := osDisk.child("managedDisk", "diskEncryptionSet", "id")
	if hasValue(e.obj, target) {
		return
	}
	if lookupPresent(e.obj, osDisk.child("diffDiskSettings")) {
		e.report(RuleDefaultNotApplied, osDisk.child("diffDiskSettings"),
			"the OS disk is ephemeral (diffDiskSettings), which cannot use a Disk Encryption Set (CAPZ rejects the combination), so default %q left the OS disk on platform-managed keys; remove diffDiskSettings to get the customer-managed key", def.Name)
		return
	}
	if stringAt(e.obj, osDisk.child("managedDisk", "securityProfile", "securityEncryptionType")) != "" {
		e.report(RuleDefaultNotApplied, osDisk.child("managedDisk", "securityProfile"),
			"the OS disk is a confidential-VM disk (securityEncryptionType is set): its Disk Encryption Set belongs in managedDisk.securityProfile.diskEncryptionSet and must be a ConfidentialVmEncryptedWithCustomerKey set, so default %q was not injected; set it explicitly", def.Name)
		return
	}
	e.fill(target, def.DiskEncryptionSetID)
}

func (e *evaluation) defaultDataDiskDES(disk fieldPath, raw any, des string, def Default) {
	m, ok := raw.(map[string]any)
	if !ok {
		return // validation and the CRD schema report a data disk that is not an object
	}
	if md, ok := m["managedDisk"].(map[string]any); !ok || md == nil {
		e.defaultManagedDisk(disk, des, def)
		return
	}
	target := disk.child("managedDisk", "diskEncryptionSet", "id")
	if !hasValue(e.obj, target) {
		e.fill(target, des)
	}
}

// defaultManagedDisk gives a data disk without managedDisk one that carries the Disk Encryption Set
// (CAPZ's flavors leave the etcd disk so, which keeps etcd on platform-managed keys). CAPZ sends a
// data disk's managedDisk to Azure as it is, so one without storageAccountType would break VM
// creation: it is only injected when the default names the type, and a Premium type only where the
// size can attach Premium SSD disks.
func (e *evaluation) defaultManagedDisk(disk fieldPath, des string, def Default) {
	target := disk.child("managedDisk")
	storage := def.DataDiskStorageAccountType
	if storage == "" {
		e.report(RuleDefaultNotApplied, target,
			"%s has no managedDisk, so default %q could not inject its Disk Encryption Set (a managedDisk needs a storageAccountType, which the default does not name): add managedDisk with a storageAccountType (e.g. Premium_LRS), or set dataDiskStorageAccountType in the default", disk, def.Name)
		return
	}
	if NeedsPremiumIO(storage) {
		if ok, why := premiumIO(e.env.Catalog, e.decision.Region, stringAt(e.obj, e.spec.machine.child("vmSize"))); !ok {
			e.report(RuleDefaultNotApplied, target,
				"%s has no managedDisk, and default %q would give it storageAccountType %s, but %s: its Disk Encryption Set was not injected; add managedDisk with a storage type the size supports (e.g. StandardSSD_LRS), or choose a size with PremiumIO", disk, def.Name, storage, why)
			return
		}
	}
	e.fill(target, map[string]any{"storageAccountType": storage, "diskEncryptionSet": map[string]any{"id": des}})
}

func (e *evaluation) defaultEncryptionAtHost(base fieldPath, def Default) {
	field := base.child("securityProfile", "encryptionAtHost")
	if v, ok := lookup(e.obj, field); ok && v != nil {
		if b, isBool := v.(bool); isBool && !b {
			e.report(RuleDefaultNotApplied, field,
				"%s is explicitly false, so default %q (encryptionAtHost: true) was not applied; remove the field to get encryption at host", field, def.Name)
		}
		return
	}
	if stringAt(e.obj, base.child("osDisk", "managedDisk", "securityProfile", "securityEncryptionType")) == "DiskWithVMGuestState" {
		e.report(RuleDefaultNotApplied, field,
			"encryption at host cannot be combined with securityEncryptionType DiskWithVMGuestState (CAPZ rejects it), so default %q did not enable it", def.Name)
		return
	}
	size := stringAt(e.obj, base.child("vmSize"))
	// From here on the decision needs the size's capabilities: validation judges the size as if
	// the object had asked for encryption at host itself (checkSize).
	e.eahDefaulted = true
	// Inject only what the catalog vouches for: the size supports encryption at host in the region,
	// or, where the region has no data for it, in every catalog region that lists it.
	if v := e.verdictFor(size); v.eah != eahSupported {
		e.reportAtMost(RuleDefaultNotApplied, ActionDeny, field,
			"default %q asks for encryption at host, but it was not enabled: %s", def.Name, v.eahMsg)
		return
	}
	e.fill(field, true)
}

// whyNoDefault explains, default by default, why none matched the object's region and namespace.
func (e *evaluation) whyNoDefault() string {
	var reasons []string
	for _, d := range e.policy.Defaults {
		switch {
		case len(d.Regions) > 0 && e.decision.Region == "":
			reasons = append(reasons, fmt.Sprintf("%q is for regions %s", d.Name, strings.Join(d.Regions, ", ")))
		case len(d.Regions) > 0 && !slices.Contains(d.Regions, e.decision.Region):
			reasons = append(reasons, fmt.Sprintf("%q is for regions %s, not %s", d.Name, strings.Join(d.Regions, ", "), e.decision.Region))
		default:
			reasons = append(reasons, fmt.Sprintf("%q is for namespaces matching %s, which namespace %q does not", d.Name, d.Selector, e.decision.Namespace))
		}
	}
	out := strings.Join(reasons, "; ")
	if e.decision.Region == "" {
		cluster := fmt.Sprintf("cluster %q has no known region", e.env.Cluster.Name)
		if e.env.Cluster.Name == "" {
			cluster = fmt.Sprintf("nothing binds it to a cluster yet: no label %s, and no MachineDeployment, KubeadmControlPlane, MachinePool or Machine references it", LabelClusterName)
		}
		out = fmt.Sprintf("the object's region is unknown (%s; no annotation %s, no namespace annotation, no defaultLocation in the policy), and %s",
			cluster, AnnotationLocation, out)
	}
	return out
}

// fill makes the value at target exist, creating the missing parents as one nested value so that
// the patch is a single add. A JSON null counts as missing; "" is replaced (it is the placeholder
// left by presets).
func (e *evaluation) fill(target fieldPath, value any) {
	e.fillRecorded(target, value, true)
}

// fillRecorded is fill; record says whether the path belongs in Decision.Injected (the annotation
// that records injections is not itself an injected setting).
func (e *evaluation) fillRecorded(target fieldPath, value any, record bool) {
	var recordAs fieldPath
	if record {
		recordAs = target
	}
	var cur any = e.obj
	for i, s := range target {
		here := target[:i+1]
		if s.index >= 0 {
			// Array elements are never created: the defaults only fill disks that exist.
			arr, ok := cur.([]any)
			if !ok || s.index >= len(arr) {
				e.report(RuleDefaultNotApplied, here, "%s does not exist, so %s could not be injected", here, target)
				return
			}
			cur = arr[s.index]
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			e.report(RuleDefaultNotApplied, target[:i], "%s is not an object, so %s could not be injected", target[:i], target)
			return
		}
		v, exists := m[s.key]
		if i == len(target)-1 {
			op := "add"
			if exists && v != nil {
				op = "replace"
			}
			m[s.key] = value
			e.addOp(op, here, value, recordAs)
			return
		}
		if !exists || v == nil {
			m[s.key] = nest(target[i+1:], value)
			// The patch gets its own copy: the map just placed in the object may gain keys later.
			e.addOp("add", here, nest(target[i+1:], value), recordAs)
			return
		}
		cur = v
	}
}

func nest(rest fieldPath, value any) any {
	if len(rest) == 0 {
		return value
	}
	return map[string]any{rest[0].key: nest(rest[1:], value)}
}

func (e *evaluation) addOp(op string, p fieldPath, value any, record fieldPath) {
	e.decision.Patch = append(e.decision.Patch, jsonpatch.Operation{Operation: op, Path: p.Pointer(), Value: value})
	if record != nil {
		e.decision.Injected = append(e.decision.Injected, relative(record, e.spec.machine))
	}
}

// recordInjected writes the annotation that tells people and audits what the webhook filled.
func (e *evaluation) recordInjected() {
	if len(e.decision.Injected) == 0 {
		return
	}
	injected := slices.Clone(e.decision.Injected)
	annotations := pathOf("metadata", "annotations")
	key := annotations.child(AnnotationInjected)
	if prev := stringAt(e.obj, key); prev != "" {
		injected = append(strings.Split(prev, ","), injected...)
	}
	slices.Sort(injected)
	value := strings.Join(slices.Compact(injected), ",")
	if lookupMap(e.obj, annotations) == nil && lookupPresent(e.obj, annotations) {
		e.report(RuleDefaultNotApplied, annotations, "metadata.annotations is not an object; the record of injected defaults could not be written")
		return
	}
	if lookupPresent(e.obj, key) {
		e.decision.Patch = append(e.decision.Patch, jsonpatch.Operation{Operation: "replace", Path: key.Pointer(), Value: value})
		lookupMap(e.obj, annotations)[AnnotationInjected] = value
		return
	}
	e.fillRecorded(key, value, false)
}

// relative prints p relative to the machine settings (osDisk.managedDisk...), the form used in the
// annotation and messages, so it reads the same for every kind.
func relative(p, base fieldPath) string {
	if len(p) >= len(base) && p[:len(base)].String() == base.String() {
		return p[len(base):].String()
	}
	return p.String()
}

func hasValue(obj any, p fieldPath) bool {
	v, ok := lookup(obj, p)
	if !ok || v == nil {
		return false
	}
	if s, isStr := v.(string); isStr {
		return s != ""
	}
	return true
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
