package capzflavors

import (
	"bytes"
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// baseVars are the two variables clusterctl always has.
func baseVars(extra map[string]string) map[string]string {
	v := map[string]string{VarClusterName: "c1", VarNamespace: "ns1"}
	maps.Copy(v, extra)
	return v
}

// renderValue renders a one-object template whose spec.v is the given YAML value and returns
// what spec.v became.
func renderValue(t *testing.T, value string, vars map[string]string) (any, error) {
	t.Helper()
	raw := "apiVersion: cluster.x-k8s.io/v1beta1\nkind: Cluster\nmetadata:\n  name: x\nspec:\n  v: " + value + "\n"
	out, err := render("test", []byte(raw), vars)
	if err != nil {
		return nil, err
	}
	objs, err := Objects(out)
	if err != nil {
		t.Fatalf("rendered output does not parse: %v\n%s", err, out)
	}
	if len(objs) != 1 {
		t.Fatalf("want one object, got %d:\n%s", len(objs), out)
	}
	v, _, _ := unstructured.NestedFieldNoCopy(objs[0].Object, "spec", "v")
	return v, nil
}

func TestRenderSyntax(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		vars        map[string]string
		want        any
	}{
		{"plain", `"${A}"`, map[string]string{"A": "x"}, "x"},
		{"set but empty counts as set", `"<${A}>"`, map[string]string{"A": ""}, "<>"},
		{":= unset", `"${A:=d}"`, nil, "d"},
		{":= empty uses the default", `"${A:=d}"`, map[string]string{"A": ""}, "d"},
		{":= set", `"${A:=d}"`, map[string]string{"A": "y"}, "y"},
		{":- unset", `"${A:-https://kubernetes.default.svc.cluster.local}"`, nil, "https://kubernetes.default.svc.cluster.local"},
		{"nested default", `"${AZURE_VNET_NAME:=${CLUSTER_NAME}-vnet}"`, nil, "c1-vnet"},
		{"nested default not used", `"${AZURE_VNET_NAME:=${B}-vnet}"`, map[string]string{"AZURE_VNET_NAME": "v"}, "v"},
		{"suffix removal, as flatcar-sysext uses it", `"${KUBERNETES_VERSION%.*}"`, map[string]string{VarKubernetesVersion: "v1.35.0"}, "v1.35"},
		{"empty quoted default, as the SSH keys use it", `${AZURE_SSH_PUBLIC_KEY_B64:=""}`, nil, ""},
		{"legacy blanks", `"${ A }${B }${ A}"`, map[string]string{"A": "a", "B": "b"}, "aba"},
		{"$$ escapes, $( and $NAME stay", `"$${A} $(hostname) $HOME"`, map[string]string{"A": "no"}, "${A} $(hostname) $HOME"},
		{"number stays a number", `${WORKER_MACHINE_COUNT:=2}`, map[string]string{VarWorkerMachineCount: "3"}, int64(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := renderValue(t, tc.value, baseVars(tc.vars))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("spec.v = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestRenderNamesMissingVariables(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		vars        map[string]string
		want        []string
	}{
		{"plain", `"${A}"`, nil, []string{"A"}},
		{"sorted and unique", `"${Z}${A}${Z}"`, nil, []string{"A", "Z"}},
		{"empty default is no default", `"${A:=}"`, nil, []string{"A"}},
		{"a default's own variable", `"${A:=${B}}"`, nil, []string{"B"}},
		{"transformations need a value", `"${KUBERNETES_VERSION%.*}"`, nil, []string{VarKubernetesVersion}},
		// clusterctl would only look at the first occurrence and render the second as "".
		{"any occurrence without default", `"${A:=x}-${A}"`, nil, []string{"A"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderValue(t, tc.value, baseVars(tc.vars))
			var missing *MissingVariablesError
			if !errors.As(err, &missing) {
				t.Fatalf("err = %v, want a MissingVariablesError", err)
			}
			if !slices.Equal(missing.Names, tc.want) {
				t.Errorf("missing %v, want %v", missing.Names, tc.want)
			}
			for _, n := range tc.want {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("message %q does not name %s", err, n)
				}
			}
		})
	}
}

func TestRenderClusterctlOptions(t *testing.T) {
	t.Run("machine counts default as clusterctl's flags do, over the template's defaults", func(t *testing.T) {
		for name, want := range map[string]int64{"${CONTROL_PLANE_MACHINE_COUNT:=3}": 1, "${WORKER_MACHINE_COUNT:=2}": 0} {
			got, err := renderValue(t, name, baseVars(nil))
			if err != nil || got != want {
				t.Errorf("%s = %#v (%v), want %d", name, got, err, want)
			}
		}
	})
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"cluster name required", map[string]string{VarClusterName: ""}, VarClusterName},
		{"cluster name must be DNS", map[string]string{VarClusterName: "My_Cluster"}, VarClusterName},
		{"namespace required", map[string]string{VarNamespace: ""}, VarNamespace},
		{"namespace must be a DNS label", map[string]string{VarNamespace: "a.b"}, VarNamespace},
		{"kubernetes version must be semantic", map[string]string{VarKubernetesVersion: "1.35"}, VarKubernetesVersion},
		{"control plane needs a machine", map[string]string{VarControlPlaneMachineCount: "0"}, VarControlPlaneMachineCount},
		{"workers not negative", map[string]string{VarWorkerMachineCount: "-1"}, VarWorkerMachineCount},
		{"counts are integers", map[string]string{VarWorkerMachineCount: "two"}, VarWorkerMachineCount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderValue(t, `"x"`, baseVars(tc.vars))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestRenderOutputIsClusterctls(t *testing.T) {
	in := `kind: Cluster
apiVersion: cluster.x-k8s.io/v1beta1
metadata:
  name: ${CLUSTER_NAME}
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata: {name: "${CLUSTER_NAME}-md-0", namespace: default}
spec: {replicas: "${WORKER_MACHINE_COUNT:=2}", clusterName: "${CLUSTER_NAME}"}
`
	// Keys sorted, every object moved into NAMESPACE (with or without a namespace before), one
	// "---" line between documents: what clusterctl's FromUnstructured and printYamlOutput write.
	want := `apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata:
  name: c1
  namespace: ns1
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata:
  name: c1-md-0
  namespace: ns1
spec:
  clusterName: c1
  replicas: "0"
`
	vars := baseVars(nil)
	before := maps.Clone(vars)
	out, err := render("test", []byte(in), vars)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if !maps.Equal(vars, before) {
		t.Errorf("render changed the caller's map: %v", vars)
	}
}

func TestRenderRefusesKindsItCannotPlace(t *testing.T) {
	in := "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\n"
	if _, err := render("test", []byte(in), baseVars(nil)); err == nil || !strings.Contains(err.Error(), "ClusterRoleBinding") {
		t.Errorf("err = %v, want a refusal naming ClusterRoleBinding", err)
	}
}

var regions = []string{"eastus", "southcentralus"}

// TestEveryFlavorRendersWithDefaultVars is the contract the regression suite relies on: every
// flavor of the pinned CAPZ renders in both regions, completely, with its objects in file order.
func TestEveryFlavorRendersWithDefaultVars(t *testing.T) {
	flavors, err := Flavors()
	if err != nil {
		t.Fatal(err)
	}
	for _, region := range regions {
		vars := DefaultVars(region)
		for _, f := range flavors {
			t.Run(region+"/"+f.Name, func(t *testing.T) {
				out, err := Render(f, vars)
				if err != nil {
					t.Fatal(err)
				}
				if i := bytes.Index(out, []byte("${")); i >= 0 {
					t.Fatalf("leftover variable at byte %d: %q", i, out[i:min(len(out), i+60)])
				}
				objs, err := Objects(out)
				if err != nil {
					t.Fatal(err)
				}
				raw, err := f.Raw()
				if err != nil {
					t.Fatal(err)
				}
				rawObjs, err := Objects(raw)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := kindsOf(objs), kindsOf(rawObjs); !slices.Equal(got, want) {
					t.Errorf("objects out of file order or lost:\n got %v\nwant %v", got, want)
				}
				for _, o := range objs {
					if o.GetNamespace() != vars[VarNamespace] {
						t.Errorf("%s %s in namespace %q, want %q", o.GetKind(), o.GetName(), o.GetNamespace(), vars[VarNamespace])
					}
					if !strings.HasPrefix(o.GetName(), vars[VarClusterName]) && o.GetKind() != "AzureClusterIdentity" && o.GetKind() != "ClusterClass" {
						t.Errorf("%s %q is not named after the cluster", o.GetKind(), o.GetName())
					}
					checkRegion(t, o, region)
				}
			})
		}
	}
}

// checkRegion finds the region wherever the flavors put it and requires it to be the one rendered.
func checkRegion(t *testing.T, o *unstructured.Unstructured, region string) {
	t.Helper()
	paths := map[string][]string{
		"AzureCluster":             {"spec", "location"},
		"AzureClusterTemplate":     {"spec", "template", "spec", "location"},
		"AzureManagedControlPlane": {"spec", "location"},
	}
	if p, ok := paths[o.GetKind()]; ok {
		// The RKE2 class sets the location through a ClusterClass variable instead.
		if loc, found, _ := unstructured.NestedString(o.Object, p...); found && loc != region {
			t.Errorf("%s %s: location %q, want %q", o.GetKind(), o.GetName(), loc, region)
		}
	}
	// ASO resources embedded in AzureASOManaged* carry their own location.
	resources, _, _ := unstructured.NestedSlice(o.Object, "spec", "resources")
	for _, r := range resources {
		if loc, found, _ := unstructured.NestedString(r.(map[string]any), "spec", "location"); found && loc != region {
			t.Errorf("%s %s: embedded resource location %q, want %q", o.GetKind(), o.GetName(), loc, region)
		}
	}
}

func kindsOf(objs []*unstructured.Unstructured) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.GetAPIVersion() + " " + o.GetKind()
	}
	return out
}

// varRef finds variable names the way a reader of the templates would, independently of the
// envsubst parser that Variables uses.
var varRef = regexp.MustCompile(`\$\{\s*([A-Za-z_][A-Za-z0-9_]*)`)

func TestVariablesFindsEveryReference(t *testing.T) {
	flavors, err := Flavors()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flavors {
		raw, err := f.Raw()
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, m := range varRef.FindAllStringSubmatch(string(raw), -1) {
			want = append(want, m[1])
		}
		slices.Sort(want)
		want = slices.Compact(want)
		vs, err := f.Variables()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vs {
			got = append(got, v.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Variables() = %v, the file references %v", f.Name, got, want)
		}
	}
}

func TestVariablesOfTheDefaultFlavor(t *testing.T) {
	f, err := Lookup("default")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := f.Variables()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Variable{}
	for _, v := range vs {
		byName[v.Name] = v
	}
	for _, want := range []Variable{
		{Name: "CLUSTER_NAME", Required: true},
		{Name: "AZURE_LOCATION", Required: true},
		{Name: "AZURE_CONTROL_PLANE_MACHINE_TYPE", Required: true},
		{Name: "AZURE_VNET_NAME", HasDefault: true, Default: "${CLUSTER_NAME}-vnet"},
		{Name: "AZURE_SSH_PUBLIC_KEY_B64", HasDefault: true, Default: `""`},
		{Name: "WORKER_MACHINE_COUNT", HasDefault: true, Default: "2"},
	} {
		if got := byName[want.Name]; got != want {
			t.Errorf("%s: got %+v, want %+v", want.Name, got, want)
		}
	}
}

// TestDefaultVarsFitTheFlavors keeps DefaultVars honest both ways: it covers every variable some
// flavor requires, and sets nothing else except what clusterctl sets itself and the documented
// OverriddenTemplateDefaults, so that the templates' own defaults are what gets tested.
func TestDefaultVarsFitTheFlavors(t *testing.T) {
	flavors, err := Flavors()
	if err != nil {
		t.Fatal(err)
	}
	required, defaulted := map[string]bool{}, map[string]bool{}
	for _, f := range flavors {
		vs, err := f.Variables()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			required[v.Name] = required[v.Name] || v.Required
			defaulted[v.Name] = defaulted[v.Name] || v.HasDefault
		}
	}
	for name := range OverriddenTemplateDefaults {
		if !defaulted[name] {
			t.Errorf("OverriddenTemplateDefaults lists %s, which no template defaults any more", name)
		}
	}
	clusterctlSets := map[string]bool{VarClusterName: true, VarNamespace: true, VarKubernetesVersion: true, VarControlPlaneMachineCount: true, VarWorkerMachineCount: true}
	for _, region := range regions {
		dv := DefaultVars(region)
		if dv["AZURE_LOCATION"] != region {
			t.Errorf("AZURE_LOCATION = %q, want %q", dv["AZURE_LOCATION"], region)
		}
		for name, req := range required {
			if _, ok := dv[name]; req && !ok {
				t.Errorf("DefaultVars(%s) lacks %s, which a flavor requires", region, name)
			}
		}
		for name := range dv {
			if _, why := OverriddenTemplateDefaults[name]; why {
				continue
			}
			if !required[name] && !clusterctlSets[name] {
				t.Errorf("DefaultVars(%s) sets %s, which no flavor requires: it would override a template default", region, name)
			}
		}
	}
}
