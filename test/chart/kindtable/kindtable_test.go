// Package kindtable_test holds the chart against the tables in the code that say which kinds the
// webhook decides on (policy.Kinds) and which it reads (clusterinfo.WatchedKinds): the webhook
// rules must name exactly the policy's kinds, and the RBAC must let the webhook read what it watches.
package kindtable_test

import (
	"os"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

func render(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	helm := os.Getenv(chart.HelmEnv)
	if helm == "" {
		t.Fatalf("%s is not set: run via make test-unit (make helm installs it)", chart.HelmEnv)
	}
	objs, err := chart.Render(chart.Options{Helm: helm})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

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
		for _, rule := range w.Rules {
			vr, vg = append(vr, rule.Resources), append(vg, rule.APIGroups)
		}
	}
	check("mutating", mr, mg, mutable)
	check("validating", vr, vg, all)
}

func TestRBACCoversWhatTheWebhookReads(t *testing.T) {
	roles := chart.Find(render(t), "ClusterRole")
	if len(roles) != 1 {
		t.Fatalf("%d ClusterRoles rendered", len(roles))
	}
	var role rbacv1.ClusterRole
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(roles[0].Object, &role); err != nil {
		t.Fatal(err)
	}
	allows := func(group, resource, verb string) bool {
		for _, rule := range role.Rules {
			if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) {
				return true
			}
		}
		return false
	}
	for _, w := range clusterinfo.WatchedKinds(clusterinfo.ClusterV1Beta2) {
		for _, verb := range []string{"get", "list", "watch"} {
			if !allows(w.GVK.Group, w.Resource, verb) {
				t.Errorf("the ClusterRole does not allow %s on %s.%s, which the webhook watches (clusterinfo.WatchedKinds)", verb, w.Resource, w.GVK.Group)
			}
		}
	}
	for _, rule := range role.Rules {
		for _, verb := range rule.Verbs {
			if !slices.Contains([]string{"get", "list", "watch"}, verb) {
				t.Errorf("the ClusterRole grants %q on %v: the webhook only reads", verb, rule.Resources)
			}
		}
	}
}
