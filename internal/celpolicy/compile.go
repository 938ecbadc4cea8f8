package celpolicy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

const (
	// Prefix starts the name of every object Compile makes. Names are Prefix.<rule>.<kind> for the
	// validating policies and their bindings (Prefix.<rule>.<kind>.warn for the part of a rule that
	// only warns), Prefix.inject-des.<kind> and Prefix.inject-eah.<kind> for the mutating ones.
	Prefix = "capz-encryption-webhook"
	// DefaultNamespace is the webhook's namespace when Options.Namespace is empty: the chart's.
	DefaultNamespace = "capz-encryption-webhook-system"

	// LabelManagedBy and ManagedBy mark every object Compile makes, so that a controller can list,
	// prune and own exactly those (OwnedSelector).
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "capz-encryption-webhook"
	// LabelRule names the rule a validating policy enforces, or InjectDefault for a mutating one.
	LabelRule = "capz-encryption-webhook.io/rule"
	// LabelKind names the CAPZ kind a policy matches.
	LabelKind = "capz-encryption-webhook.io/kind"
	// InjectDefault is LabelRule's value on the mutating policies.
	InjectDefault = "inject-default"
	// AnnotationCatalog on the policies that hold VM-size verdicts describes the catalog they come
	// from; the messages quote it.
	AnnotationCatalog = "capz-encryption-webhook.io/catalog"
)

// VM-size verdicts, keyed by strings.ToLower of the size name in the expressions: what the webhook
// concludes about encryption at host on the size when the region is unknown, kept only as
// far as it holds in every region the object may be in (policy.JudgeSizeAnywhere). A size the
// catalog does not list has no key.
const (
	// SizeSupported: every catalog region that lists the size supports encryption at host; a default
	// injects it.
	SizeSupported = "supported"
	// SizeUnsupported: no catalog region supports it, and current evidence (captures less than
	// policy.EvidenceMaxAgeYears old) says so wherever the object is: refused.
	SizeUnsupported = "unsupported"
	// SizeDoubtful: no catalog region supports it, but somewhere the only evidence is older than
	// that (or a restriction that binds the subscription in some regions only): a warning; the
	// webhook, which knows the region, may refuse it.
	SizeDoubtful = "doubtful"
	// SizeMixed: some region supports it and another does not: the region decides, so only the
	// webhook judges it.
	SizeMixed = "mixed"
)

// Options adjust what Compile makes.
type Options struct {
	// Namespace is the webhook's (DefaultNamespace when empty); the bindings leave it out.
	Namespace string
	// Now is the time against which the age of catalog evidence is judged, as the webhook judges it
	// at every request (policy.Environment.Now); zero: no evidence is old. Compile reads no clock.
	Now time.Time
	// ExcludedNamespaces are left out by every binding, as the webhook configurations leave out
	// kube-system and the webhook's own namespace. Empty means exactly those two (Namespace for the
	// latter).
	ExcludedNamespaces []string
	// NamespaceSelector narrows every binding further, as the webhook configurations' namespaceSelector
	// narrows the webhooks (the chart's webhook.namespaceSelector.matchLabels and matchExpressions).
	NamespaceSelector *metav1.LabelSelector
}

// Object is what every generated object is: a Kubernetes object with metadata.
type Object interface {
	metav1.Object
	runtime.Object
}

// Result is the compiled policy. Every list is sorted by name.
type Result struct {
	ValidatingPolicies []*admissionregistrationv1.ValidatingAdmissionPolicy
	ValidatingBindings []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	MutatingPolicies   []*admissionregistrationv1.MutatingAdmissionPolicy
	MutatingBindings   []*admissionregistrationv1.MutatingAdmissionPolicyBinding
	// Sizes are the VM-size verdicts the policies hold (lower-case size → SizeSupported, ...), nil
	// without a catalog.
	Sizes map[string]string

	// Compiled says what the objects enforce, rule by rule (Rule is empty for the injection of the
	// organisation default).
	Compiled []Coverage
	// NotCompiled lists what only the webhook enforces, and why.
	NotCompiled []Omission
	// Inactive lists rules the policy switches off: nothing enforces them.
	Inactive []Omission

	// PolicySource and CatalogSource name the inputs, for the header of the output.
	PolicySource  string
	CatalogSource string
}

// Coverage is one rule (or the default injection) as compiled.
type Coverage struct {
	Rule policy.RuleID `json:"rule,omitempty"`
	// Kinds the rule is compiled for.
	Kinds []string `json:"kinds"`
	// Action is the rule's effective action (deny becomes warn under the policy's dryRun); empty
	// for the injection.
	Action policy.Action `json:"action,omitempty"`
	// Objects are the names of the admission policies that carry it.
	Objects []string `json:"objects"`
	// Note says where the compiled form is narrower than the webhook, if anywhere.
	Note string `json:"note,omitempty"`
}

// Omission is a rule, or the part of one named by Scope, that is not compiled.
type Omission struct {
	Rule   policy.RuleID `json:"rule,omitempty"` // empty for the injection of defaults
	Scope  string        `json:"scope,omitempty"`
	Reason string        `json:"reason"`
}

// OwnedSelector selects exactly the objects Compile makes, in any namespace.
func OwnedSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedBy})
}

// Objects returns every generated object in an order that applies cleanly: the validating policies
// and their bindings, the mutating policies and their bindings.
func (r *Result) Objects() []Object {
	out := make([]Object, 0, len(r.ValidatingPolicies)+len(r.ValidatingBindings)+len(r.MutatingPolicies)+len(r.MutatingBindings))
	for _, o := range r.ValidatingPolicies {
		out = append(out, o)
	}
	for _, o := range r.ValidatingBindings {
		out = append(out, o)
	}
	for _, o := range r.MutatingPolicies {
		out = append(out, o)
	}
	for _, o := range r.MutatingBindings {
		out = append(out, o)
	}
	return out
}

// Compile turns the CEL-expressible part of p into admission policies. cat is the VM-size catalog
// the webhook uses (nil: encryption at host is left to the webhook). It fails only on options that
// cannot make valid objects.
func Compile(p *policy.Policy, cat skus.Catalog, opts Options) (*Result, error) {
	if p == nil {
		p = policy.DefaultPolicy()
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if errs := validation.IsDNS1123Label(opts.Namespace); len(errs) > 0 {
		return nil, fmt.Errorf("namespace %q: %s", opts.Namespace, strings.Join(errs, "; "))
	}
	if len(opts.ExcludedNamespaces) == 0 {
		opts.ExcludedNamespaces = []string{"kube-system", opts.Namespace}
	}
	for _, ns := range opts.ExcludedNamespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("excluded namespace %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	opts.ExcludedNamespaces = slices.Compact(slices.Sorted(slices.Values(opts.ExcludedNamespaces)))
	if opts.NamespaceSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(opts.NamespaceSelector); err != nil {
			return nil, fmt.Errorf("namespace selector: %w", err)
		}
	}

	c := &compiler{p: p, cat: cat, opts: opts, res: &Result{PolicySource: p.Source}}
	if cat != nil {
		c.sizes = buildSizes(cat, opts.Now)
		c.res.CatalogSource = c.sizes.desc
		c.res.Sizes = c.sizes.data
	}
	c.def, c.defReason = universalDefault(p)
	c.compileRules()
	c.compileDefaults()
	c.omit()
	c.sortResult()
	return c.res, nil
}

type compiler struct {
	p     *policy.Policy
	cat   skus.Catalog
	opts  Options
	res   *Result
	sizes *sizeTable
	// def is the organisation default that applies to every object (nil if there is none, or if
	// which default applies depends on the region or the namespace; defReason says why then).
	def       *policy.Default
	defReason string
}

// universalDefault returns the default that applies to every object, if the first default matches
// everything (later ones are then never reached).
func universalDefault(p *policy.Policy) (*policy.Default, string) {
	if len(p.Defaults) == 0 {
		return nil, ""
	}
	d := p.Defaults[0]
	switch {
	case len(d.Regions) > 0:
		return nil, fmt.Sprintf("default %q applies only in %s", d.Name, strings.Join(d.Regions, ", "))
	case d.Selector != nil && !d.Selector.Empty():
		return nil, fmt.Sprintf("default %q applies only to namespaces matching %q", d.Name, d.Selector.String())
	}
	return &d, ""
}

// warnOnlyPrefixed: the policy's warnOnly turns the rule's denials into warnings, which policy.Evaluate
// prefixes.
func (c *compiler) warnOnlyPrefixed(r policy.RuleID) bool {
	return c.p.WarnOnly && c.p.ActionFor(r) == policy.ActionDeny
}

// action is the rule's action as a binding enforces it: the policy's dryRun turns deny into warn.
func (c *compiler) action(r policy.RuleID) policy.Action {
	a := c.p.ActionFor(r)
	if c.p.WarnOnly && a == policy.ActionDeny {
		return policy.ActionWarn
	}
	return a
}

func validationActions(a policy.Action) []admissionregistrationv1.ValidationAction {
	switch a {
	case policy.ActionWarn:
		return []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn}
	case policy.ActionAudit:
		return []admissionregistrationv1.ValidationAction{admissionregistrationv1.Audit}
	default:
		return []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}
	}
}

func (c *compiler) labels(rule string, k kindSpec) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelRule: rule, LabelKind: k.kind}
}

// matchResources leaves out the excluded namespaces and keeps to the namespace selector, as the
// webhook configurations do.
func (c *compiler) matchResources() *admissionregistrationv1.MatchResources {
	sel := &metav1.LabelSelector{}
	if c.opts.NamespaceSelector != nil {
		sel = c.opts.NamespaceSelector.DeepCopy()
	}
	sel.MatchExpressions = append([]metav1.LabelSelectorRequirement{{
		Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: slices.Clone(c.opts.ExcludedNamespaces),
	}}, sel.MatchExpressions...)
	return &admissionregistrationv1.MatchResources{NamespaceSelector: sel}
}

func constraints(k kindSpec, ops ...admissionregistrationv1.OperationType) *admissionregistrationv1.MatchResources {
	equivalent := admissionregistrationv1.Equivalent
	return &admissionregistrationv1.MatchResources{
		ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
			RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: ops,
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{policy.Group},
					// Every version: the fields read have the same paths in all served versions, as
					// the webhook assumes (it registers with matchPolicy Equivalent too).
					APIVersions: []string{"*"},
					Resources:   []string{k.resource},
				},
			},
		}},
		MatchPolicy: &equivalent,
	}
}

func (c *compiler) addCoverage(cv Coverage) {
	for i := range c.res.Compiled {
		if c.res.Compiled[i].Rule == cv.Rule && c.res.Compiled[i].Note == cv.Note {
			c.res.Compiled[i].Kinds = append(c.res.Compiled[i].Kinds, cv.Kinds...)
			c.res.Compiled[i].Objects = append(c.res.Compiled[i].Objects, cv.Objects...)
			return
		}
	}
	c.res.Compiled = append(c.res.Compiled, cv)
}

func (c *compiler) sortResult() {
	byName := func(a, b Object) int { return cmp.Compare(a.GetName(), b.GetName()) }
	slices.SortFunc(c.res.ValidatingPolicies, func(a, b *admissionregistrationv1.ValidatingAdmissionPolicy) int { return byName(a, b) })
	slices.SortFunc(c.res.ValidatingBindings, func(a, b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) int { return byName(a, b) })
	slices.SortFunc(c.res.MutatingPolicies, func(a, b *admissionregistrationv1.MutatingAdmissionPolicy) int { return byName(a, b) })
	slices.SortFunc(c.res.MutatingBindings, func(a, b *admissionregistrationv1.MutatingAdmissionPolicyBinding) int { return byName(a, b) })
	for i := range c.res.Compiled {
		slices.Sort(c.res.Compiled[i].Kinds)
		slices.Sort(c.res.Compiled[i].Objects)
	}
	byRule := func(a, b Omission) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Scope, b.Scope))
	}
	slices.SortFunc(c.res.Compiled, func(a, b Coverage) int { return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Note, b.Note)) })
	slices.SortFunc(c.res.NotCompiled, byRule)
	slices.SortFunc(c.res.Inactive, byRule)
}
