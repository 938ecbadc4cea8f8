package celpolicy

import (
	"fmt"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// The mutating policies inject the single region-independent default exactly where policy's mutate
// does: only what is missing or the empty placeholder, as JSON patch operations at the encryption
// paths, plus the record in the capz-encryption-webhook.io/injected annotation (merged, sorted,
// without duplicates). One policy injects the Disk Encryption Sets and another encryption at host,
// which holds the VM-size verdicts and changes with the catalog.
//
// The expressions first compute, in variables, a list of operations as string maps {op, path, shape,
// injected}; the mutation only turns them into JSONPatch values. Variables can be type-checked
// against the CRD schemas like a validating policy's; JSONPatch cannot appear in them.

func (c *compiler) compileDefaults() {
	d := c.def
	if d == nil {
		return
	}
	dataDES := d.DataDiskEncryptionSetID
	if dataDES == "" {
		dataDES = d.DiskEncryptionSetID
	}
	// A data disk without managedDisk gets one with the default's storage type, as the webhook gives
	// it; a Premium type only where the size can attach Premium SSD disks in the machine's region,
	// which the compiled policies cannot tell: those are left to the webhook.
	storage := d.DataDiskStorageAccountType
	if policy.NeedsPremiumIO(storage) {
		storage = ""
	}
	for _, k := range machineKinds {
		if d.DiskEncryptionSetID != "" || dataDES != "" {
			c.injectDES(k, d.Name, d.DiskEncryptionSetID, dataDES, storage)
		}
		if d.EncryptionAtHost && c.sizes != nil {
			c.injectEAH(k, d.Name)
		}
	}
}

// The machine settings are reached by optional selection from object in every expression, for the
// reasons side gives.

// annotationVars merge what variables.ops injects into the annotation, as policy's recordInjected
// does: the previous value split at commas, plus the new paths, sorted, duplicates removed.
var annotationVars = []admissionregistrationv1.Variable{
	{Name: "hasPrevious", Expression: str(policy.AnnotationInjected) + " in object.metadata.?annotations.orValue({})"},
	{Name: "previous", Expression: "object.metadata.?annotations[?" + str(policy.AnnotationInjected) + `].orValue("")`},
	{Name: "annotationValue", Expression: `(variables.previous == "" ? variables.ops.map(o, o.injected) : variables.previous.split(",") + variables.ops.map(o, o.injected)).sort().distinct().join(",")`},
}

// annotationPatch records the injection; nothing is recorded when nothing is injected.
var annotationPatch = `(variables.ops.size() == 0 ? [] : [!has(object.metadata.annotations) ? ` +
	`JSONPatch{op: "add", path: "/metadata/annotations", value: {` + str(policy.AnnotationInjected) + `: variables.annotationValue}} : ` +
	`JSONPatch{op: variables.hasPrevious ? "replace" : "add", path: "/metadata/annotations/" + jsonpatch.escapeKey(` + str(policy.AnnotationInjected) + `), value: variables.annotationValue}])`

func op(o, path, shape, injected string) string {
	return `{"op": ` + str(o) + `, "path": ` + path + `, "shape": ` + str(shape) + `, "injected": ` + injected + "}"
}

func (c *compiler) injectDES(k kindSpec, defName, osDES, dataDES, storage string) {
	m := opt("object", k.machine...)
	base := k.pointer()
	var vars []admissionregistrationv1.Variable
	ops := `[]`
	if osDES != "" {
		md := []string{"osDisk", "managedDisk"}
		id := opt(m, "osDisk", "managedDisk", "diskEncryptionSet", "id")
		injected := str("osDisk.managedDisk.diskEncryptionSet.id")
		// As defaultOSDiskDES: an OS disk exists, has no DES yet, is not ephemeral (CAPZ refuses a DES
		// with diffDiskSettings) and not a confidential-VM disk (whose DES goes elsewhere, of another
		// type).
		vars = append(vars, admissionregistrationv1.Variable{Name: "osOps", Expression: opt(m, "osDisk") + ".hasValue() && " + id + `.orValue("") == "" && !` +
			opt(m, "osDisk", "diffDiskSettings") + ".hasValue() && " + opt(m, "osDisk", "managedDisk", "securityProfile", "securityEncryptionType") + `.orValue("") == "" ? [` +
			"!" + opt(m, md...) + ".hasValue() ? " + op("add", str(base+"/osDisk/managedDisk"), "os-managedDisk", injected) +
			" : !" + opt(m, "osDisk", "managedDisk", "diskEncryptionSet") + ".hasValue() ? " + op("add", str(base+"/osDisk/managedDisk/diskEncryptionSet"), "os-diskEncryptionSet", injected) +
			" : !" + id + ".hasValue() ? " + op("add", str(base+"/osDisk/managedDisk/diskEncryptionSet/id"), "os-id", injected) +
			" : " + op("replace", str(base+"/osDisk/managedDisk/diskEncryptionSet/id"), "os-id", injected) + "] : []"})
		ops = "variables.osOps"
	}
	if dataDES != "" {
		disk := str(base+"/dataDisks/") + " + string(i) + " + str("/managedDisk/diskEncryptionSet")
		injected := `"dataDisks[" + string(i) + "].managedDisk.diskEncryptionSet.id"`
		// As defaultDataDiskDES: disks that have a managedDisk and no DES yet; and, as
		// defaultManagedDisk, disks without one when the default names their storage type (CAPZ
		// sends a data disk's managedDisk to Azure as it is, so it needs storageAccountType).
		withoutMD := "false"
		if storage != "" {
			withoutMD = "!has(d.managedDisk)"
		}
		vars = append(vars, admissionregistrationv1.Variable{Name: "dataOps", Expression: opt(m, "dataDisks") + `.orValue([]).transformList(i, d, ` + withoutMD + ` || has(d.managedDisk) && d.managedDisk.?diskEncryptionSet.?id.orValue("") == "", ` +
			"!has(d.managedDisk) ? " + op("add", str(base+"/dataDisks/")+" + string(i) + "+str("/managedDisk"), "data-managedDisk", `"dataDisks[" + string(i) + "].managedDisk"`) +
			" : !has(d.managedDisk.diskEncryptionSet) ? " + op("add", disk, "data-diskEncryptionSet", injected) +
			" : !has(d.managedDisk.diskEncryptionSet.id) ? " + op("add", disk+` + "/id"`, "data-id", injected) +
			" : " + op("replace", disk+` + "/id"`, "data-id", injected) + ")"})
		if ops == "[]" {
			ops = "variables.dataOps"
		} else {
			ops += " + variables.dataOps"
		}
	}
	vars = append(vars, admissionregistrationv1.Variable{Name: "ops", Expression: ops})
	vars = append(vars, annotationVars...)
	value := `o.shape == "os-managedDisk" ? dyn({"diskEncryptionSet": {"id": ` + str(osDES) + `}}) : ` +
		`o.shape == "os-diskEncryptionSet" ? dyn({"id": ` + str(osDES) + `}) : ` +
		`o.shape == "os-id" ? dyn(` + str(osDES) + `) : ` +
		`o.shape == "data-managedDisk" ? dyn({"storageAccountType": dyn(` + str(storage) + `), "diskEncryptionSet": dyn({"id": ` + str(dataDES) + `})}) : ` +
		`o.shape == "data-diskEncryptionSet" ? dyn({"id": ` + str(dataDES) + `}) : dyn(` + str(dataDES) + `)`
	c.mutating("inject-des", k, defName, vars, "variables.ops.map(o, JSONPatch{op: o.op, path: o.path, value: "+value+"}) + "+annotationPatch, nil)
}

func (c *compiler) injectEAH(k kindSpec, defName string) {
	m := opt("object", k.machine...)
	base := k.pointer()
	injected := str("securityProfile.encryptionAtHost")
	// As defaultEncryptionAtHost: the field is unset, the OS disk does not keep the VM guest state
	// (CAPZ refuses both together), and the size supports encryption at host wherever the catalog
	// offers it: the region is unknown here.
	vars := slices.Concat([]admissionregistrationv1.Variable{
		// Only the sizes a default may get encryption at host on.
		{Name: "verdicts", Expression: c.sizes.verdicts(SizeSupported)},
		{Name: "sizeKey", Expression: sizeKey(m)},
		{Name: "ops", Expression: present("object", k.machine...) + " && !" + opt(m, "securityProfile", "encryptionAtHost") + ".hasValue() && " +
			opt(m, "osDisk", "managedDisk", "securityProfile", "securityEncryptionType") + `.orValue("") != "DiskWithVMGuestState" && ` +
			`variables.verdicts[?variables.sizeKey].orValue("") == ` + str(SizeSupported) + " ? [" +
			opt(m, "securityProfile") + ".hasValue() ? " + op("add", str(base+"/securityProfile/encryptionAtHost"), "encryptionAtHost", injected) +
			" : " + op("add", str(base+"/securityProfile"), "securityProfile", injected) + "] : []"},
	}, annotationVars)
	value := `o.shape == "securityProfile" ? dyn({"encryptionAtHost": true}) : dyn(true)`
	c.mutating("inject-eah", k, defName, vars, "variables.ops.map(o, JSONPatch{op: o.op, path: o.path, value: "+value+"}) + "+annotationPatch, map[string]string{AnnotationCatalog: c.sizes.desc})
}

// aksNote is where the injection differs from the webhook's: it cannot see the Cluster.
const aksNote = "machines of an AKS cluster get it too (the webhook injects nothing there, and then reports aks-target)"

func (c *compiler) mutating(what string, k kindSpec, defName string, vars []admissionregistrationv1.Variable, mutation string, annotations map[string]string) {
	name := Prefix + "." + what + "." + k.lower()
	fail := admissionregistrationv1.Fail
	spec := admissionregistrationv1.MutatingAdmissionPolicySpec{
		// CREATE only: CAPZ treats the specs as immutable, and the webhook injects on CREATE only.
		MatchConstraints: constraints(k, admissionregistrationv1.Create),
		Variables:        vars,
		Mutations: []admissionregistrationv1.Mutation{{
			PatchType: admissionregistrationv1.PatchTypeJSONPatch,
			JSONPatch: &admissionregistrationv1.JSONPatch{Expression: mutation},
		}},
		FailurePolicy: &fail,
		// Idempotent: a second pass finds nothing missing and patches nothing.
		ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
	}
	binding := admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: name, MatchResources: c.matchResources()}
	gv := admissionregistrationv1.SchemeGroupVersion.String()
	c.res.MutatingPolicies = append(c.res.MutatingPolicies, &admissionregistrationv1.MutatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: gv, Kind: "MutatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: c.labels(InjectDefault, k), Annotations: annotations},
		Spec:       spec,
	})
	c.res.MutatingBindings = append(c.res.MutatingBindings, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: gv, Kind: "MutatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: c.labels(InjectDefault, k)},
		Spec:       binding,
	})
	note := fmt.Sprintf("default %q: Disk Encryption Sets; %s", defName, aksNote)
	if what == "inject-eah" {
		note = fmt.Sprintf("default %q: encryptionAtHost, on sizes that support it in every catalog region that lists them (%s), as the webhook does wherever the machine is, except in a region whose current complete listing lacks the size (the webhook injects nothing there, and refuses the object as sku-unknown); %s", defName, SizeSupported, aksNote)
	}
	c.addCoverage(Coverage{Kinds: []string{k.kind}, Objects: []string{name}, Note: note})
}
