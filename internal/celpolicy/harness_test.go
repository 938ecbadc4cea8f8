package celpolicy

// The harness compiles and runs the generated policies with the kube-apiserver's own admission
// policy code (k8s.io/apiserver at the version go.mod pins): the same CEL environments, compiler,
// matchConditions matcher, validator and JSON patcher. What it writes by hand is only the glue that
// validating.compilePolicy and mutating.compilePolicy (unexported) perform: compile the variables,
// the conditions and the mutations with one CompositedCompiler, then hand them to NewValidator and
// NewJSONPatcher. The dispatchers (matchConstraints, bindings) are not run; the tests turn a denial
// into the binding's action.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
)

// Compatibility versions that the generated expressions must compile at, as new expressions (what
// the apiserver accepts when the object is created or updated). A kube-apiserver's compatibility
// version is one minor below its own: 1.29 is what a 1.30 apiserver, the first with
// ValidatingAdmissionPolicy v1, accepts; 1.35 is what a 1.36 apiserver, the first with
// MutatingAdmissionPolicy v1, accepts. environment.DefaultCompatibilityVersion is this library's.
var (
	vapVersions = []*version.Version{version.MajorMinor(1, 29), environment.DefaultCompatibilityVersion()}
	mapVersions = []*version.Version{version.MajorMinor(1, 35), environment.DefaultCompatibilityVersion()}
)

// compileVAP compiles p as validating.compilePolicy does, failing the test on any compilation error.
func compileVAP(t testing.TB, p *admissionregistrationv1.ValidatingAdmissionPolicy, compat *version.Version, mode environment.Type) validating.Validator {
	t.Helper()
	v, err := buildVAP(p, compat, mode)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func buildVAP(p *admissionregistrationv1.ValidatingAdmissionPolicy, compat *version.Version, mode environment.Type) (validating.Validator, error) {
	c, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(compat))
	if err != nil {
		return nil, err
	}
	hasParams := p.Spec.ParamKind != nil
	opts := plugincel.OptionalVariableDeclarations{HasParams: hasParams, HasAuthorizer: true}
	for _, v := range p.Spec.Variables {
		if r := c.CompileAndStoreVariable(&validating.Variable{Name: v.Name, Expression: v.Expression}, opts, mode); r.Error != nil {
			return nil, fmt.Errorf("%s at %s: variable %s: %w", p.Name, compat, v.Name, r.Error)
		}
	}
	var errs []error
	compile := func(what string, as []plugincel.ExpressionAccessor, o plugincel.OptionalVariableDeclarations) plugincel.ConditionEvaluator {
		ev := c.CompileCondition(as, o, mode)
		for _, err := range ev.CompilationErrors() {
			errs = append(errs, fmt.Errorf("%s at %s: %s: %w", p.Name, compat, what, err))
		}
		return ev
	}
	var matcher matchconditions.Matcher
	if len(p.Spec.MatchConditions) > 0 {
		var as []plugincel.ExpressionAccessor
		for i := range p.Spec.MatchConditions {
			as = append(as, (*matchconditions.MatchCondition)(&p.Spec.MatchConditions[i]))
		}
		matcher = matchconditions.NewMatcher(compile("matchConditions", as, opts), p.Spec.FailurePolicy, "policy", "validate", p.Name)
	}
	var vs, ms []plugincel.ExpressionAccessor
	for _, v := range p.Spec.Validations {
		vs = append(vs, &validating.ValidationCondition{Expression: v.Expression, Message: v.Message, Reason: v.Reason})
		ms = append(ms, &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression})
	}
	// Message expressions see no authorizer, as in the apiserver.
	v := validating.NewValidator(compile("validations", vs, opts), matcher, compile("auditAnnotations", nil, opts),
		compile("messageExpressions", ms, plugincel.OptionalVariableDeclarations{HasParams: hasParams}), p.Spec.FailurePolicy, nil)
	return v, errors.Join(errs...)
}

// compileMAP compiles p as mutating.compilePolicy does (it has no matchConditions).
// mapEvaluator is a compiled mutating policy: its patcher, and the compiler whose context holds the
// variables (the mutating dispatcher creates that context before it patches).
type mapEvaluator struct {
	patcher  patch.Patcher
	compiler *plugincel.CompositedCompiler
}

func compileMAP(t testing.TB, p *admissionregistrationv1.MutatingAdmissionPolicy, compat *version.Version, mode environment.Type) mapEvaluator {
	t.Helper()
	m, err := buildMAP(p, compat, mode)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func buildMAP(p *admissionregistrationv1.MutatingAdmissionPolicy, compat *version.Version, mode environment.Type) (mapEvaluator, error) {
	if len(p.Spec.MatchConditions) > 0 || len(p.Spec.Mutations) != 1 || p.Spec.Mutations[0].PatchType != admissionregistrationv1.PatchTypeJSONPatch {
		return mapEvaluator{}, fmt.Errorf("%s: the harness runs one JSON patch mutation without matchConditions", p.Name)
	}
	c, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(compat))
	if err != nil {
		return mapEvaluator{}, err
	}
	opts := plugincel.OptionalVariableDeclarations{HasParams: p.Spec.ParamKind != nil, HasAuthorizer: true}
	for _, v := range p.Spec.Variables {
		if r := c.CompileAndStoreVariable(&validating.Variable{Name: v.Name, Expression: v.Expression}, opts, mode); r.Error != nil {
			return mapEvaluator{}, fmt.Errorf("%s at %s: variable %s: %w", p.Name, compat, v.Name, r.Error)
		}
	}
	opts.HasPatchTypes = true
	ev := c.CompileMutatingEvaluator(&patch.JSONPatchCondition{Expression: p.Spec.Mutations[0].JSONPatch.Expression}, opts, mode)
	if errs := ev.CompilationErrors(); len(errs) > 0 {
		return mapEvaluator{}, fmt.Errorf("%s at %s: mutation: %w", p.Name, compat, errors.Join(errs...))
	}
	return mapEvaluator{patcher: patch.NewJSONPatcher(ev), compiler: c}, nil
}

// request is one admission request as the tests make it.
type request struct {
	op     admission.Operation
	obj    map[string]any // as JSON decodes it
	old    map[string]any // UPDATE only
	dryRun bool
}

var testNamespace = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{corev1.LabelMetadataName: "team-a"}}}

// toUnstructured decodes JSON as the apiserver does for custom resources (integers as int64).
func toUnstructured(t testing.TB, m map[string]any) *unstructured.Unstructured {
	t.Helper()
	if m == nil {
		return nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	obj, _, err := unstructured.UnstructuredJSONScheme.Decode(raw, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*unstructured.Unstructured)
}

func (r request) attributes(t testing.TB) (*admission.VersionedAttributes, schema.GroupVersionResource) {
	t.Helper()
	obj := toUnstructured(t, r.obj)
	gvk := obj.GroupVersionKind()
	gvr := gvk.GroupVersion().WithResource(resourceOf(t, gvk.Kind))
	var oldObj runtime.Object
	if r.old != nil {
		oldObj = toUnstructured(t, r.old)
	}
	attrs := admission.NewAttributesRecord(obj, oldObj, gvk, obj.GetNamespace(), obj.GetName(), gvr, "", r.op, nil, r.dryRun, &user.DefaultInfo{Name: "tester"})
	va := &admission.VersionedAttributes{Attributes: attrs, VersionedObject: admission.NewLazyObject(obj), VersionedKind: gvk}
	if oldObj != nil {
		va.VersionedOldObject = admission.NewLazyObject(oldObj)
	}
	return va, gvr
}

func resourceOf(t testing.TB, kind string) string {
	for _, k := range append(machineKinds, azureManagedMachinePool, azureManagedControlPlane) {
		if k.kind == kind {
			return k.resource
		}
	}
	t.Fatalf("no resource for kind %s", kind)
	return ""
}

// outcome of one validating policy on one request.
type outcome struct {
	denied  bool
	message string
}

func runVAP(t testing.TB, v validating.Validator, name string, r request) outcome {
	t.Helper()
	va, gvr := r.attributes(t)
	res := v.Validate(context.Background(), gvr, va, nil, testNamespace, celconfig.RuntimeCELCostBudget, nil)
	var out outcome
	for _, d := range res.Decisions {
		switch d.Evaluation {
		case validating.EvalError:
			t.Fatalf("%s: evaluation error: %s", name, d.Message)
		case validating.EvalDeny:
			out.denied = true
			out.message = d.Message
		}
	}
	return out
}

func runMAP(t testing.TB, m mapEvaluator, name string, r request) map[string]any {
	t.Helper()
	va, gvr := r.attributes(t)
	out, err := m.patcher.Patch(m.compiler.CreateContext(context.Background()), patch.Request{
		MatchedResource:     gvr,
		VersionedAttributes: va,
		ObjectInterfaces:    admission.NewObjectInterfacesFromScheme(runtime.NewScheme()),
		Namespace:           testNamespace,
	}, celconfig.RuntimeCELCostBudget)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out.(*unstructured.Unstructured).Object
}
