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
	def      *Default     // the organisation default that applies (CREATE of a mutable kind), if any
	// wouldInject holds the paths (dotted) that the organisation default fills when the validating
	// stage replays the mutation on a scratch copy: a missing value there means the mutating webhook
	// did not inject it, which the messages say.
	wouldInject map[string]bool
}

// Evaluate decides on one request. In StageAdmit it injects the organisation defaults (CREATE only)
// and then validates the object as it would be stored; in StageValidate it judges the object exactly
// as received. It is deterministic and idempotent: evaluating the patched object again yields the same
// findings and an empty patch, so `check` (StageAdmit) and the webhook pair (StageAdmit for the patch,
// StageValidate on the patched object) reach the same verdict.
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
	e := &evaluation{p: p, req: req, env: env, spec: kinds[kind], obj: obj}
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
		if req.Stage == StageValidate {
			e.replayMutation()
		} else {
			e.mutate()
		}
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
	e.hitCapped(rule, ActionDeny, field, format, args...)
}

// hitCapped records a finding whose action is at most max (a mixed verdict can only warn).
func (e *evaluation) hitCapped(rule RuleID, max Action, field fieldPath, format string, args ...any) {
	a := e.p.ActionFor(rule)
	if severity(a) > severity(max) {
		a = max
	}
	e.d.Findings = append(e.d.Findings, Finding{
		Rule: rule, Action: a, Field: field.String(), Message: fmt.Sprintf(format, args...),
		key: string(rule) + " " + identity(e.obj, field),
	})
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
	var stored map[string]bool
	if e.d.Exempt == "" && e.req.Operation == OperationUpdate && e.old != nil {
		stored = e.storedFindings()
	}
	for i := range e.d.Findings {
		f := &e.d.Findings[i]
		switch {
		case e.d.Exempt != "":
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
		if e.p.DryRun && f.Action == ActionDeny {
			f.Action = ActionWarn
			f.Message = "[dry-run: would deny] " + f.Message
			e.d.DryRun = true
		}
	}
	e.d.Allowed = len(e.d.Violations()) == 0
}

// storedFindings evaluates the stored (old) object with the same policy and environment, as stored
// state (no defaults, no exemptions, no comparison with an older version), and returns the keys of
// its findings.
func (e *evaluation) storedFindings() map[string]bool {
	s := &evaluation{p: e.p, env: e.env, spec: e.spec, obj: e.old, nsLabels: e.nsLabels,
		req: Request{Operation: OperationUpdate, Namespace: e.req.Namespace, NamespaceLabels: e.req.NamespaceLabels, DryRun: e.req.DryRun}}
	s.d = &Decision{Kind: e.d.Kind, Namespace: e.d.Namespace, Name: e.d.Name}
	s.resolveRegion()
	s.validate()
	keys := make(map[string]bool, len(s.d.Findings))
	for _, f := range s.d.Findings {
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
	e.obj = cloneJSON(received).(map[string]any)
	e.mutate()
	e.obj = received
	e.wouldInject = make(map[string]bool, len(e.d.Injected))
	for _, p := range e.d.Injected {
		e.wouldInject[p] = true
	}
	e.d.Patch, e.d.Injected = []jsonpatch.Operation{}, nil
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
