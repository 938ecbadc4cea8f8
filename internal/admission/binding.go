package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/objmeta"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// reviewBinding is the binding-time check: a MachineDeployment, KubeadmControlPlane or MachinePool
// is created, or pointed at another template. The webhook configuration's matchConditions keep
// scaling and controller updates away; the check below repeats the test, so that a configuration
// without them (an older chart, config/ edited by hand) costs a lookup, not a wrong answer.
func (d *decider) reviewBinding(ctx context.Context, req admission.Request, e *decisionlog.Entry) admission.Response {
	k, ok := capiref.Lookup(req.Kind.Group, req.Kind.Kind)
	if !ok || !k.Binding || req.Operation == admissionv1.Delete {
		return admission.Allowed("not a binding capz-encryption-webhook checks")
	}
	obj, meta, err := decodeMap(req.Object.Raw)
	if err != nil {
		e.Err = fmt.Errorf("capz-encryption-webhook: %w", err)
		return admission.Errored(http.StatusBadRequest, e.Err)
	}
	if e.Name == "" {
		e.Name = meta.DisplayName()
	}
	ns := req.Namespace
	if ns == "" {
		ns = meta.Namespace
	}
	ref, hasRef := k.InfrastructureRef(obj)
	var oldRef capiref.Ref
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old, _, err := decodeMap(req.OldObject.Raw)
		if err != nil {
			e.Err = fmt.Errorf("capz-encryption-webhook: oldObject: %w", err)
			return admission.Errored(http.StatusBadRequest, e.Err)
		}
		oldRef, _ = k.InfrastructureRef(old)
		if oldRef.Key() == ref.Key() {
			e.Decision = &policy.Decision{Kind: meta.Kind, Namespace: ns, Name: meta.DisplayName(), Allowed: true, Exempt: "infrastructure reference unchanged"}
			return admission.Allowed("")
		}
	}
	if !hasRef {
		// CAPI's CRDs require the reference; without one there is nothing to bind.
		e.Decision = &policy.Decision{Kind: meta.Kind, Namespace: ns, Name: meta.DisplayName(), Allowed: true, Exempt: "no infrastructure reference"}
		return admission.Allowed("")
	}
	read := func(r capiref.Ref) []byte {
		group := r.Group
		if group == "" {
			group = policy.Group
		}
		o, found := d.cfg.Objects.Object(ctx, schema.GroupKind{Group: group, Kind: r.Kind}, ns, r.Name)
		if !found {
			return nil
		}
		b, _ := json.Marshal(o)
		return b
	}
	breq := policy.BindingRequest{
		Operation: policy.Operation(req.Operation), Object: req.Object.Raw, Kind: meta.Kind, Namespace: ns, Name: meta.DisplayName(),
		RefField: ref.Field, RefGroup: ref.Group, RefKind: ref.Kind, RefName: ref.Name, DryRun: e.DryRun,
	}
	breq.Template = read(ref)
	// The cluster matters only when there is a template to judge in it. In CAPZ's flavors the
	// MachineDeployment or KubeadmControlPlane comes before its template, which is then judged at
	// its own CREATE: resolving the cluster first would cost cache reads, and live ones when the
	// Cluster was created a moment before, for nothing.
	var info clusterinfo.Result
	if breq.Template != nil {
		info = d.cfg.Resolver.Resolve(ctx, clusterinfo.SubjectOf(meta, ns, obj))
		breq.NamespaceLabels = info.NamespaceLabels
	}
	if oldRef.Kind != "" {
		breq.OldTemplate = read(oldRef)
	}
	breq.Replicas, breq.ReplicasKnown = capiref.Replicas(obj)
	dec, err := policy.EvaluateBinding(d.cfg.Policies.Get(), breq, info.Environment(d.cfg.Catalog, d.cfg.DES, d.cfg.Now()))
	if err != nil {
		e.Err = fmt.Errorf("capz-encryption-webhook: %w", err)
		return admission.Errored(http.StatusBadRequest, e.Err)
	}
	e.Decision = dec
	if !dec.Catalog.AsOf.IsZero() {
		e.CatalogAge = d.cfg.Now().Sub(dec.Catalog.AsOf)
	}
	return validateResponse(dec, req.Kind.Group)
}

// decodeMap decodes the object once, for its fields and its identity (as policy.DecodeObject does
// for the machine objects).
func decodeMap(raw []byte) (map[string]any, objmeta.Meta, error) {
	if len(raw) == 0 {
		return nil, objmeta.Meta{}, errors.New("the request carries no object")
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, objmeta.Meta{}, fmt.Errorf("the object is not valid JSON: %w", err)
	}
	meta, err := objmeta.FromMapStrict(obj)
	return obj, meta, err
}
