package celpolicy

import (
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// listVar is a list that findings iterate.
type listVar struct {
	path []string // below the settings
}

// side is the object (new) or, on UPDATE, the stored object (old) as the findings read it. The
// settings are reached by optional selection from object or oldObject in every expression rather
// than through a variable: a variable cannot hold an optional (the apiserver declares it dyn, and
// selection on the stored optional finds nothing), and orValue(dyn({})) would erase the schema's
// type, which the type checker needs to catch a misspelt field.
type side struct {
	old  bool
	path []string // of the settings in the object
}

func (s side) object() string {
	if s.old {
		return "oldObject"
	}
	return "object"
}

// root is the optional settings, to select from with opt().
func (s side) root() string { return opt(s.object(), s.path...) }

// present is whether the side has the settings at all (policy's validateMachine checks nothing
// else when they are missing).
func (s side) present() string { return present(s.object(), s.path...) }

// entry renders one finding: for the object a {"key", "field", "msg"} map, for the stored object
// only the key, which names the field with list items by identity, as policy's Finding.Key does.
func (s side) entry(key, field, msg string) string {
	if s.old {
		return key
	}
	return `{"key": ` + key + `, "field": ` + field + `, "msg": ` + msg + "}"
}

// list is a list in the settings, empty when absent. It is written out where it is used, not bound
// to a variable: the apiserver declares a variable holding objects as dyn, which would again hide
// misspelt fields of the items from the type checker.
func (s side) list(l listVar) string { return opt(s.root(), l.path...) + ".orValue([])" }

// ruleGen is one rule compiled for one kind.
type ruleGen struct {
	rule policy.RuleID
	kind kindSpec
	// vars come before the findings, which may read them.
	vars []admissionregistrationv1.Variable
	// annotations of the policy.
	annotations map[string]string
	// findings renders, for one side, a CEL list of the rule's findings (see side.entry).
	findings func(s side) string
	static   string // the message when messageExpression yields none
	note     string // where the compiled rule is narrower than the webhook's
	// ceiling caps the rule's action (a verdict that only warns); suffix then tells the policy apart
	// from the rule's uncapped one.
	ceiling policy.Action
	suffix  string
	// ownPrefix: the findings' messages carry the warn-only prefix themselves, where it applies.
	ownPrefix bool
}

// exemptions are the webhook's: policy.Evaluate records but never enforces findings on objects being
// deleted, on UPDATEs that leave spec alone, and on CAPI topology dry-runs.
var exemptions = []admissionregistrationv1.MatchCondition{
	{Name: "not-being-deleted", Expression: "!has(object.metadata.deletionTimestamp)"},
	{Name: "not-metadata-only-update", Expression: `request.operation != "UPDATE" || has(object.spec) != has(oldObject.spec) || (has(object.spec) && object.spec != oldObject.spec)`},
	{Name: "not-topology-dry-run", Expression: `!(request.dryRun == true && ` + str(policy.AnnotationTopologyDryRun) + ` in object.metadata.?annotations.orValue({}))`},
}

func (c *compiler) vap(g ruleGen) {
	name := Prefix + "." + string(g.rule) + "." + g.kind.lower() + g.suffix
	rootPath := g.kind.machine
	if rootPath == nil {
		rootPath = []string{"spec"}
	}
	newSide, oldSide := side{path: rootPath}, side{old: true, path: rootPath}
	action := c.action(g.rule)
	if g.ceiling != "" && g.ceiling.Severity() < action.Severity() {
		action = g.ceiling
	}
	prefix := ""
	if c.warnOnlyPrefixed(g.rule) && g.ceiling == "" && !g.ownPrefix {
		// As policy.Evaluate words a denial that the policy's warnOnly turned into a warning.
		prefix = str("[warn-only: would deny] ") + " + "
	}
	head := "capz-encryption-webhook [" + string(g.rule) + "] "
	vars := append(slices.Clone(g.vars), admissionregistrationv1.Variable{Name: "findings", Expression: g.findings(newSide)})
	if action == policy.ActionAudit {
		// An audit finding is recorded whether or not the stored object had it: policy.Evaluate
		// ratchets only what it would enforce.
		vars = append(vars, admissionregistrationv1.Variable{Name: "fresh", Expression: "variables.findings"})
	} else {
		vars = append(vars,
			// Ratcheting: what the stored object already had is not enforced on UPDATE (oldObject is
			// null on CREATE).
			admissionregistrationv1.Variable{Name: "stored", Expression: `request.operation == "UPDATE" ? ` + g.findings(oldSide) + " : []"},
			admissionregistrationv1.Variable{Name: "fresh", Expression: "variables.findings.filter(f, !(f.key in variables.stored))"},
		)
	}
	vars = append(vars,
		// On one line: the apiserver drops a message with a line break (values can hold them).
		admissionregistrationv1.Variable{Name: "messageText", Expression: "(" + str(head) + " + variables.fresh.map(f, f.field + \": \" + " + prefix + "f.msg).join(" + str("; ["+string(g.rule)+"] ") + `)).replace("\n", "\\n").replace("\r", "\\r")`},
		// The apiserver also drops messages over 5 KiB, for the static message.
		admissionregistrationv1.Variable{Name: "message", Expression: clipped("variables.messageText", 4000)},
	)
	fail := admissionregistrationv1.Fail
	forbidden := metav1.StatusReasonForbidden
	spec := admissionregistrationv1.ValidatingAdmissionPolicySpec{
		FailurePolicy:    &fail,
		MatchConstraints: constraints(g.kind, admissionregistrationv1.Create, admissionregistrationv1.Update),
		MatchConditions:  append([]admissionregistrationv1.MatchCondition(nil), exemptions...),
		Variables:        vars,
		Validations: []admissionregistrationv1.Validation{{
			Expression:        "variables.fresh.size() == 0",
			MessageExpression: "variables.message",
			Message:           head + g.static,
			Reason:            &forbidden,
		}},
	}
	binding := admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
		PolicyName: name, ValidationActions: validationActions(action), MatchResources: c.matchResources(),
	}
	meta := metav1.ObjectMeta{Name: name, Labels: c.labels(string(g.rule), g.kind), Annotations: g.annotations}
	c.res.ValidatingPolicies = append(c.res.ValidatingPolicies, &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: meta, Spec: spec,
	})
	meta = metav1.ObjectMeta{Name: name, Labels: c.labels(string(g.rule), g.kind)}
	c.res.ValidatingBindings = append(c.res.ValidatingBindings, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: meta, Spec: binding,
	})
	c.addCoverage(Coverage{Rule: g.rule, Kinds: []string{g.kind.kind}, Action: action, Objects: []string{name}, Note: g.note})
}

func (c *compiler) compileRules() {
	for _, k := range machineKinds {
		c.vap(desIDMalformed(k))
		if len(c.p.AllowedDESSubscriptions) > 0 {
			c.vap(desSubscription(k, c.p.AllowedDESSubscriptions))
		}
		c.vap(adeExtension(k))
		if c.p.RequireCustomerManagedKeys && c.defReason == "" {
			c.vap(c.desRequired(k))
		}
		if c.sizes != nil {
			c.compileEAH(k)
		}
	}
	c.vap(aksManagedMachinePool())
	c.vap(aksManagedControlPlane())
}

// compileEAH compiles eah-sku-unsupported for one kind: one policy at the rule's action, and where
// that is deny, a second one that only warns for the doubtful sizes (policy.Evaluate caps old
// evidence at warn).
func (c *compiler) compileEAH(k kindSpec) {
	if c.action(policy.RuleEAHSKUUnsupported) != policy.ActionDeny {
		c.vap(c.eahUnsupported(k, []string{SizeUnsupported, SizeDoubtful}, "", ""))
		return
	}
	c.vap(c.eahUnsupported(k, []string{SizeUnsupported}, "", ""))
	c.vap(c.eahUnsupported(k, []string{SizeDoubtful}, policy.ActionWarn, "."+string(policy.ActionWarn)))
}

// --- CEL fragments -------------------------------------------------------------------------------

// when renders a list holding one finding if cond holds, else none.
func when(cond, finding string) string { return "(" + cond + " ? [" + finding + "] : [])" }

func join(parts ...string) string { return strings.Join(parts, " + ") }

// osSlots are the Disk Encryption Set fields of the OS disk, as policy's desSlots lists them.
var osSlots = []struct {
	key, disk string
	path      []string // to the diskEncryptionSet object
}{
	{"os", "OS disk", []string{"osDisk", "managedDisk", "diskEncryptionSet"}},
	{"os-confidential", "OS disk (confidential)", []string{"osDisk", "managedDisk", "securityProfile", "diskEncryptionSet"}},
}

// diskIdentity names a data disk as policy's identity does: by nameSuffix, else lun, else index.
func diskIdentity(d, list string) string {
	return `(has(` + d + `.nameSuffix) && ` + d + `.nameSuffix != "" ? "nameSuffix=" + ` + d + `.nameSuffix : has(` + d + `.lun) ? "lun=" + string(` + d + `.lun) : string(` + list + `.indexOf(` + d + `)))`
}

func dataDiskField(k kindSpec, list, rest string) string {
	return str(k.dotted()+".dataDisks[") + " + string(" + list + ".indexOf(d)) + " + str("]."+rest)
}

var disksList = listVar{path: []string{"dataDisks"}}

const desForm = "/subscriptions/{subscription GUID}/resourceGroups/{resource group}/providers/Microsoft.Compute/diskEncryptionSets/{name}"

// malformedMsg says what desid would say, as far as a regular expression can: the expected form,
// what was found, and where a segment-by-segment diagnosis is to be had.
func malformedMsg(field, disk, id string) string {
	return join(field, str(" ("), disk, str(") is not a valid Disk Encryption Set ID: expected "+desForm+", found "),
		"("+id+` == "" ? `+str("nothing: the ID is empty (a preset such as Palette's leaves it to be filled in); copy the Resource ID from the Disk Encryption Set's JSON View in the Azure portal")+
			` : "\"" + `+clipped(id, 200)+` + "\"; " + `+str("keywords may be in any case, the subscription is a GUID, the resource group has 1-90 letters, digits, '_', '-', '.', '(' or ')' and does not end in '.', the name has 1-80 ASCII letters, digits, '_' or '-', and nothing follows it; `capz-encryption-webhook check` names the wrong segment")+")")
}

func desIDMalformed(k kindSpec) ruleGen {
	re := rawRegex(DESIDPattern)
	return ruleGen{
		rule: policy.RuleDESIDMalformed, kind: k,
		static: "a Disk Encryption Set ID is not " + desForm,
		findings: func(s side) string {
			parts := make([]string, 0, len(osSlots)+1)
			for _, sl := range osSlots {
				id := opt(s.root(), append(sl.path, "id")...) + `.orValue("")`
				field := str(k.dotted() + "." + strings.Join(sl.path, ".") + ".id")
				parts = append(parts, when(opt(s.root(), sl.path...)+".hasValue() && !"+id+".matches("+re+")",
					s.entry(str(sl.key), field, malformedMsg(field, str(sl.disk), id))))
			}
			l := s.list(disksList)
			id := `d.managedDisk.diskEncryptionSet.?id.orValue("")`
			field := dataDiskField(k, l, "managedDisk.diskEncryptionSet.id")
			parts = append(parts, l+".filter(d, has(d.managedDisk) && has(d.managedDisk.diskEncryptionSet) && !"+id+".matches("+re+")).map(d, "+
				s.entry(`"data|" + `+diskIdentity("d", l), field, malformedMsg(field, `"data disk " + string(`+l+`.indexOf(d))`, id))+")")
			return join(parts...)
		},
	}
}

func desSubscription(k kindSpec, allowed []string) ruleGen {
	re := rawRegex(DESIDPattern)
	list := strList(allowed)
	msg := func(field, id string) string {
		return join(field, str(" uses a Disk Encryption Set in subscription "), id+`.split("/")[2].lowerAscii()`,
			str(", which the policy does not allow (allowed: "+strings.Join(allowed, ", ")+"); use a Disk Encryption Set from an allowed subscription"))
	}
	bad := func(id string) string {
		return id + ".matches(" + re + ") && !(" + id + `.split("/")[2].lowerAscii() in ` + list + ")"
	}
	return ruleGen{
		rule: policy.RuleDESSubscriptionNotAllowed, kind: k,
		static: "a Disk Encryption Set is in a subscription the policy does not allow (allowed: " + strings.Join(allowed, ", ") + ")",
		findings: func(s side) string {
			parts := make([]string, 0, len(osSlots)+1)
			for _, sl := range osSlots {
				id := opt(s.root(), append(sl.path, "id")...) + `.orValue("")`
				field := str(k.dotted() + "." + strings.Join(sl.path, ".") + ".id")
				parts = append(parts, when(bad(id), s.entry(str(sl.key), field, msg(field, id))))
			}
			l := s.list(disksList)
			id := `d.managedDisk.diskEncryptionSet.?id.orValue("")`
			field := dataDiskField(k, l, "managedDisk.diskEncryptionSet.id")
			parts = append(parts, l+".filter(d, has(d.managedDisk) && has(d.managedDisk.diskEncryptionSet) && "+bad(id)+").map(d, "+
				s.entry(`"data|" + `+diskIdentity("d", l), field, msg(field, id))+")")
			return join(parts...)
		},
	}
}

func adeExtension(k kindSpec) ruleGen {
	exts := listVar{path: []string{"vmExtensions"}}
	return ruleGen{
		rule: policy.RuleADEExtension, kind: k,
		static: "vmExtensions holds Azure Disk Encryption, which is not supported for any Azure cluster on this platform",
		findings: func(s side) string {
			l := s.list(exts)
			field := str(k.dotted()+".vmExtensions[") + " + string(" + l + ".indexOf(e)) + " + str("]")
			ident := `(e.?name.orValue("") != "" ? "name=" + e.name : string(` + l + `.indexOf(e)))`
			return l + `.filter(e, e.?publisher.orValue("").matches(` + rawRegex(adePublisherPattern) + `) && e.?name.orValue("").matches(` + rawRegex(ADENamePattern) + `)).map(e, ` +
				s.entry(ident, field, join(field, str(" is Azure Disk Encryption ("), "e.publisher", str("/"), "e.name",
					str("), which is not supported for any Azure cluster on this platform: remove it and use a Disk Encryption Set (osDisk.managedDisk.diskEncryptionSet) and/or securityProfile.encryptionAtHost instead"))) + ")"
		},
	}
}

func (c *compiler) desRequired(k kindSpec) ruleGen {
	// Why no default filled the field, as policy's whyNotDefaulted words it in the validating stage.
	why := func(data bool) string {
		reason := "no organisation default applies to this object"
		if d := c.def; d != nil {
			des := d.DiskEncryptionSetID
			if data && d.DataDiskEncryptionSetID != "" {
				des = d.DataDiskEncryptionSetID
			}
			if des == "" {
				reason = fmt.Sprintf("default %q sets no Disk Encryption Set for this disk", d.Name)
			} else {
				reason = fmt.Sprintf("default %q did not fill it: it cannot apply to this disk (see %s), or the mutating admission policy that injects it did not run", d.Name, policy.RuleDefaultNotApplied)
			}
		}
		return `(request.operation == "UPDATE" ? "organisation defaults are injected on CREATE only" : ` + str(reason) + ")"
	}
	osDES := k.dotted() + ".osDisk.managedDisk.diskEncryptionSet.id"
	// A data disk without managedDisk gets one, with the DES, from a default with a Premium storage
	// type only where the size can attach Premium SSD disks in the machine's region: the webhook
	// judges those disks.
	skipPremium := ""
	if c.def != nil && policy.NeedsPremiumIO(c.def.DataDiskStorageAccountType) {
		skipPremium = "has(d.managedDisk) && "
	}
	return ruleGen{
		rule: policy.RuleDESRequired, kind: k,
		static: "the policy requires customer-managed keys: every managed disk needs a Disk Encryption Set",
		note:   "machines of an AKS Cluster are judged like any other (the webhook reports aks-target for them instead)",
		findings: func(s side) string {
			r := s.root()
			noOS := s.present() + " && " + opt(r, "osDisk", "managedDisk", "diskEncryptionSet", "id") + `.orValue("") == "" && ` +
				opt(r, "osDisk", "managedDisk", "securityProfile", "diskEncryptionSet", "id") + `.orValue("") == ""`
			ephemeral := opt(r, "osDisk", "diffDiskSettings") + ".hasValue()"
			l := s.list(disksList)
			field := dataDiskField(k, l, "managedDisk.diskEncryptionSet.id")
			return join(
				when(noOS+" && "+ephemeral, s.entry(str("os-ephemeral"), str(k.dotted()+".osDisk.diffDiskSettings"),
					str("the policy requires customer-managed keys, but the OS disk is ephemeral (diffDiskSettings) and cannot use a Disk Encryption Set: remove diffDiskSettings and set "+osDES))),
				when(noOS+" && !"+ephemeral, s.entry(str("os"), str(osDES),
					join(str("the policy requires customer-managed keys: set "+osDES+" to a Disk Encryption Set ID ("), why(false), str(")")))),
				l+`.filter(d, `+skipPremium+`d.?managedDisk.?diskEncryptionSet.?id.orValue("") == "").map(d, `+
					s.entry(`"data|" + `+diskIdentity("d", l), field,
						join(str("the policy requires customer-managed keys: set "), field, str(" to a Disk Encryption Set ID ("), why(true), str(")")))+")",
			)
		},
	}
}

// sizeKey renders the catalog key of the VM size under root.
func sizeKey(root string) string { return lowered(opt(root, "vmSize") + `.orValue("")`) }

// eahUnsupported finds encryption at host asked for on a size of one of the classes (verdicts), at
// most at ceiling. On UPDATE, the stored object's finding is there for any size the webhook would
// have objected to without a region, whatever its class: ratcheting is by rule and field, as in
// policy.Evaluate.
func (c *compiler) eahUnsupported(k kindSpec, classes []string, ceiling policy.Action, suffix string) ruleGen {
	field := k.dotted() + ".securityProfile.encryptionAtHost"
	warnOnly := ""
	if c.warnOnlyPrefixed(policy.RuleEAHSKUUnsupported) && ceiling == "" {
		warnOnly = "[warn-only: would deny] "
	}
	note := "sizes that no catalog region supports, refused where current evidence says so everywhere (" + SizeUnsupported + ")"
	switch {
	case ceiling != "":
		note = "sizes that no catalog region supports, but where some evidence is more than " + fmt.Sprint(policy.EvidenceMaxAgeYears) + " years old (" + SizeDoubtful + "): a warning"
	case slices.Contains(classes, SizeDoubtful):
		note = "sizes that no catalog region supports (" + SizeUnsupported + " and " + SizeDoubtful + ")"
	}
	return ruleGen{
		rule: policy.RuleEAHSKUUnsupported, kind: k, ceiling: ceiling, suffix: suffix, ownPrefix: true,
		// The verdicts that matter here: the classes this policy enforces, and on UPDATE any the
		// stored object may have had.
		vars:        []admissionregistrationv1.Variable{{Name: "verdicts", Expression: c.sizes.verdicts(SizeUnsupported, SizeDoubtful, SizeMixed)}},
		annotations: map[string]string{AnnotationCatalog: c.sizes.desc},
		static:      "encryptionAtHost is true on a VM size that supports it in no region of the VM-size catalog",
		note:        note + "; sizes with mixed support are left to the webhook",
		findings: func(s side) string {
			r := s.root()
			verdict := "variables.verdicts[?" + sizeKey(r) + `].orValue("")`
			in := classes
			if s.old {
				in = []string{SizeUnsupported, SizeDoubtful, SizeMixed}
			}
			size := clipped(opt(r, "vmSize")+`.orValue("")`, 100)
			catalog := str(c.sizes.desc)
			msg := "(" + verdict + " == " + str(SizeDoubtful) + " ? " +
				join(str("VM size "), size, str(" supports encryption at host in none of the catalog regions that list it (catalog: "), catalog,
					str(fmt.Sprintf("); but some of that evidence is more than %d years old, or binds only some regions, and Azure may have added the capability since, so this only warns: a current catalog (live Azure data, or --sku-catalog) decides; choose a size that supports it or remove %s", policy.EvidenceMaxAgeYears, field))) +
				" : " +
				join(str(warnOnly+"VM size "), size, str(" supports encryption at host in none of the catalog regions that list it (catalog: "), catalog,
					str("); choose a size that supports it or remove "+field)) + ")"
			return when(opt(r, "securityProfile", "encryptionAtHost")+".orValue(false) == true && "+verdict+" in "+strList(in),
				s.entry(str("eah"), str(field), msg))
		},
	}
}

func aksManagedMachinePool() ruleGen {
	const field = "spec.enableEncryptionAtHost"
	return ruleGen{
		rule: policy.RuleAKSTarget, kind: azureManagedMachinePool,
		static: "encryption at host is not supported for AKS clusters on this platform",
		findings: func(s side) string {
			return when(opt(s.root(), "enableEncryptionAtHost")+".orValue(false) == true", s.entry(str("eah"), str(field),
				str("encryption at host is not supported for AKS clusters on this platform; remove "+field+" (or set it to false)")))
		},
	}
}

func aksManagedControlPlane() ruleGen {
	patches := listVar{path: []string{"asoManagedClusterPatches"}}
	return ruleGen{
		rule: policy.RuleAKSTarget, kind: azureManagedControlPlane,
		static: "a patch sets a Disk Encryption Set on the AKS ManagedCluster, which is not supported for AKS clusters on this platform",
		note:   "patches certain to set a Disk Encryption Set; a key written with JSON escapes, or a patch that is not valid JSON, is left to the webhook",
		findings: func(s side) string {
			l := s.list(patches)
			return l + ".filter(x, x.matches(" + rawRegex(AKSPatchPattern) + ")).map(x, " +
				s.entry(`"=" + x`, str("spec.asoManagedClusterPatches[")+" + string("+l+".indexOf(x)) + "+str("]"),
					str("this patch sets a Disk Encryption Set on the AKS ManagedCluster (diskEncryptionSetReference); server-side encryption with customer-managed keys is not supported for AKS clusters on this platform: remove the patch")) + ")"
		},
	}
}
