package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// evaluation carries the state of one Evaluate call.
type evaluation struct {
	policy   *Policy
	req      Request
	env      Environment
	spec     kindSpec
	obj      map[string]any // decoded object; mutate() changes it as it builds the patch
	old      map[string]any // decoded old object on UPDATE
	nsLabels map[string]string
	decision *Decision
	verdict  *sizeVerdict // of the object's VM size in its region; computed once, lazily
	def      *Default     // the organisation default that applies (CREATE of a mutable kind), if any
	// eahDefaulted is true when the organisation default tried to inject encryption at host (CREATE
	// of a mutable kind, in either stage): the size's capabilities then matter as if the object had
	// asked for it.
	eahDefaulted bool
	// regionConflicts are the disagreements between region sources that resolveRegion found.
	regionConflicts []regionConflict
	// wouldInject holds the paths (dotted) that the organisation default fills when the validating
	// stage replays the mutation on a scratch copy: a missing value there means the mutating webhook
	// did not inject it, which the messages say.
	wouldInject map[string]bool
	// stored is true for EvaluateStored: the object is judged as it is stored, for the audit.
	stored bool
}

// Evaluate decides on one request. In StageAdmit it injects the organisation defaults (CREATE only)
// and then validates the object as it would be stored; in StageValidate it judges the object exactly
// as received; in StageMutate it only injects. It is deterministic and idempotent: evaluating the patched object again yields the same
// findings and an empty patch, so `check` (StageAdmit) and the webhook pair (StageAdmit for the patch,
// StageValidate on the patched object) reach the same verdict.
func Evaluate(p *Policy, req Request, env Environment) (*Decision, error) {
	e, err := newEvaluation(p, req, env)
	if err != nil {
		return nil, err
	}
	if req.Operation == OperationDelete {
		// Deletion is never blocked: a policy that prevents cleaning up is worse than none.
		e.decision.Allowed, e.decision.Exempt = true, "delete"
		return e.decision, nil
	}
	if e.spec.Mutable && req.Operation == OperationCreate {
		if req.Stage == StageValidate {
			e.replayMutation()
		} else {
			e.mutate()
		}
	}
	if req.Stage != StageMutate {
		e.validate()
	}
	e.enforce()
	return e.decision, nil
}

// EvaluateStored judges an object as it is stored, for the audit of what already exists: exactly
// as received (StageValidate), with no old object to ratchet against, no defaults injected and no
// exemption for metadata-only updates — the same view of the stored object that ratcheting takes on
// UPDATE, plus what only the audit asks: Decision.MissingDefaults lists what the organisation default
// would inject on CREATE but the object lacks (reported as created-before-default), and des-key-expiry
// judges an expired key as it would judge a new machine. Only req.Object, req.Namespace and
// req.NamespaceLabels are read.
func EvaluateStored(p *Policy, req Request, env Environment) (*Decision, error) {
	e, err := newEvaluation(p, Request{Operation: OperationUpdate, Stage: StageValidate, Object: req.Object,
		Namespace: req.Namespace, NamespaceLabels: req.NamespaceLabels}, env)
	if err != nil {
		return nil, err
	}
	e.stored = true
	if e.spec.Mutable {
		e.replayMutation()
		e.reportMissingDefaults()
	}
	e.validate()
	e.enforce()
	return e.decision, nil
}

// newEvaluation decodes the request and resolves the object's kind and region.
func newEvaluation(p *Policy, req Request, env Environment) (*evaluation, error) {
	if p == nil {
		p = DefaultPolicy()
	}
	in := req.Decoded
	if in == nil {
		var err error
		if in, err = DecodeObject(req.Object); err != nil {
			return nil, err
		}
	}
	obj, meta := in.fields, in.Meta
	kind := meta.Kind
	if !Handles(meta.APIVersion, kind) {
		return nil, fmt.Errorf("%s %s is not a kind this policy handles (%s of %s)", meta.APIVersion, kind, kindNames(), Group)
	}
	spec, _ := lookupKind(kind)
	e := &evaluation{policy: p, req: req, env: env, spec: spec, obj: obj}
	if req.Operation == OperationUpdate && len(req.OldObject) > 0 {
		var err error
		if e.old, err = decodeObject(req.OldObject, "oldObject"); err != nil {
			return nil, err
		}
	}
	ns := meta.Namespace
	if ns == "" {
		ns = req.Namespace
	}
	e.nsLabels = req.NamespaceLabels
	if e.nsLabels == nil && ns != "" {
		e.nsLabels = map[string]string{"kubernetes.io/metadata.name": ns}
	}
	e.decision = &Decision{Kind: kind, Namespace: ns, Name: meta.DisplayName(), Patch: []jsonpatch.Operation{}, Findings: []Finding{}}
	e.resolveRegion()
	return e, nil
}

// Object is an object decoded for the policy: its fields and its identity. The admission handler
// decodes each request's object once, reads the identity to find the object's cluster, and hands
// the same Object to Evaluate, which takes it over (the mutation fills it in place).
type Object struct {
	fields map[string]any
	Meta   objmeta.Meta
}

// DecodeObject decodes raw, which must be one JSON object and nothing after it.
func DecodeObject(raw []byte) (*Object, error) {
	m, err := decodeObject(raw, "object")
	if err != nil {
		return nil, err
	}
	meta, err := objmeta.FromMapStrict(m)
	if err != nil {
		return nil, err
	}
	return &Object{fields: m, Meta: meta}, nil
}

// decodeObject decodes JSON into maps. Numbers become float64: the policy reads no number but a
// data disk's lun, and never writes the object back (a patch carries only values it makes), so no
// number the user wrote can be changed by it. json.Unmarshal rejects trailing data, a stray '}'
// included.
func decodeObject(raw []byte, what string) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%s is empty", what)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) && strings.Contains(syntax.Error(), "after top-level value") {
			return nil, fmt.Errorf("%s has trailing data after the JSON object", what)
		}
		return nil, fmt.Errorf("%s is not valid JSON: %w", what, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New(what + " is not a JSON object")
	}
	return m, nil
}

// resolveRegion applies DESIGN.md's order. The object's own real location comes first (an
// AzureMachinePool's spec.location is where its scale set is created), then its cluster's region
// (AzureCluster.spec.location). Only when neither is known do the names a user or an admin can set
// apply: the object's location annotation, the namespace annotation and other candidates of the
// caller, and the policy's default location. So a user cannot pick, with an annotation, the region
// whose defaults or rules suit them; a disagreement is reported (reportRegionConflicts).
func (e *evaluation) resolveRegion() {
	e.decision.Binding = bindingOf(e.env.Cluster)
	set := func(region, source string) bool {
		region = skus.NormalizeRegion(region)
		if region == "" {
			return false
		}
		e.decision.Region, e.decision.RegionSource = region, source
		return true
	}
	var own string
	if e.spec.locationField != nil {
		own = stringAt(e.obj, e.spec.locationField)
	}
	var cluster LocationCandidate
	for _, c := range e.env.Locations {
		if c.Cluster && skus.NormalizeRegion(c.Location) != "" {
			cluster = c
			break
		}
	}
	ann, _, _ := lookupString(e.obj, pathOf("metadata", "annotations", AnnotationLocation))
	switch {
	case set(own, "spec.location"):
	case set(cluster.Location, cluster.Source):
	case set(ann, "annotation"):
	default:
		found := false
		for _, c := range e.env.Locations {
			if !c.Cluster && set(c.Location, c.Source) {
				found = true
				break
			}
		}
		if !found && !set(e.policy.DefaultLocation, "policy-default") {
			e.decision.RegionSource = "unknown"
			if e.decision.Binding == BindingUnbound {
				// Nothing ties the object to a cluster yet (a template applied before whatever
				// will reference it): say so, rather than that its cluster has no region.
				e.decision.RegionSource = BindingUnbound
			}
		}
	}
	e.regionConflicts = e.regionConflicts[:0]
	clusterRegion := skus.NormalizeRegion(cluster.Location)
	if o := skus.NormalizeRegion(own); o != "" && clusterRegion != "" && o != clusterRegion {
		e.regionConflicts = append(e.regionConflicts, regionConflict{rule: RuleLocationMismatch, field: e.spec.locationField,
			msg: fmt.Sprintf("%s is %s, but the cluster %s is in %s (AzureCluster.spec.location): a scale set cannot use the network of a cluster in another region. The object was judged for %s; set %s to %s",
				e.spec.locationField, o, clusterName(e.env.Cluster), clusterRegion, o, e.spec.locationField, clusterRegion)})
	}
	if a := skus.NormalizeRegion(ann); a != "" && a != e.decision.Region && (e.decision.RegionSource == "spec.location" || cluster.Location != "") {
		by := fmt.Sprintf("the cluster %s is in %s (AzureCluster.spec.location)", clusterName(e.env.Cluster), e.decision.Region)
		if e.decision.RegionSource == "spec.location" {
			by = fmt.Sprintf("the object's own %s is %s", e.spec.locationField, e.decision.Region)
		}
		e.regionConflicts = append(e.regionConflicts, regionConflict{rule: RuleLocationAnnotationIgnored, field: pathOf("metadata", "annotations", AnnotationLocation),
			msg: fmt.Sprintf("annotation %s names %s, but %s, which wins: every check and default uses %s. The annotation only applies to objects whose cluster cannot be found; remove it",
				AnnotationLocation, a, by, e.decision.Region)})
	}
	e.decision.Catalog = skus.SourceInfo{Name: "none"}
	if e.env.Catalog != nil {
		e.decision.Catalog = e.env.Catalog.Source(e.decision.Region)
	}
}

// regionConflict is a disagreement between region sources, found while resolving the region and
// reported with the rules (so that exemptions and ratcheting apply to it).
type regionConflict struct {
	rule  RuleID
	field fieldPath
	msg   string
}

func (e *evaluation) reportRegionConflicts() {
	for _, c := range e.regionConflicts {
		e.report(c.rule, c.field, "%s", c.msg)
	}
}

func clusterName(c ClusterInfo) string {
	if c.Name == "" {
		return "of the object"
	}
	return fmt.Sprintf("%q", c.Name)
}

// BindingUnbound is the binding, and the region source, of an object that nothing ties to a cluster.
const BindingUnbound = "unbound"

func bindingOf(c ClusterInfo) string {
	switch {
	case c.Name != "" && c.BoundBy != "":
		return c.BoundBy
	case c.Name != "":
		return "label"
	case c.Class != "":
		return "ClusterClass " + c.Class
	case c.BoundBy != "":
		// No cluster, but a reason (referrers of different clusters): not "unbound".
		return c.BoundBy
	default:
		return BindingUnbound
	}
}

func stringAt(obj any, p fieldPath) string {
	s, _, _ := lookupString(obj, p)
	return s
}

// report records a finding at the rule's configured action.
func (e *evaluation) report(rule RuleID, field fieldPath, format string, args ...any) {
	e.reportAtMost(rule, ActionDeny, field, format, args...)
}

// reportAtMost records a finding whose action is at most ceiling (a mixed verdict can only warn).
func (e *evaluation) reportAtMost(rule RuleID, ceiling Action, field fieldPath, format string, args ...any) {
	a := e.policy.ActionFor(rule)
	if a.Severity() > ceiling.Severity() {
		a = ceiling
	}
	e.decision.Findings = append(e.decision.Findings, Finding{
		Rule: rule, Action: a, Field: field.String(), Message: fmt.Sprintf(format, args...),
		key: string(rule) + " " + identity(e.obj, field),
	})
}

// enforce applies the exemptions, ratcheting and the policy's warn-only switch, then decides.
func (e *evaluation) enforce() {
	switch {
	case lookupPresent(e.obj, pathOf("metadata", "deletionTimestamp")):
		e.decision.Exempt = "deleting"
	case e.req.Operation == OperationUpdate && e.old != nil && reflect.DeepEqual(e.obj["spec"], e.old["spec"]):
		// Labels, annotations, finalizers and owner references of old objects must stay editable
		// even when the object would not pass today's policy.
		e.decision.Exempt = "metadata-only update"
	case e.req.DryRun && lookupPresent(e.obj, pathOf("metadata", "annotations", AnnotationTopologyDryRun)):
		// CAPI's topology controller dry-runs templates to compute diffs; denying them would wedge
		// the ClusterClass reconcile instead of reporting a clear error on the real request.
		e.decision.Exempt = "topology dry-run"
	}
	var stored map[string]bool
	if e.decision.Exempt == "" && e.req.Operation == OperationUpdate && e.old != nil {
		stored = e.storedFindings()
	}
	for i := range e.decision.Findings {
		f := &e.decision.Findings[i]
		switch {
		case e.decision.Exempt != "":
			f.Action = ActionAudit
		case stored[f.key] && f.Action != ActionAudit:
			// Ratcheting, as CRD validation ratcheting means it: a finding the stored object already
			// produced (same rule, same field, list items by identity) is recorded, not enforced, so
			// an unrelated edit of an old object is not blocked by a rule it predates. Anything the
			// update adds is judged in full.
			f.Action = ActionAudit
			f.Ratcheted = true
			f.Message += " (pre-existing on the stored object: recorded, not enforced on UPDATE)"
		}
		if e.policy.WarnOnly && f.Action == ActionDeny {
			f.Action = ActionWarn
			f.Message = "[warn-only: would deny] " + f.Message
			e.decision.WarnOnly = true
		}
	}
	e.decision.Allowed = len(e.decision.Violations()) == 0
}

// storedFindings evaluates the stored (old) object with the same policy and environment, as stored
// state (no defaults, no exemptions, no comparison with an older version), and returns the keys of
// its findings.
func (e *evaluation) storedFindings() map[string]bool {
	s := &evaluation{policy: e.policy, env: e.env, spec: e.spec, obj: e.old, nsLabels: e.nsLabels,
		req: Request{Operation: OperationUpdate, Namespace: e.req.Namespace, NamespaceLabels: e.req.NamespaceLabels, DryRun: e.req.DryRun}}
	s.decision = &Decision{Kind: e.decision.Kind, Namespace: e.decision.Namespace, Name: e.decision.Name}
	s.resolveRegion()
	s.validate()
	keys := make(map[string]bool, len(s.decision.Findings))
	for _, f := range s.decision.Findings {
		keys[f.key] = true
	}
	return keys
}

// replayMutation runs the defaulting on a scratch copy of the object, for the validating stage: the
// object is judged as received, but the findings about defaults that cannot apply (default-not-applied)
// are still reported, and the paths the default would fill are remembered for the messages of rules
// that find them missing.
func (e *evaluation) replayMutation() {
	received := e.obj
	e.obj = scratchCopy(received)
	e.mutate()
	e.obj = received
	e.wouldInject = make(map[string]bool, len(e.decision.Injected))
	for _, p := range e.decision.Injected {
		e.wouldInject[p] = true
	}
	e.decision.Patch, e.decision.Injected = []jsonpatch.Operation{}, nil
}

// reportMissingDefaults records, after replayMutation, what the organisation default would have
// injected on CREATE but the stored object lacks.
func (e *evaluation) reportMissingDefaults() {
	if len(e.wouldInject) == 0 {
		return
	}
	missing := make([]string, 0, len(e.wouldInject))
	for p := range e.wouldInject {
		missing = append(missing, p)
	}
	slices.Sort(missing)
	e.decision.MissingDefaults = missing
	why := "it has no " + AnnotationInjected + " annotation: it was created before the default existed, or while the mutating webhook was absent or disabled"
	if prev := stringAt(e.obj, pathOf("metadata", "annotations", AnnotationInjected)); prev != "" {
		why = fmt.Sprintf("its %s annotation records only %s: the default changed after the object was created", AnnotationInjected, prev)
	}
	e.report(RuleCreatedBeforeDefault, e.spec.machine,
		"organisation default %q applies to this object, but it lacks %s; %s. Machines built from it do not get these settings: set them on the object (or recreate it, for immutable templates) and roll the machines",
		e.decision.DefaultName, strings.Join(missing, ", "), why)
}

// scratchCopy is a copy of obj that the mutation may fill without touching obj: it writes only
// under spec and into metadata.annotations, so those are copied deeply and the rest (managed fields,
// status, often most of an object) is shared.
func scratchCopy(obj map[string]any) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		out[k] = v
	}
	if spec, ok := obj["spec"]; ok {
		out["spec"] = cloneJSON(spec)
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		m := make(map[string]any, len(md))
		for k, v := range md {
			m[k] = v
		}
		if a, ok := md["annotations"]; ok {
			m["annotations"] = cloneJSON(a)
		}
		out["metadata"] = m
	}
	return out
}

// cloneJSON deep-copies a decoded JSON value.
func cloneJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, c := range t {
			m[k] = cloneJSON(c)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, c := range t {
			s[i] = cloneJSON(c)
		}
		return s
	default:
		return v
	}
}

func lookupPresent(obj any, p fieldPath) bool {
	v, ok := lookup(obj, p)
	return ok && v != nil
}
