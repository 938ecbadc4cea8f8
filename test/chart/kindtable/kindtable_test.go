// Package kindtable_test holds the chart against the tables in the code that say which kinds the
// webhook decides on (policy.Kinds, capiref.BindingKinds) and which it reads
// (clusterinfo.WatchedKinds): the webhook rules must name exactly those kinds, and the RBAC must let
// the webhook read what it watches.
package kindtable_test

import (
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/audit"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

func render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	helm := os.Getenv(chart.HelmEnv)
	if helm == "" {
		t.Fatalf("%s is not set: run via make test-unit (make helm installs it)", chart.HelmEnv)
	}
	// Without the helm test hooks (--skip-tests): they are not part of the release; test/chart checks them.
	objs, err := chart.Render(chart.Options{Helm: helm, Args: append([]string{"--skip-tests"}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// policyCheckWebhook checks the policy ConfigMap, not CAPZ objects.
const policyCheckWebhook = "policy.capz-encryption-webhook.io"

func TestWebhookRulesNameThePolicysKinds(t *testing.T) {
	m, v, err := chart.Webhooks(render(t))
	if err != nil {
		t.Fatal(err)
	}
	var all, mutable []string
	for _, k := range policy.Kinds() {
		all = append(all, k.Resource)
		if k.Mutable {
			mutable = append(mutable, k.Resource)
		}
	}
	check := func(name string, rules [][]string, groups [][]string, want []string) {
		t.Helper()
		var got []string
		for i, res := range rules {
			got = append(got, res...)
			if !slices.Equal(groups[i], []string{policy.Group}) {
				t.Errorf("%s: rule %d names groups %v, want [%s]", name, i, groups[i], policy.Group)
			}
		}
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s webhook resources = %v, policy.Kinds() says %v: update the chart's rules (_helpers.tpl) or the table (internal/policy/kinds.go)", name, got, want)
		}
	}
	var mr, mg, vr, vg [][]string
	for _, w := range m.Webhooks {
		for _, rule := range w.Rules {
			mr, mg = append(mr, rule.Resources), append(mg, rule.APIGroups)
		}
	}
	for _, w := range v.Webhooks {
		if w.Name == policyCheckWebhook || w.Name == bindingWebhook {
			continue
		}
		for _, rule := range w.Rules {
			vr, vg = append(vr, rule.Resources), append(vg, rule.APIGroups)
		}
	}
	// Every served version: the handler reads any (policy.Handles checks the group only), and a CAPZ
	// release that drops v1beta1 must not end enforcement silently.
	var versions [][]string
	for _, w := range m.Webhooks {
		for _, rule := range w.Rules {
			versions = append(versions, rule.APIVersions)
		}
	}
	for _, w := range v.Webhooks {
		if w.Name == policyCheckWebhook {
			continue
		}
		for _, rule := range w.Rules {
			versions = append(versions, rule.APIVersions)
		}
	}
	for _, vs := range versions {
		if !slices.Equal(vs, []string{"*"}) {
			t.Errorf("a webhook rule matches versions %v, want [\"*\"]", vs)
		}
	}
	check("mutating", mr, mg, mutable)
	check("validating", vr, vg, all)
}

const bindingWebhook = "validate-binding.capz-encryption-webhook.io"

// TestBindingWebhookRulesNameTheBindingKinds holds the binding check's rules to capiref's table of
// binding kinds: every group and resource, and nothing else (every version: see the version check
// above, which covers this webhook too).
func TestBindingWebhookRulesNameTheBindingKinds(t *testing.T) {
	_, v, err := chart.Webhooks(render(t))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, w := range v.Webhooks {
		if w.Name != bindingWebhook {
			continue
		}
		for _, rule := range w.Rules {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					got[g+"/"+res] = true
				}
			}
		}
	}
	want := map[string]bool{}
	for _, k := range capiref.BindingKinds() {
		want[k.Group+"/"+k.Resource] = true
	}
	if len(want) == 0 || !maps.Equal(got, want) {
		t.Errorf("binding webhook rules cover %v; capiref.BindingKinds() says %v: update the chart's bindingRules (_helpers.tpl) or the table (internal/capiref)",
			slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// TestRBACIsExactlyWhatTheWebhookReads: the ClusterRole lets the webhook get, list and watch every
// kind it watches (clusterinfo.WatchedKinds), get what it reads on demand (clusterinfo.OnDemandKinds)
// and nothing else, plus create on the two reviews the metrics filter makes. A grant the code never
// uses is a grant too many.
func TestRBACIsExactlyWhatTheWebhookReads(t *testing.T) {
	var role *rbacv1.ClusterRole
	for _, o := range chart.Find(render(t), "ClusterRole") {
		var r rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &r); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(r.Name, "-metrics-reader") {
			role = &r
		}
	}
	if role == nil {
		t.Fatal("no ClusterRole for the webhook")
	}
	want := map[string][]string{}
	for _, w := range clusterinfo.WatchedKinds(nil) {
		want[w.GVK.Group+"/"+w.Resource] = []string{"get", "list", "watch"}
	}
	for _, w := range clusterinfo.OnDemandKinds(nil) {
		want[w.GVK.Group+"/"+w.Resource] = []string{"get"}
	}
	for _, review := range []string{"authentication.k8s.io/tokenreviews", "authorization.k8s.io/subjectaccessreviews"} {
		want[review] = []string{"create"}
	}
	got := map[string][]string{}
	for _, rule := range role.Rules {
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				got[g+"/"+r] = append(got[g+"/"+r], rule.Verbs...)
			}
		}
	}
	for k, verbs := range got {
		slices.Sort(verbs)
		got[k] = slices.Compact(verbs)
	}
	for k, verbs := range want {
		if !slices.Equal(got[k], verbs) {
			t.Errorf("%s: the ClusterRole grants %v, the webhook needs %v (clusterinfo.WatchedKinds, metrics authentication)", k, got[k], verbs)
		}
	}
	for k, verbs := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("the ClusterRole grants %v on %s, which the webhook never uses: trim it (or add the kind to clusterinfo.WatchedKinds)", verbs, k)
		}
	}
}

func rulesOf[T any](t *testing.T, objs []*unstructured.Unstructured, kind string, get func(*T) []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	t.Helper()
	var out []rbacv1.PolicyRule
	for _, o := range chart.Find(objs, kind) {
		var v T
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, get(&v)...)
	}
	return out
}

func allows(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, rule := range rules {
		if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) {
			return true
		}
	}
	return false
}

// TestAuditRBAC: with audit.enabled the chart grants what the background audit does
// (audit.Permissions: list the guarded kinds, Reports, Events, its Lease in the release namespace
// only); without it, nothing of it.
func TestAuditRBAC(t *testing.T) {
	objs := render(t, "--set", "audit.enabled=true")
	cluster := rulesOf(t, objs, "ClusterRole", func(r *rbacv1.ClusterRole) []rbacv1.PolicyRule { return r.Rules })
	var namespaced []rbacv1.PolicyRule
	for _, o := range chart.Find(objs, "Role") {
		if o.GetNamespace() != chart.DefaultNamespace {
			t.Errorf("Role %s is in %s, not the release namespace", o.GetName(), o.GetNamespace())
		}
	}
	namespaced = rulesOf(t, objs, "Role", func(r *rbacv1.Role) []rbacv1.PolicyRule { return r.Rules })
	for _, p := range audit.Permissions() {
		for _, verb := range p.Verbs {
			switch {
			case p.ReleaseNamespace && !allows(namespaced, p.Group, p.Resource, verb):
				t.Errorf("no Role in the release namespace allows %s on %s.%s, which the audit needs (audit.Permissions)", verb, p.Resource, p.Group)
			case p.ReleaseNamespace && allows(cluster, p.Group, p.Resource, verb):
				t.Errorf("a ClusterRole allows %s on %s.%s in every namespace; the audit needs it in the release namespace only", verb, p.Resource, p.Group)
			case !p.ReleaseNamespace && !allows(cluster, p.Group, p.Resource, verb):
				t.Errorf("the ClusterRoles do not allow %s on %s.%s, which the audit needs (audit.Permissions)", verb, p.Resource, p.Group)
			}
		}
	}
	for _, r := range cluster {
		if slices.Contains(r.Verbs, "watch") && slices.Contains(r.APIGroups, policy.Group) && slices.Contains(r.Resources, "azuremachines") {
			t.Error("the audit lists in pages and watches nothing: no watch on the guarded kinds")
		}
	}
	if n := len(chart.Find(objs, "RoleBinding")) + len(chart.Find(objs, "ClusterRoleBinding")); n != 3 {
		t.Errorf("%d bindings, want the webhook's, the audit's and the Lease's", n)
	}
	off := render(t)
	roles := 0
	for _, o := range chart.Find(off, "ClusterRole") {
		if !strings.HasSuffix(o.GetName(), "-metrics-reader") { // the metrics scrapers' role
			roles++
		}
	}
	if len(chart.Find(off, "Role")) != 0 || roles != 1 {
		t.Error("audit RBAC rendered with audit.enabled=false")
	}
}
