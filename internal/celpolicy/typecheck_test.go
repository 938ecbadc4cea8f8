package celpolicy

// Type checking against the CAPZ CRD schemas, with the apiserver's own type checker (the one that
// fills a ValidatingAdmissionPolicy's status.typeChecking): a misspelt field (dataDisk for
// dataDisks) compiles against dyn and silently finds nothing at run time, but not against the schema.
//
// The schemas are built as the apiserver publishes them (apiextensions-apiserver's OpenAPI builder,
// which adds ObjectMeta) and resolved as its discovery-based resolver does (resolver.PopulateRefs).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/controller/openapi/builder"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/openapi/resolver"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
)

// crdSchemas resolves the schemas of the CAPZ kinds in every served version.
type crdSchemas struct {
	schemas  map[schema.GroupVersionKind]*spec.Schema
	versions map[string][]string // resource → served versions
	mapper   *meta.DefaultRESTMapper
}

func (c *crdSchemas) ResolveSchema(gvk schema.GroupVersionKind) (*spec.Schema, error) {
	if s, ok := c.schemas[gvk]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("%v: %w", gvk, resolver.ErrSchemaNotFound)
}

func loadCRDSchemas(t *testing.T) *crdSchemas {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(goTool, "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/cluster-api-provider-azure").Output()
	if err != nil {
		t.Fatalf("locating the CAPZ module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "bases")
	c := &crdSchemas{schemas: map[schema.GroupVersionKind]*spec.Schema{}, versions: map[string][]string{}, mapper: meta.NewDefaultRESTMapper(nil)}
	for _, k := range append(machineKinds, azureManagedMachinePool, azureManagedControlPlane) {
		data, err := os.ReadFile(filepath.Join(dir, "infrastructure.cluster.x-k8s.io_"+k.resource+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatal(err)
		}
		if crd.Spec.Names.Kind != k.kind || crd.Spec.Names.Plural != k.resource {
			t.Fatalf("the CRD of %s names %s/%s", k.kind, crd.Spec.Names.Kind, crd.Spec.Names.Plural)
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: k.kind}
			doc, err := builder.BuildOpenAPIV3(&crd, v.Name, builder.Options{})
			if err != nil {
				t.Fatalf("%v: %v", gvk, err)
			}
			const prefix = "#/components/schemas/"
			var root string
			for name, s := range doc.Components.Schemas {
				var gvks []schema.GroupVersionKind
				if err := s.Extensions.GetObject("x-kubernetes-group-version-kind", &gvks); err != nil {
					t.Fatal(err)
				}
				for _, g := range gvks {
					if g == gvk {
						root = prefix + name
					}
				}
			}
			resolved, err := resolver.PopulateRefs(func(ref string) (*spec.Schema, bool) {
				s, ok := doc.Components.Schemas[strings.TrimPrefix(ref, prefix)]
				return s, ok
			}, root)
			if err != nil {
				t.Fatalf("%v: %v", gvk, err)
			}
			c.schemas[gvk] = resolved
			c.versions[k.resource] = append(c.versions[k.resource], v.Name)
			c.mapper.AddSpecific(gvk, gvk.GroupVersion().WithResource(k.resource), gvk.GroupVersion().WithResource(crd.Spec.Names.Singular), meta.RESTScopeNamespace)
		}
	}
	return c
}

// concrete returns constraints with the served versions in place of "*": the type checker, like the
// apiserver's, skips rules with wildcards (so a policy in a cluster shows no typeChecking status).
func (c *crdSchemas) concrete(m *admissionregistrationv1.MatchResources) *admissionregistrationv1.MatchResources {
	out := m.DeepCopy()
	for i := range out.ResourceRules {
		r := &out.ResourceRules[i]
		var versions []string
		for _, res := range r.Resources {
			versions = append(versions, c.versions[res]...)
		}
		r.APIVersions = versions
	}
	return out
}

func TestTypeCheckAgainstCAPZSchemas(t *testing.T) {
	crds := loadCRDSchemas(t)
	tc := &validating.TypeChecker{SchemaResolver: crds, RestMapper: crds.mapper}
	res := mustCompile(t, mustParse(t, "full.yaml", fullPolicy), nil)
	withSizes := mustCompile(t, mustParse(t, "full.yaml", fullPolicy), skucatalog.Embedded())
	check := func(name string, p *admissionregistrationv1.ValidatingAdmissionPolicy, exprs map[string]string) {
		p.Spec.MatchConstraints = crds.concrete(p.Spec.MatchConstraints)
		ctx := tc.CreateContext(p)
		// A check that resolved no schema would pass anything: a wrong field must be reported.
		if r := tc.CheckExpression(ctx, "object.spec.noSuchField == 1"); len(r) == 0 {
			t.Fatalf("%s: the type checker reports nothing on a field the schema lacks: no schema resolved", name)
		}
		for where, e := range exprs {
			if r := tc.CheckExpression(ctx, e); len(r) > 0 {
				t.Errorf("%s %s: %s", name, where, r)
			}
		}
		if w := tc.Check(p); len(w) > 0 {
			t.Errorf("%s: %v", name, w)
		}
	}
	for _, r := range []*Result{res, withSizes} {
		for _, p := range r.ValidatingPolicies {
			exprs := map[string]string{}
			for _, v := range p.Spec.Variables {
				exprs["variable "+v.Name] = v.Expression
			}
			for _, m := range p.Spec.MatchConditions {
				exprs["matchCondition "+m.Name] = m.Expression
			}
			check(p.Name, p.DeepCopy(), exprs)
		}
		// A mutating policy's variables hold all its field accesses; they are type-checked as a
		// validating policy's would be (JSONPatch, in the mutation itself, is unknown to the type
		// checker, and the runtime tests compile the mutation).
		for _, p := range r.MutatingPolicies {
			exprs := map[string]string{}
			for _, v := range p.Spec.Variables {
				exprs["variable "+v.Name] = v.Expression
			}
			check(p.Name, &admissionregistrationv1.ValidatingAdmissionPolicy{Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				ParamKind: p.Spec.ParamKind, MatchConstraints: p.Spec.MatchConstraints.DeepCopy(), Variables: p.Spec.Variables,
			}}, exprs)
		}
	}
}
