package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/skus"
)

// evaluation carries the state of one Evaluate call.
type evaluation struct {
	p        *Policy
	req      Request
	env      Environment
	spec     kindSpec
	obj      map[string]any // decoded object; mutate() changes it as it builds the patch
	old      map[string]any // decoded old object on UPDATE
	nsLabels map[string]string
	d        *Decision
	size     *sizeVerdict // computed once, lazily
	// inputs maps a finding (by index) to the fields whose values produced it, for ratcheting.
	inputs map[int][]fieldPath
}

// Evaluate decides on one request: it injects the organisation defaults (CREATE only) and then
// validates the object as it would be stored. It is deterministic and idempotent: evaluating the
// patched object again yields the same findings and an empty patch, which is what lets the mutating
// and the validating webhook share it.
func Evaluate(p *Policy, req Request, env Environment) (*Decision, error) {
	if p == nil {
		p = DefaultPolicy()
	}
	obj, err := decodeObject(req.Object, "object")
	if err != nil {
		return nil, err
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if !Handles(apiVersion, kind) {
		return nil, fmt.Errorf("%s %s is not a kind this policy handles (%s of %s)", apiVersion, kind, strings.Join(Kinds(), ", "), Group)
	}
	e := &evaluation{p: p, req: req, env: env, spec: kinds[kind], obj: obj, inputs: map[int][]fieldPath{}}
	if req.Operation == OperationUpdate && len(req.OldObject) > 0 {
		if e.old, err = decodeObject(req.OldObject, "oldObject"); err != nil {
			return nil, err
		}
	}
	name := stringAt(obj, pathOf("metadata", "name"))
	if name == "" {
		name = stringAt(obj, pathOf("metadata", "generateName"))
	}
	ns, _, _ := lookupString(obj, pathOf("metadata", "namespace"))
	if ns == "" {
		ns = req.Namespace
	}
	e.nsLabels = req.NamespaceLabels
	if e.nsLabels == nil && ns != "" {
		e.nsLabels = map[string]string{"kubernetes.io/metadata.name": ns}
	}
	e.d = &Decision{Kind: kind, Namespace: ns, Name: name, Patch: []jsonpatch.Operation{}, Findings: []Finding{}}
	e.resolveRegion()

	if req.Operation == OperationDelete {
		// Deletion is never blocked: a policy that prevents cleaning up is worse than none.
		e.d.Allowed, e.d.Exempt = true, "delete"
		return e.d, nil
	}
	if e.spec.mutable && req.Operation == OperationCreate {
		e.mutate()
	}
	e.validate()
	e.enforce()
	return e.d, nil
}

// decodeObject decodes JSON keeping numbers as json.Number, so that nothing the policy does can
// change how a number is written.
func decodeObject(raw []byte, what string) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, fmt.Errorf("%s is empty", what)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%s is not valid JSON: %w", what, err)
	}
	// Decoder.More is false before a stray '}' or ']', so check the rest of the input directly.
	if len(bytes.TrimSpace(raw[dec.InputOffset():])) > 0 {
		return nil, fmt.Errorf("%s has trailing data after the JSON object", what)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New(what + " is not a JSON object")
	}
	return m, nil
}

// resolveRegion applies DESIGN.md's order: the object's override annotation, the object's own
// location (AzureMachinePool), what the caller resolved (Cluster → AzureCluster, namespace), and
// finally the policy's default location.
func (e *evaluation) resolveRegion() {
	set := func(region, source string) bool {
		region = skus.NormalizeRegion(region)
		if region == "" {
			return false
		}
		e.d.Region, e.d.RegionSource = region, source
		return true
	}
	ann, _, _ := lookupString(e.obj, pathOf("metadata", "annotations", AnnotationLocation))
	switch {
	case set(ann, "annotation"):
	case e.spec.locationField != nil && set(stringAt(e.obj, e.spec.locationField), "spec.location"):
	default:
		found := false
		for _, c := range e.env.Locations {
			if set(c.Location, c.Source) {
				found = true
				break
			}
		}
		if !found && !set(e.p.DefaultLocation, "policy-default") {
			e.d.RegionSource = "unknown"
		}
	}
	switch {
	case e.env.Catalog == nil:
		e.d.Catalog = skus.SourceInfo{Name: "none"}
	default:
		e.d.Catalog = e.env.Catalog.Source(e.d.Region)
	}
}

func stringAt(obj any, p fieldPath) string {
	s, _, _ := lookupString(obj, p)
	return s
}

// hit records a finding at the rule's configured action.
func (e *evaluation) hit(rule RuleID, field fieldPath, format string, args ...any) {
	e.hitCapped(rule, ActionDeny, field, nil, format, args...)
}

// hitCapped records a finding whose action is at most max (a mixed verdict can only warn). inputs
// are the fields whose values produced the finding (default: field), used to tell a pre-existing
// violation from a new one on UPDATE.
func (e *evaluation) hitCapped(rule RuleID, max Action, field fieldPath, inputs []fieldPath, format string, args ...any) {
	a := e.p.ActionFor(rule)
	if severity(a) > severity(max) {
		a = max
	}
	if inputs == nil {
		inputs = []fieldPath{field}
	}
	e.inputs[len(e.d.Findings)] = inputs
	e.d.Findings = append(e.d.Findings, Finding{Rule: rule, Action: a, Field: field.String(), Message: fmt.Sprintf(format, args...)})
}

func severity(a Action) int {
	switch a {
	case ActionDeny:
		return 2
	case ActionWarn:
		return 1
	default:
		return 0
	}
}

// enforce applies the exemptions and the dry-run switch, then decides.
func (e *evaluation) enforce() {
	switch {
	case lookupPresent(e.obj, pathOf("metadata", "deletionTimestamp")):
		e.d.Exempt = "deleting"
	case e.req.Operation == OperationUpdate && e.old != nil && reflect.DeepEqual(e.obj["spec"], e.old["spec"]):
		// Labels, annotations, finalizers and owner references of old objects must stay editable
		// even when the object would not pass today's policy.
		e.d.Exempt = "metadata-only update"
	case e.req.DryRun && lookupPresent(e.obj, pathOf("metadata", "annotations", AnnotationTopologyDryRun)):
		// CAPI's topology controller dry-runs templates to compute diffs; denying them would wedge
		// the ClusterClass reconcile instead of reporting a clear error on the real request.
		e.d.Exempt = "topology dry-run"
	}
	for i := range e.d.Findings {
		f := &e.d.Findings[i]
		switch {
		case e.d.Exempt != "":
			f.Action = ActionAudit
		case e.req.Operation == OperationUpdate && e.old != nil && f.Action != ActionAudit && e.preExisting(i):
			// Ratcheting: a violation the stored object already had is recorded, not enforced, so an
			// unrelated edit of an old object is not blocked by a rule it predates.
			f.Action = ActionAudit
			f.Message += " (pre-existing on the stored object: recorded, not enforced on UPDATE)"
		}
		if e.p.DryRun && f.Action == ActionDeny {
			f.Action = ActionWarn
			f.Message = "[dry-run: would deny] " + f.Message
			e.d.DryRun = true
		}
	}
	e.d.Allowed = len(e.d.Violations()) == 0
}

// preExisting reports whether every input of finding i has the same value in the old object.
func (e *evaluation) preExisting(i int) bool {
	for _, p := range e.inputs[i] {
		nv, nok := lookup(e.obj, p)
		ov, ook := lookup(e.old, p)
		if nok != ook || !reflect.DeepEqual(nv, ov) {
			return false
		}
	}
	return true
}

func lookupPresent(obj any, p fieldPath) bool {
	v, ok := lookup(obj, p)
	return ok && v != nil
}
