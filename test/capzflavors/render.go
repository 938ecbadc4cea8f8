package capzflavors

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/drone/envsubst/v2"
	"github.com/drone/envsubst/v2/parse"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"
	"sigs.k8s.io/yaml"
)

// Variables that `clusterctl generate cluster` sets itself, from its arguments and flags, before it
// reads the template (templateOptionsToVariables in cmd/clusterctl/client/config.go).
const (
	VarClusterName              = "CLUSTER_NAME"
	VarNamespace                = "NAMESPACE"
	VarKubernetesVersion        = "KUBERNETES_VERSION"
	VarControlPlaneMachineCount = "CONTROL_PLANE_MACHINE_COUNT"
	VarWorkerMachineCount       = "WORKER_MACHINE_COUNT"
)

// MissingVariablesError is returned when the template needs a variable that has no value and no
// default, as clusterctl refuses such a template.
type MissingVariablesError struct {
	Flavor string
	// Names are sorted.
	Names []string
}

func (e *MissingVariablesError) Error() string {
	// The wording follows clusterctl's, so that a failing test reads like the command users run.
	return fmt.Sprintf("flavor %q: value for variables [%s] is not set", e.Flavor, strings.Join(e.Names, ", "))
}

// Render substitutes vars into the flavor and returns the YAML that `clusterctl generate cluster
// NAME --flavor f.Name --target-namespace NS` prints for them (one document per object, "---"
// between them, file order kept), given:
//   - vars[CLUSTER_NAME] (a DNS-1123 subdomain) and vars[NAMESPACE] (a DNS-1123 label): clusterctl
//     always has both, from its argument and --target-namespace or the kubeconfig's namespace;
//   - CONTROL_PLANE_MACHINE_COUNT and WORKER_MACHINE_COUNT default to 1 and 0 when absent, as
//     clusterctl's flags do; note that clusterctl's 0 beats the templates' own ${WORKER_MACHINE_COUNT:=2};
//   - every other variable the template needs comes from vars; a key that is present counts as set
//     even when empty (clusterctl reads the environment the same way), and the syntax is clusterctl's
//     (github.com/drone/envsubst/v2: ${VAR}, ${VAR:=default}, ${VAR:-default}, nested defaults,
//     ${VAR%suffix} and the other bash-like operators, $$ for a literal $).
//
// Like clusterctl, every object is then put into vars[NAMESPACE]. Unlike clusterctl, a topology
// flavor does not get its ClusterClass added: clusterctl would fetch clusterclass-NAME.yaml from the
// provider's release or find it in the management cluster; the CAPZ module ships the ClusterClass
// as its own flavor (see the README).
//
// A variable that rendering would read while it has no value and no default is an error naming it,
// as in clusterctl, with one difference: clusterctl decides from a variable's first occurrence
// only, so a later ${VAR} without default renders as "" when the first one had a default; here any
// occurrence that needs a value counts.
func Render(f Flavor, vars map[string]string) ([]byte, error) {
	raw, err := f.Raw()
	if err != nil {
		return nil, err
	}
	return render(f.Name, raw, vars)
}

func render(name string, raw []byte, vars map[string]string) ([]byte, error) {
	vars, err := clusterctlOptions(name, vars)
	if err != nil {
		return nil, err
	}
	text := normalizeLegacyVars(string(raw))
	tree, err := parse.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("flavor %q: %w", name, err)
	}
	if missing := unsetVariables(tree.Root, vars); len(missing) > 0 {
		return nil, &MissingVariablesError{Flavor: name, Names: missing}
	}
	out, err := envsubst.Eval(text, func(v string) string { return vars[v] })
	if err != nil {
		return nil, fmt.Errorf("flavor %q: %w", name, err)
	}
	// clusterctl turns the result into objects, moves them into the target namespace and prints
	// each object again with sigs.k8s.io/yaml (repository.NewTemplate, fixTargetNamespace,
	// utilyaml.ToUnstructured and FromUnstructured); doing the same, with the same decoding (numbers
	// as float64), makes the output byte for byte what users get.
	var buf bytes.Buffer
	n := 0
	err = eachDocument([]byte(out), func(b []byte) error {
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return err
		}
		if m == nil {
			return nil
		}
		o := &unstructured.Unstructured{Object: m}
		if !isClusterAPIGroup(o.GroupVersionKind().Group) {
			// clusterctl keeps cluster-scoped kinds out of the namespace and rewrites
			// RoleBinding subjects, webhook and CRD namespaces and Certificates; this package only
			// knows Cluster API kinds, which are all namespaced.
			return fmt.Errorf("%s %s: only Cluster API kinds (*.cluster.x-k8s.io) are supported, their namespace handling is known",
				o.GetAPIVersion(), o.GetKind())
		}
		o.SetNamespace(vars[VarNamespace])
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		if n > 0 {
			buf.WriteString("---\n")
		}
		n++
		buf.Write(y)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("flavor %q after substitution: %w", name, err)
	}
	return buf.Bytes(), nil
}

// clusterctlOptions checks and completes the variables clusterctl derives from its arguments and
// flags, with clusterctl's rules, on a copy of vars.
func clusterctlOptions(name string, vars map[string]string) (map[string]string, error) {
	vars = maps.Clone(vars)
	if vars == nil {
		vars = map[string]string{}
	}
	if errs := validation.IsDNS1123Subdomain(vars[VarClusterName]); len(errs) > 0 {
		return nil, fmt.Errorf("flavor %q: %s %q: %s", name, VarClusterName, vars[VarClusterName], strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(vars[VarNamespace]); len(errs) > 0 {
		return nil, fmt.Errorf("flavor %q: %s %q: %s", name, VarNamespace, vars[VarNamespace], strings.Join(errs, "; "))
	}
	if v, ok := vars[VarKubernetesVersion]; ok && v != "" {
		if _, err := version.ParseSemantic(v); err != nil {
			return nil, fmt.Errorf("flavor %q: %s %q is not a semantic version: %w", name, VarKubernetesVersion, v, err)
		}
	}
	for _, c := range []struct {
		name         string
		def, minimum int64
	}{{VarControlPlaneMachineCount, 1, 1}, {VarWorkerMachineCount, 0, 0}} {
		v, ok := vars[c.name]
		if !ok {
			vars[c.name] = strconv.FormatInt(c.def, 10)
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < c.minimum {
			return nil, fmt.Errorf("flavor %q: %s %q: want an integer >= %d", name, c.name, v, c.minimum)
		}
	}
	return vars, nil
}

// legacyVar matches ${ VAR }, ${ VAR} and ${VAR }, which clusterctl still accepts (it strips the
// blanks before substituting); ${VAR} itself matches too and is left as it is.
var legacyVar = regexp.MustCompile(`\$\{\s*([A-Za-z0-9_$]+)\s*\}`)

func normalizeLegacyVars(s string) string { return legacyVar.ReplaceAllString(s, "$${$1}") }

// defaultOps are the envsubst operators that substitute their argument when the variable is empty:
// the forms clusterctl documents (:= and :-) and their bash cousins without the colon. Any other
// operator (%, #, /, :offset, ...) transforms the variable's value and so needs one.
var defaultOps = map[string]bool{":=": true, ":-": true, "=": true, "-": true}

// unsetVariables returns, sorted, the variables that evaluating the tree reads while they are not in
// vars: a reference without default, or any variable inside a default that is used because its own
// variable is empty.
func unsetVariables(root parse.Node, vars map[string]string) []string {
	missing := map[string]bool{}
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.FuncNode:
			v, set := vars[n.Param]
			if defaultOps[n.Name] && len(n.Args) > 0 {
				if v == "" {
					for _, a := range n.Args {
						walk(a)
					}
				}
				return
			}
			if !set {
				missing[n.Param] = true
			}
			for _, a := range n.Args {
				walk(a)
			}
		}
	}
	walk(root)
	return slices.Sorted(maps.Keys(missing))
}

// Variable is one variable a flavor references.
type Variable struct {
	Name string
	// Default is the text of the first default the template gives it (after := or :-, nested
	// ${...} kept as written), "" if none.
	Default string
	// HasDefault is true when some reference gives a default.
	HasDefault bool
	// Required is true when rendering with no variables at all would fail on it: some reference
	// has no default (including one inside another variable's default).
	Required bool
}

// Variables lists the variables the flavor references, sorted by name. The ones clusterctl sets
// itself (CLUSTER_NAME, NAMESPACE, the machine counts, KUBERNETES_VERSION from its flag) are
// included: the template references them like any other.
func (f Flavor) Variables() ([]Variable, error) {
	raw, err := f.Raw()
	if err != nil {
		return nil, err
	}
	return variables(f.Name, raw)
}

func variables(name string, raw []byte) ([]Variable, error) {
	text := normalizeLegacyVars(string(raw))
	tree, err := parse.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("flavor %q: %w", name, err)
	}
	byName := map[string]*Variable{}
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.FuncNode:
			v := byName[n.Param]
			if v == nil {
				v = &Variable{Name: n.Param}
				byName[n.Param] = v
			}
			if defaultOps[n.Name] && len(n.Args) > 0 && !v.HasDefault {
				v.HasDefault = true
				v.Default = nodeText(n.Args)
			}
			for _, a := range n.Args {
				walk(a)
			}
		}
	}
	walk(tree.Root)
	for _, r := range unsetVariables(tree.Root, nil) {
		byName[r].Required = true
	}
	out := make([]Variable, 0, len(byName))
	for _, k := range slices.Sorted(maps.Keys(byName)) {
		out = append(out, *byName[k])
	}
	return out, nil
}

// nodeText writes default arguments back as template text, for reports. Plain nested references
// (all CAPZ uses) come out as written; nested operators with several arguments lose their separators.
func nodeText(nodes []parse.Node) string {
	var b strings.Builder
	var write func(parse.Node)
	write = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.TextNode:
			b.WriteString(n.Value)
		case *parse.ListNode:
			for _, c := range n.Nodes {
				write(c)
			}
		case *parse.FuncNode:
			b.WriteString("${" + n.Param + n.Name)
			for _, a := range n.Args {
				write(a)
			}
			b.WriteString("}")
		}
	}
	for _, n := range nodes {
		write(n)
	}
	return b.String()
}

func isClusterAPIGroup(group string) bool {
	return group == "cluster.x-k8s.io" || strings.HasSuffix(group, ".cluster.x-k8s.io")
}
