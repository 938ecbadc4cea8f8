// Package capiref reads the references Cluster API objects make to infrastructure objects — the
// AzureMachineTemplate a MachineDeployment stamps machines from, the AzureMachine of a Machine, the
// AzureMachinePool of a MachinePool, the templates of a ClusterClass — and the cluster such an object
// belongs to. Whoever references a CAPZ object binds it to a cluster, and so to a region: CAPZ's own
// flavors label none of their templates with their cluster.
//
// Every reference is read in both shapes CAPI has used, whatever apiVersion the object is labelled
// with: v1beta1 (spec.machineTemplate.infrastructureRef, {apiVersion,kind,name}) and v1beta2
// (spec.machineTemplate.spec.infrastructureRef, {apiGroup,kind,name}). An apiserver without CAPI's
// conversion webhook relabels an object of one version as the other without converting it, and a
// webhook registered for several versions receives both; neither may lose a binding.
package capiref

import (
	"slices"
	"strconv"
	"strings"
)

// CAPI API groups.
const (
	GroupCore         = "cluster.x-k8s.io"
	GroupControlPlane = "controlplane.cluster.x-k8s.io"
	GroupInfra        = "infrastructure.cluster.x-k8s.io"
)

// LabelClusterName is CAPI's label naming the Cluster an object belongs to.
const LabelClusterName = "cluster.x-k8s.io/cluster-name"

// Ref is a reference from a CAPI object to another object.
type Ref struct {
	// Group is the referenced object's API group, from apiGroup (v1beta2) or apiVersion (v1beta1);
	// empty when the reference carries neither (a v1beta1 reference stored through a lossy
	// conversion keeps only kind and name).
	Group string
	Kind  string
	Name  string
	// Field is where the reference is, dotted, e.g. spec.template.spec.infrastructureRef.
	Field string
}

// Key identifies the referenced object within a namespace: what the informer index is keyed by.
func (r Ref) Key() string { return Key(r.Kind, r.Name) }

// Key is the index key of an object of kind and name.
func Key(kind, name string) string { return kind + "/" + name }

// Kind is a CAPI kind that references other objects.
type Kind struct {
	Group    string
	Kind     string
	Resource string
	// Binding kinds get the binding-time check: creating one, or pointing it at another template,
	// is what puts machines of that template into the cluster's region.
	Binding bool
	// paths are where the kind keeps its references, in both shapes; "[]" stands for every item
	// of a list.
	paths [][]string
	// keep are further fields the webhook reads of a cached object (the cluster name); the informer
	// cache keeps only these and the references. Replicas are read from the object being admitted
	// only, never from the cache.
	keep [][]string
}

// paths splits dotted paths; "[]" stands for every item of a list.
func paths(dotted ...string) [][]string {
	out := make([][]string, 0, len(dotted))
	for _, d := range dotted {
		out = append(out, strings.Split(d, "."))
	}
	return out
}

var kinds = []Kind{
	{Group: GroupCore, Kind: "MachineDeployment", Resource: "machinedeployments", Binding: true,
		paths: paths("spec.template.spec.infrastructureRef"),
		keep:  paths("spec.clusterName")},
	{Group: GroupControlPlane, Kind: "KubeadmControlPlane", Resource: "kubeadmcontrolplanes", Binding: true,
		paths: paths("spec.machineTemplate.infrastructureRef", "spec.machineTemplate.spec.infrastructureRef")},
	{Group: GroupCore, Kind: "MachinePool", Resource: "machinepools", Binding: true,
		paths: paths("spec.template.spec.infrastructureRef"),
		keep:  paths("spec.clusterName")},
	{Group: GroupCore, Kind: "MachineSet", Resource: "machinesets",
		paths: paths("spec.template.spec.infrastructureRef"),
		keep:  paths("spec.clusterName")},
	{Group: GroupCore, Kind: "Machine", Resource: "machines",
		paths: paths("spec.infrastructureRef"),
		keep:  paths("spec.clusterName")},
	{Group: GroupCore, Kind: "Cluster", Resource: "clusters",
		paths: paths("spec.infrastructureRef", "spec.controlPlaneRef")},
	{Group: GroupCore, Kind: "ClusterClass", Resource: "clusterclasses",
		paths: paths(
			"spec.infrastructure.ref", "spec.infrastructure.templateRef",
			"spec.controlPlane.ref", "spec.controlPlane.templateRef",
			"spec.controlPlane.machineInfrastructure.ref", "spec.controlPlane.machineInfrastructure.templateRef",
			"spec.workers.machineDeployments.[].template.infrastructure.ref",
			"spec.workers.machineDeployments.[].infrastructure.templateRef",
			"spec.workers.machinePools.[].template.infrastructure.ref",
			"spec.workers.machinePools.[].infrastructure.templateRef",
		)},
}

// Kinds lists every kind whose references the webhook follows, in table order.
func Kinds() []Kind { return slices.Clone(kinds) }

// BindingKinds lists the kinds the binding-time check guards.
func BindingKinds() []Kind {
	var out []Kind
	for _, k := range kinds {
		if k.Binding {
			out = append(out, k)
		}
	}
	return out
}

// Lookup returns the table entry of a CAPI kind.
func Lookup(group, kind string) (Kind, bool) {
	for _, k := range kinds {
		if k.Kind == kind && (group == "" || k.Group == group) {
			return k, true
		}
	}
	return Kind{}, false
}

// ReferrerKinds returns the kinds that can reference an object of this kind: a template (…Template)
// is stamped out by MachineDeployments, MachineSets and KubeadmControlPlanes (machine templates) and
// cloned by ClusterClasses; anything else is the one object of a Machine, a MachinePool or a Cluster
// (its infrastructure or control plane). The webhook only asks those, so a live lookup after a
// cache miss lists no more than it must.
func ReferrerKinds(kind string) []Kind {
	var names []string
	switch {
	case strings.HasSuffix(kind, "MachineTemplate"):
		names = []string{"MachineDeployment", "MachineSet", "KubeadmControlPlane", "ClusterClass"}
	case strings.HasSuffix(kind, "Template"):
		names = []string{"ClusterClass"}
	case strings.HasSuffix(kind, "ControlPlane") || strings.HasSuffix(kind, "Cluster"):
		names = []string{"Cluster"}
	case strings.HasSuffix(kind, "MachinePool"):
		names = []string{"MachinePool"}
	default:
		names = []string{"Machine"}
	}
	out := make([]Kind, 0, len(names))
	for _, n := range names {
		k, _ := Lookup("", n)
		out = append(out, k)
	}
	return out
}

// Refs returns the references obj (an object of this kind, decoded JSON) makes, in table order, in
// whichever shape each is written.
func (k Kind) Refs(obj map[string]any) []Ref {
	var out []Ref
	for _, p := range k.paths {
		walk(obj, p, nil, func(v any, at []string) {
			m, _ := v.(map[string]any)
			if r, ok := refOf(m); ok {
				r.Field = strings.Join(at, ".")
				out = append(out, r)
			}
		})
	}
	return out
}

// InfrastructureRef returns the reference a binding kind's machines are stamped from: the first
// of its paths that holds one.
func (k Kind) InfrastructureRef(obj map[string]any) (Ref, bool) {
	refs := k.Refs(obj)
	if len(refs) == 0 {
		return Ref{}, false
	}
	return refs[0], true
}

// walk calls fn with every value at path p in v; "[]" descends into every item of a list. at is the
// dotted path so far, with list indexes.
func walk(v any, p []string, at []string, fn func(v any, at []string)) {
	if len(p) == 0 {
		fn(v, at)
		return
	}
	if p[0] == "[]" {
		items, _ := v.([]any)
		for i, it := range items {
			idx := slices.Clone(at)
			if len(idx) > 0 {
				idx[len(idx)-1] += "[" + strconv.Itoa(i) + "]"
			}
			walk(it, p[1:], idx, fn)
		}
		return
	}
	m, _ := v.(map[string]any)
	c, ok := m[p[0]]
	if !ok {
		return
	}
	walk(c, p[1:], append(slices.Clone(at), p[0]), fn)
}

func refOf(m map[string]any) (Ref, bool) {
	kind, _ := m["kind"].(string)
	name, _ := m["name"].(string)
	if kind == "" || name == "" {
		return Ref{}, false
	}
	group, _ := m["apiGroup"].(string)
	if group == "" {
		if av, _ := m["apiVersion"].(string); strings.Contains(av, "/") {
			group, _, _ = strings.Cut(av, "/")
		}
	}
	return Ref{Group: group, Kind: kind, Name: name}, true
}

// Matches reports whether r references an object of group, kind and name. A reference without a
// group matches any group (see Ref.Group).
func (r Ref) Matches(group, kind, name string) bool {
	return r.Kind == kind && r.Name == name && (r.Group == "" || group == "" || r.Group == group)
}

// ClusterName is the cluster an object names itself: spec.clusterName (MachineDeployment,
// MachineSet, MachinePool, Machine), else the cluster-name label. KubeadmControlPlanes and
// templates name none; their cluster is whoever references them.
func ClusterName(obj map[string]any) string {
	spec, _ := obj["spec"].(map[string]any)
	if s, _ := spec["clusterName"].(string); s != "" {
		return s
	}
	md, _ := obj["metadata"].(map[string]any)
	labels, _ := md["labels"].(map[string]any)
	s, _ := labels[LabelClusterName].(string)
	return s
}

// Replicas is how many machines an object runs: status.replicas when the controller has reported
// it, else spec.replicas. known is false when neither is set.
func Replicas(obj map[string]any) (n int64, known bool) {
	for _, p := range [][]string{{"status", "replicas"}, {"spec", "replicas"}} {
		var v any = obj
		for _, s := range p {
			m, _ := v.(map[string]any)
			v = m[s]
		}
		if n, ok := toInt(v); ok {
			return n, true
		}
	}
	return 0, false
}

func toInt(v any) (int64, bool) {
	switch t := v.(type) {
	case int64:
		return t, true
	case int:
		return int64(t), true
	case int32:
		return int64(t), true
	case float64:
		return int64(t), true
	case interface{ Int64() (int64, error) }: // json.Number
		n, err := t.Int64()
		return n, err == nil
	}
	return 0, false
}

// Trim returns a copy of obj (an object of kind k) with only what the webhook reads: name,
// namespace, resource version, deletion timestamp, the cluster-name label, owner references, the
// references and the kind's other fields. The
// informer cache stores these copies, so that its memory grows with the number of objects, not
// with the size of their specs and statuses.
func (k Kind) Trim(obj map[string]any) map[string]any {
	return trim(obj, slices.Concat(k.paths, k.keep))
}

// TrimTo is Trim for an object of any kind: a copy of obj with its identity (as Trim keeps it) and
// the values at the dotted paths keep ("[]" stands for every item of a list). The webhook's cache
// keeps the CAPZ objects it reads for their region this way.
func TrimTo(obj map[string]any, keep ...string) map[string]any {
	return trim(obj, paths(keep...))
}

func trim(obj map[string]any, keep [][]string) map[string]any {
	out := map[string]any{}
	for _, f := range []string{"apiVersion", "kind"} {
		if v, ok := obj[f]; ok {
			out[f] = v
		}
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		m := map[string]any{}
		// No uid, generation or creation time: nothing reads them of a cached object, and each is
		// a string (or number) the cache would hold per object.
		for _, f := range []string{"name", "namespace", "resourceVersion", "ownerReferences", "deletionTimestamp"} {
			if v, ok := md[f]; ok {
				m[f] = v
			}
		}
		if labels, ok := md["labels"].(map[string]any); ok {
			if c, ok := labels[LabelClusterName]; ok {
				m["labels"] = map[string]any{LabelClusterName: c}
			}
		}
		out["metadata"] = m
	}
	for _, p := range keep {
		copyPath(obj, out, p)
	}
	return out
}

// copyPath copies the value at p from src into dst, creating the maps (and, for "[]", lists of the
// same length) on the way. p never starts with "[]".
func copyPath(src any, dst map[string]any, p []string) {
	cur := src
	for i, s := range p {
		m, _ := cur.(map[string]any)
		v, ok := m[s]
		if !ok {
			return
		}
		if i == len(p)-1 {
			dst[s] = v
			return
		}
		if p[i+1] == "[]" {
			copyListAt(v, dst, s, p[i+1:])
			return
		}
		next, _ := dst[s].(map[string]any)
		if next == nil {
			next = map[string]any{}
			dst[s] = next
		}
		dst = next
		cur = v
	}
}

// copyListAt copies, for every item of the list v, the value at rest[1:] into the list dst[key].
func copyListAt(v any, dst map[string]any, key string, rest []string) {
	items, _ := v.([]any)
	if items == nil {
		return
	}
	dl, _ := dst[key].([]any)
	if len(dl) != len(items) {
		dl = make([]any, len(items))
		for j := range dl {
			dl[j] = map[string]any{}
		}
		dst[key] = dl
	}
	for j, it := range items {
		im, _ := it.(map[string]any)
		dm, _ := dl[j].(map[string]any)
		if im != nil && dm != nil {
			copyPath(im, dm, rest[1:])
		}
	}
}
