package celpolicy

// Parity at unit level: every case runs through the compiled ValidatingAdmissionPolicies (with the
// apiserver's evaluator, see harness_test.go) and through policy.Evaluate in the validating stage,
// and for every compiled rule both must reach the same enforced action on the same fields, which
// must also be the action the case expects. Where the compiled form is knowingly narrower than the
// webhook, the case says so (diverge), and the test holds both sides to that exact difference.

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy/paritycases"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// The cases and their helpers are shared with the e2e suite (package paritycases).
type vapCase = paritycases.Case

var (
	machineCases             = paritycases.Machine
	managedMachinePoolCases  = paritycases.ManagedMachinePool
	managedControlPlaneCases = paritycases.ManagedControlPlane
	osDES                    = paritycases.OSDES
	dataDisk                 = paritycases.DataDisk
	quoted                   = paritycases.Quoted
)

const (
	vmOK     = paritycases.VMOK
	desPatch = paritycases.DESPatch
)

// object builds a CAPZ object of kind k in namespace team-a whose machine settings (for the AKS
// kinds: spec) are the YAML settings.
func object(t testing.TB, k kindSpec, name, settings string) map[string]any {
	t.Helper()
	obj, err := paritycases.Object(paritycases.Kind{Kind: k.kind, Machine: k.machine}, name, testNamespace.Name, settings)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func metadata(obj map[string]any) map[string]any { return obj["metadata"].(map[string]any) }

// build makes the admission request of a case.
func caseRequest(t testing.TB, c vapCase, k kindSpec) request {
	t.Helper()
	r := request{op: admission.Create, obj: object(t, k, "obj", c.Settings), dryRun: c.DryRun}
	if len(c.Annotations) > 0 {
		ann := map[string]any{}
		for k, v := range c.Annotations {
			ann[k] = v
		}
		metadata(r.obj)["annotations"] = ann
	}
	switch {
	case c.MetadataOnly:
		r.op, r.old = admission.Update, object(t, k, "obj", c.Settings)
		metadata(r.obj)["labels"] = map[string]any{"team": "a"}
	case c.Old != "":
		r.op, r.old = admission.Update, object(t, k, "obj", c.Old)
	}
	if c.Deleting {
		metadata(r.obj)["deletionTimestamp"] = "2026-01-02T03:04:05Z"
		metadata(r.obj)["finalizers"] = []any{"azuremachine.infrastructure.cluster.x-k8s.io"}
	}
	return r
}

func evaluate(t testing.TB, p *policy.Policy, cat skus.Catalog, r request, stage policy.Stage) *policy.Decision {
	t.Helper()
	raw, err := json.Marshal(r.obj)
	if err != nil {
		t.Fatal(err)
	}
	var oldRaw []byte
	if r.old != nil {
		if oldRaw, err = json.Marshal(r.old); err != nil {
			t.Fatal(err)
		}
	}
	d, err := policy.Evaluate(p, policy.Request{
		Operation: policy.Operation(r.op), Stage: stage, Object: raw, OldObject: oldRaw,
		Namespace: testNamespace.Name, NamespaceLabels: testNamespace.Labels, DryRun: r.dryRun,
	}, policy.Environment{Catalog: cat, Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// enforced is what the webhook enforces for one rule: the strongest action among its findings that
// are neither ratcheted nor exempt, and their fields and messages in order.
var rank = map[policy.Action]int{"": 0, policy.ActionAudit: 1, policy.ActionWarn: 2, policy.ActionDeny: 3}

func enforced(d *policy.Decision, rule policy.RuleID) (policy.Action, []policy.Finding) {
	var action policy.Action
	var fs []policy.Finding
	for _, f := range d.Findings {
		if f.Rule != rule || f.Ratcheted || d.Exempt != "" {
			continue
		}
		fs = append(fs, f)
		if rank[f.Action] > rank[action] {
			action = f.Action
		}
	}
	return action, fs
}

func bindingAction(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) policy.Action {
	switch b.Spec.ValidationActions[0] {
	case admissionregistrationv1.Warn:
		return policy.ActionWarn
	case admissionregistrationv1.Audit:
		return policy.ActionAudit
	}
	return policy.ActionDeny
}

// messageFields reads the fields out of a compiled policy's message.
func messageFields(rule policy.RuleID, msg string) []string {
	re := regexp.MustCompile(`(?:^capz-encryption-webhook |; )\[` + regexp.QuoteMeta(string(rule)) + `\] (.+?): `)
	var out []string
	for _, m := range re.FindAllStringSubmatch(msg, -1) {
		out = append(out, m[1])
	}
	return out
}

// sameMessages are the rules whose compiled messages are the webhook's, word for word.
var sameMessages = []policy.RuleID{policy.RuleADEExtension, policy.RuleAKSTarget, policy.RuleDESSubscriptionNotAllowed}

type compiledVAP struct {
	policy  *admissionregistrationv1.ValidatingAdmissionPolicy
	binding *admissionregistrationv1.ValidatingAdmissionPolicyBinding
	eval    validating.Validator
	rule    policy.RuleID
	kind    string
}

func compiledVAPs(t testing.TB, res *Result) []compiledVAP {
	t.Helper()
	var out []compiledVAP
	for i, p := range res.ValidatingPolicies {
		b := res.ValidatingBindings[i]
		if b.Name != p.Name || b.Spec.PolicyName != p.Name {
			t.Fatalf("policy %s is bound by %s to %s", p.Name, b.Name, b.Spec.PolicyName)
		}
		out = append(out, compiledVAP{policy: p, binding: b, eval: compileVAP(t, p, environment.DefaultCompatibilityVersion(), environment.StoredExpressions),
			rule: policy.RuleID(p.Labels[LabelRule]), kind: p.Labels[LabelKind]})
	}
	return out
}

// checkParity runs one request through the compiled policies of its kind and through the webhook's
// policy, and compares them rule by rule (a rule may be compiled into several policies, e.g. one that
// refuses and one that warns); c (may be nil) is what the case expects.
func checkParity(t *testing.T, p *policy.Policy, cat skus.Catalog, vaps []compiledVAP, r request, c *vapCase) map[policy.RuleID]policy.Action {
	t.Helper()
	d := evaluate(t, p, cat, r, policy.StageValidate)
	got := map[policy.RuleID]policy.Action{}
	var rules []policy.RuleID
	messages := map[policy.RuleID][]string{}
	for _, v := range vaps {
		if v.kind != r.obj["kind"] {
			continue
		}
		if !slices.Contains(rules, v.rule) {
			rules = append(rules, v.rule)
		}
		out := runVAP(t, v.eval, v.policy.Name, r)
		if out.denied {
			if a := bindingAction(v.binding); rank[a] > rank[got[v.rule]] {
				got[v.rule] = a
			}
			messages[v.rule] = append(messages[v.rule], out.message)
		}
	}
	for _, rule := range rules {
		celAction := got[rule]
		message := strings.Join(messages[rule], "\n")
		goAction, findings := enforced(d, rule)
		if c != nil {
			action := p.ActionFor(rule)
			if p.WarnOnly && action == policy.ActionDeny {
				action = policy.ActionWarn
			}
			capped := action
			if rank[capped] > rank[policy.ActionWarn] {
				capped = policy.ActionWarn
			}
			var want policy.Action
			switch {
			case slices.Contains(c.Deny, rule):
				want = action
			case slices.Contains(c.Warn, rule):
				want = capped
			case slices.Contains(c.Preexisting, rule) && action == policy.ActionAudit:
				want = action
			}
			if limit, ok := c.Diverge[rule]; ok {
				// Known divergence: the webhook enforces the rule at the action the case gives (capped
				// by the rule's own), the compiled policies at want (nothing, unless the case says).
				if rank[limit] < rank[action] {
					action = limit
				}
				if goAction != action || celAction != want {
					t.Errorf("%s: known divergence: want webhook %q and CEL %q, got webhook %q (%v) and CEL %q (%s)", rule, action, want, goAction, findings, celAction, message)
				}
				continue
			}
			if celAction != want {
				t.Errorf("%s: CEL %q, want %q: %s", rule, celAction, want, message)
			}
		}
		if celAction != goAction {
			t.Errorf("%s: CEL %q (%s), policy.Evaluate %q (%v)", rule, celAction, message, goAction, findings)
			continue
		}
		if celAction == "" {
			continue
		}
		var goFields []string
		var b strings.Builder
		b.WriteString("capz-encryption-webhook [" + string(rule) + "] ")
		for i, f := range findings {
			goFields = append(goFields, f.Field)
			if i > 0 {
				b.WriteString("; [" + string(rule) + "] ")
			}
			b.WriteString(f.Field + ": " + f.Message)
		}
		var celFields []string
		for _, m := range messages[rule] {
			celFields = append(celFields, messageFields(rule, m)...)
		}
		if !slices.Equal(celFields, goFields) {
			t.Errorf("%s: CEL fields %q, policy.Evaluate %q\n%s", rule, celFields, goFields, message)
		}
		if slices.Contains(sameMessages, rule) && message != b.String() {
			t.Errorf("%s: message\n CEL  %s\n want %s", rule, message, b.String())
		}
	}
	return got
}

func TestValidationParity(t *testing.T) {
	validationParity(t, mustParse(t, "full.yaml", fullPolicy))
}

// Other actions and the global dry-run reach the bindings, and the messages say what the webhook
// says (policy.Evaluate prefixes dry-run findings).
func TestValidationParityActions(t *testing.T) {
	validationParity(t, mustParse(t, "actions.yaml", fullPolicy+`dryRun: true
rules:
  des-id-malformed: warn
  ade-extension: audit
  des-required: deny
  aks-target: audit
`))
}

func validationParity(t *testing.T, p *policy.Policy) {
	cat := testCatalog()
	res := mustCompile(t, p, cat)
	vaps := compiledVAPs(t, res)
	// Every compiled rule of every kind has a case it denies and a case it passes.
	denied, passed := map[string]bool{}, map[string]bool{}
	run := func(kinds []kindSpec, cases []vapCase) {
		for _, k := range kinds {
			for i := range cases {
				c := &cases[i]
				t.Run(k.kind+"/"+c.Name, func(t *testing.T) {
					checkParity(t, p, cat, vaps, caseRequest(t, *c, k), c)
					for _, v := range vaps {
						if v.kind == k.kind {
							if runVAP(t, v.eval, v.policy.Name, caseRequest(t, *c, k)).denied {
								denied[v.policy.Name] = true
							} else {
								passed[v.policy.Name] = true
							}
						}
					}
				})
			}
		}
	}
	run(machineKinds, machineCases)
	run([]kindSpec{azureManagedMachinePool}, managedMachinePoolCases)
	run([]kindSpec{azureManagedControlPlane}, managedControlPlaneCases)
	for _, v := range vaps {
		if !denied[v.policy.Name] || !passed[v.policy.Name] {
			t.Errorf("%s: no case denied by it (%v) or none passed (%v)", v.policy.Name, denied[v.policy.Name], passed[v.policy.Name])
		}
	}
}

// The compiled policies cannot see the region, so they must never be stricter than the webhook
// wherever the machine is: with its region unknown, in every catalog region, and in a region no
// catalog layer covers. For every size of the catalog (and one it lacks), an object asking for
// encryption at host is refused or warned by them at most as strongly as by the webhook (under
// eah-sku-unsupported or sku-unknown), and encryption at host is injected by them only where the
// webhook injects it too, or refuses the object; where the webhook injects it and they do not, the
// size's support is mixed.
func TestNeverStricterThanTheWebhookInAnyRegion(t *testing.T) {
	p := mustParse(t, "full.yaml", fullPolicy)
	cat := testCatalog()
	res := mustCompile(t, p, cat)
	vaps, maps := compiledVAPs(t, res), compiledMAPs(t, res)
	sizes := []string{"Standard_Nope_v9"}
	for size := range res.Sizes {
		sizes = append(sizes, size)
	}
	slices.Sort(sizes)
	regions := append([]string{"", "westeurope"}, cat.Regions()...)
	webhook := func(r request, region string, stage policy.Stage) *policy.Decision {
		raw, _ := json.Marshal(r.obj)
		env := policy.Environment{Catalog: cat, Now: testNow}
		if region != "" {
			env.Locations = []policy.LocationCandidate{{Location: region, Source: "cluster", Cluster: true}}
		}
		d, err := policy.Evaluate(p, policy.Request{Operation: policy.OperationCreate, Stage: stage, Object: raw,
			Namespace: testNamespace.Name, NamespaceLabels: testNamespace.Labels}, env)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	injectsEAH := func(d *policy.Decision) bool { return slices.Contains(d.Injected, "securityProfile.encryptionAtHost") }
	for _, size := range sizes {
		asks := request{op: admission.Create, obj: object(t, azureMachineTemplate, "t", "vmSize: "+quoted(size)+"\n"+osDES(desOS)+"securityProfile:\n  encryptionAtHost: true\n")}
		var cel policy.Action
		for _, v := range vaps {
			if v.kind == azureMachineTemplate.kind && v.rule == policy.RuleEAHSKUUnsupported && runVAP(t, v.eval, v.policy.Name, asks).denied {
				if a := bindingAction(v.binding); rank[a] > rank[cel] {
					cel = a
				}
			}
		}
		plain := object(t, azureMachineTemplate, "t", "vmSize: "+quoted(size)+"\n"+plainOS)
		celInjects, _ := lookupPath(mutate(t, maps, plain, false), "spec", "template", "spec", "securityProfile", "encryptionAtHost").(bool)
		class := res.Sizes[strings.ToLower(size)]
		for _, region := range regions {
			var hook policy.Action
			for _, f := range webhook(asks, region, policy.StageValidate).Findings {
				if (f.Rule == policy.RuleEAHSKUUnsupported || f.Rule == policy.RuleSKUUnknown) && rank[f.Action] > rank[hook] {
					hook = f.Action
				}
			}
			if rank[cel] > rank[hook] {
				t.Errorf("%s (%s) in %q: the compiled policies %s, the webhook only %q", size, class, region, cel, hook)
			}
			d := webhook(request{op: admission.Create, obj: plain}, region, policy.StageAdmit)
			switch {
			case celInjects && !injectsEAH(d) && d.Allowed:
				t.Errorf("%s (%s) in %q: the compiled policies inject encryption at host, the webhook does not and admits the object", size, class, region)
			case !celInjects && injectsEAH(d) && class != SizeMixed:
				t.Errorf("%s (%s) in %q: the webhook injects encryption at host, the compiled policies do not", size, class, region)
			}
		}
	}
}
