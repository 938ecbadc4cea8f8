package policy

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
)

// BindingRequest is a MachineDeployment, KubeadmControlPlane or MachinePool that binds a CAPZ
// template to its cluster: created, or pointed at another template. The binding is what puts the
// template's machines into a region, so the template is judged again there.
type BindingRequest struct {
	Operation Operation
	// Object is the binding object as it arrived (JSON); only its metadata is read here.
	Object []byte
	// Kind, Namespace and Name of the binding object, for messages and the decision.
	Kind, Namespace, Name string
	// RefField is where Object references the template, e.g. spec.template.spec.infrastructureRef,
	// and RefGroup, RefKind and RefName what it references (RefGroup may be empty: see
	// capiref.Ref.Group).
	RefField                   string
	RefGroup, RefKind, RefName string
	// Template is the referenced object as stored (JSON); nil when it does not exist yet, as in
	// CAPZ's flavors, where the template comes after the object that references it (it is then
	// judged, bound, at its own CREATE).
	Template []byte
	// OldTemplate is, on UPDATE, the object referenced before (JSON); nil when unknown.
	OldTemplate []byte
	// Replicas is how many machines the binding object runs (status, else spec); ReplicasKnown is
	// false when neither says.
	Replicas      int64
	ReplicasKnown bool
	// NamespaceLabels and DryRun as in Request.
	NamespaceLabels map[string]string
	DryRun          bool
}

// EvaluateBinding decides on a binding: the referenced template is judged as stored, in the region
// and cluster env describes. A template that would be denied there denies the binding,
// with its findings; an UPDATE that switches to a template with other encryption settings warns that
// every machine will be replaced.
func EvaluateBinding(p *Policy, req BindingRequest, env Environment) (*Decision, error) {
	if p == nil {
		p = DefaultPolicy()
	}
	binder, err := decodeObject(req.Object, "object")
	if err != nil {
		return nil, err
	}
	d := &Decision{Kind: req.Kind, Namespace: req.Namespace, Name: req.Name, Patch: []jsonpatch.Operation{}, Findings: []Finding{},
		Binding: bindingOf(env.Cluster)}
	if req.Operation == OperationDelete {
		d.Allowed, d.Exempt = true, "delete"
		return d, nil
	}
	group := req.RefGroup
	if group == "" {
		group = Group
	}
	if _, ok := lookupKind(req.RefKind); !ok || group != Group {
		d.Allowed, d.Exempt = true, fmt.Sprintf("references %s %s (%s), not a kind this policy decides on", req.RefKind, req.RefName, group)
		return d, nil
	}
	if len(req.Template) == 0 {
		// Nothing to judge yet: the template's own CREATE resolves this binding and is judged then.
		d.Allowed, d.Exempt = true, "template not found yet: judged at its own CREATE"
		return d, nil
	}
	tmeta, err := objmeta.Decode(req.Template)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	// The template as it is stored, as the audit judges it (EvaluateStored): nothing can be
	// injected any more, and what the region's default would have filled at its CREATE (it was
	// created before anything bound it to this cluster) is reported as created-before-default.
	td, err := EvaluateStored(p, Request{Object: req.Template, Namespace: req.Namespace, NamespaceLabels: req.NamespaceLabels}, env)
	if err != nil {
		return nil, fmt.Errorf("template %s %s: %w", tmeta.Kind, tmeta.Name, err)
	}
	d.Region, d.RegionSource, d.Catalog, d.DefaultName, d.Binding = td.Region, td.RegionSource, td.Catalog, td.DefaultName, td.Binding
	where := fmt.Sprintf("%s %s (referenced at %s) in %s", tmeta.Kind, tmeta.Name, req.RefField, describeCluster(env.Cluster, td))
	for _, f := range td.Findings {
		if f.Rule == RuleCreatedBeforeDefault {
			f.Message += "; most likely it was created before anything bound it to this cluster, when its region was unknown"
		}
		f.Message = fmt.Sprintf("%s: %s: %s", where, f.Field, f.Message)
		f.key = string(f.Rule) + " " + req.RefField + " " + f.key
		f.Field = req.RefField
		d.Findings = append(d.Findings, f)
	}
	if req.Operation == OperationUpdate && len(req.OldTemplate) > 0 {
		repave(d, req, tmeta, p)
	}
	// The exemptions (being deleted, CAPI topology dry-runs) and the warn-only switch, as for any
	// object. Without an old object there is no ratcheting: an UPDATE reaches the check only when it
	// binds another template, which is judged in full.
	e := &evaluation{policy: p, req: Request{Operation: req.Operation, DryRun: req.DryRun}, obj: binder, decision: d}
	e.enforce()
	return d, nil
}

func describeCluster(c ClusterInfo, td *Decision) string {
	region := "an unknown region"
	if td.Region != "" {
		region = fmt.Sprintf("region %s (from %s)", td.Region, td.RegionSource)
	}
	if c.Name == "" {
		return region
	}
	return fmt.Sprintf("cluster %q, %s", c.Name, region)
}

// repave warns when the binding switches to a template whose encryption settings differ from the
// old one's: CAPI replaces every machine of the object, and this is where Palette's "a full cluster
// repave will occur" happens.
func repave(d *Decision, req BindingRequest, newMeta objmeta.Meta, p *Policy) {
	oldMeta, err := objmeta.Decode(req.OldTemplate)
	if err != nil || !Handles(oldMeta.APIVersion, oldMeta.Kind) {
		return
	}
	changed := diffEncryption(req.OldTemplate, oldMeta.Kind, req.Template, newMeta.Kind)
	if len(changed) == 0 {
		return
	}
	machines := "every machine it runs"
	if req.ReplicasKnown {
		machines = fmt.Sprintf("all %d of its machines", req.Replicas)
		if req.Replicas == 1 {
			machines = "its 1 machine"
		}
	}
	f := Finding{Rule: RuleRepave, Action: p.ActionFor(RuleRepave), Field: req.RefField,
		Message: fmt.Sprintf("%s %s switches %s from %s %s to %s %s, which changes the encryption settings (%s): %s will be replaced (a full repave); plan the rollout",
			req.Kind, req.Name, req.RefField, oldMeta.Kind, oldMeta.Name, newMeta.Kind, newMeta.Name, strings.Join(changed, "; "), machines)}
	f.key = string(RuleRepave) + " " + req.RefField
	d.Findings = append(d.Findings, f)
}

// diffEncryption lists the encryption settings that differ between two machine templates, as
// "field: old → new". Data disks are matched by identity (nameSuffix, else lun), not index.
func diffEncryption(oldRaw []byte, oldKind string, newRaw []byte, newKind string) []string {
	oldS, newS := encryptionSettings(oldRaw, oldKind), encryptionSettings(newRaw, newKind)
	keys := map[string]bool{}
	for k := range oldS {
		keys[k] = true
	}
	for k := range newS {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if !reflect.DeepEqual(oldS[k], newS[k]) {
			out = append(out, fmt.Sprintf("%s: %s → %s", k, show(oldS[k]), show(newS[k])))
		}
	}
	return out
}

func show(v any) string {
	if v == nil {
		return "unset"
	}
	if m, ok := v.(map[string]any); ok {
		if id, ok := m["id"].(string); ok && len(m) == 1 {
			return id
		}
	}
	return fmt.Sprint(v)
}

// encryptionSettings reads the settings a change of which replaces the machines: encryption at
// host, the OS disk's DES (and confidential-VM profile), each data disk's DES. Keys are relative to
// the machine settings; a data disk is named by its identity.
func encryptionSettings(raw []byte, kind string) map[string]any {
	k, ok := lookupKind(kind)
	if !ok || k.machine == nil {
		return nil
	}
	obj, err := decodeObject(raw, "template")
	if err != nil {
		return nil
	}
	base := k.machine
	out := map[string]any{}
	machine, disks := repaveFields(base, len(lookupSlice(obj, base.child("dataDisks"))))
	for _, f := range machine {
		if v, ok := lookup(obj, f); ok && v != nil {
			out[relative(f, base)] = v
		}
	}
	for _, f := range disks { // by the disk's identity (lun, nameSuffix), not its place in the list
		if v, ok := lookup(obj, f); ok && v != nil {
			out[strings.TrimPrefix(identity(obj, f), base.String()+".")] = v
		}
	}
	return out
}
