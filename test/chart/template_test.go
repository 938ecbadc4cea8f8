package chart_test

import (
	"encoding/pem"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

const ns = chart.DefaultNamespace

// Kinds without a namespace.
var clusterScoped = map[string]bool{
	"ClusterRole": true, "ClusterRoleBinding": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"CustomResourceDefinition": true,
}

// The webhook rules of the binary's contract (issue 3). Written out here, independently of the chart,
// so that a change to the chart's rules fails a test instead of quietly changing what is enforced.
var (
	wantMutatingResources   = []string{"azuremachinetemplates", "azuremachines", "azuremachinepools"}
	wantValidatingResources = []string{"azuremachinetemplates", "azuremachines", "azuremachinepools",
		"azuremanagedmachinepools", "azuremanagedmachinepooltemplates", "azuremanagedcontrolplanes", "azuremanagedcontrolplanetemplates",
		"azureasomanagedmachinepools", "azureasomanagedmachinepooltemplates", "azureasomanagedcontrolplanes", "azureasomanagedcontrolplanetemplates"}
)

// The ClusterRole of the contract: read-only, for region and AKS resolution.
var wantRBAC = map[string][]string{
	"":                                {"namespaces"},
	"cluster.x-k8s.io":                {"clusters", "clusterclasses", "machinedeployments", "machinesets", "machinepools", "machines"},
	"controlplane.cluster.x-k8s.io":   {"kubeadmcontrolplanes"},
	"infrastructure.cluster.x-k8s.io": {"azureclusters", "azuremanagedcontrolplanes", "azureasomanagedcontrolplanes"},
}

// wantGetRBAC is what the webhook reads one object at a time, never watches (get only): the
// templates the binding-time check reads.
var wantGetRBAC = map[string][]string{
	"infrastructure.cluster.x-k8s.io": {"azuremachinetemplates", "azuremachinepools", "azuremanagedmachinepools", "azureasomanagedmachinepools"},
}

// wantMetricsAuthRBAC is what the metrics filter needs (metrics.secure, the default).
var wantMetricsAuthRBAC = map[string][]string{
	"authentication.k8s.io": {"tokenreviews"},
	"authorization.k8s.io":  {"subjectaccessreviews"},
}

func TestTemplateDefault(t *testing.T) {
	objs := render(t)
	checkCommon(t, objs)

	// Exactly these objects: nothing optional is on by default.
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	sort.Strings(kinds)
	want := []string{"Certificate", "Certificate", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment",
		"Issuer", "Issuer", "MutatingWebhookConfiguration", "PodDisruptionBudget", "Service", "Service",
		"ServiceAccount", "ValidatingWebhookConfiguration"}
	if !slices.Equal(kinds, want) {
		t.Errorf("rendered kinds:\n got %v\nwant %v", kinds, want)
	}

	dep := typed[*appsv1.Deployment](t, one(t, objs, "Deployment"))
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas = %d, want 2", *dep.Spec.Replicas)
	}
	ru := dep.Spec.Strategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() != 1 {
		t.Errorf("rolling update = %+v, want maxUnavailable 0, maxSurge 1 (never fewer serving replicas)", ru)
	}
	pod := dep.Spec.Template.Spec
	if pod.PriorityClassName != "system-cluster-critical" {
		t.Errorf("priorityClassName = %q", pod.PriorityClassName)
	}
	c := pod.Containers[0]
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[res]; !ok {
			t.Errorf("no %s request", res)
		}
		if _, ok := c.Resources.Limits[res]; !ok {
			t.Errorf("no %s limit", res)
		}
	}
	if c.Image != "ghcr.io/capz-encryption-webhook/capz-encryption-webhook:0.1.0" {
		t.Errorf("image = %q, want the chart's appVersion as tag", c.Image)
	}
	// The binary's contract, flag by flag.
	wantArgs := []string{"serve", "--cert-dir=/tmp/k8s-webhook-server/serving-certs", "--webhook-port=9443",
		"--metrics-bind-address=:8080", "--metrics-secure=true", "--metrics-cert-dir=/tmp/k8s-webhook-server/serving-certs", "--health-probe-bind-address=:8081",
		"--policy=/etc/capz-encryption-webhook/policy.yaml", "--policy-last-good=/tmp/policy-last-good.yaml", "--on-bad-policy=warn-only",
		"--enable-http2=false", "--webhook-timeout=10s", "--log-level=info"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args:\n got %q\nwant %q", c.Args, wantArgs)
	}
	// GOMEMLIMIT is derived from the container's memory limit, which the downward API passes.
	if len(c.Env) != 1 || c.Env[0].Name != "MEMORY_LIMIT" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.ResourceFieldRef == nil ||
		c.Env[0].ValueFrom.ResourceFieldRef.Resource != "limits.memory" || c.Env[0].ValueFrom.ResourceFieldRef.ContainerName != c.Name {
		t.Errorf("env = %+v, want MEMORY_LIMIT from this container's limits.memory", c.Env)
	}
	// Spread across nodes (required) and zones (preferred).
	spread := map[string]corev1.UnsatisfiableConstraintAction{}
	for _, tsc := range pod.TopologySpreadConstraints {
		spread[tsc.TopologyKey] = tsc.WhenUnsatisfiable
		sel, err := metav1LabelSelector(tsc.LabelSelector)
		if err != nil || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
			t.Errorf("topology spread on %s does not select the pods (%v)", tsc.TopologyKey, err)
		}
	}
	if spread["kubernetes.io/hostname"] != corev1.DoNotSchedule || spread["topology.kubernetes.io/zone"] != corev1.ScheduleAnyway {
		t.Errorf("topology spread = %v, want hostname DoNotSchedule and zone ScheduleAnyway", spread)
	}

	pdb := typed[*policyv1.PodDisruptionBudget](t, one(t, objs, "PodDisruptionBudget"))
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
		t.Errorf("PDB = %+v, want maxUnavailable 1", pdb.Spec)
	}
	if pdb.Spec.UnhealthyPodEvictionPolicy == nil || *pdb.Spec.UnhealthyPodEvictionPolicy != policyv1.AlwaysAllow {
		t.Errorf("PDB unhealthyPodEvictionPolicy = %v, want AlwaysAllow", pdb.Spec.UnhealthyPodEvictionPolicy)
	}

	m, v, err := chart.Webhooks(objs)
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string]struct {
		failurePolicy *admissionregistrationv1.FailurePolicyType
		timeout       *int32
	}{
		"mutating":   {m.Webhooks[0].FailurePolicy, m.Webhooks[0].TimeoutSeconds},
		"validating": {v.Webhooks[0].FailurePolicy, v.Webhooks[0].TimeoutSeconds},
	} {
		if *w.failurePolicy != admissionregistrationv1.Fail {
			t.Errorf("%s: failurePolicy = %s, want Fail by default (fail closed)", name, *w.failurePolicy)
		}
		if *w.timeout != 10 {
			t.Errorf("%s: timeoutSeconds = %d, want 10", name, *w.timeout)
		}
	}
	// The chart's own conditions: UPDATEs that leave the spec alone and objects being deleted are
	// never sent (test/e2e shows them compiling and working on a real apiserver).
	for _, mc := range [][]admissionregistrationv1.MatchCondition{m.Webhooks[0].MatchConditions, v.Webhooks[0].MatchConditions} {
		if len(mc) != 2 || mc[0].Name != "capz-encryption-webhook-spec-changed" || mc[1].Name != "capz-encryption-webhook-not-deleting" ||
			!strings.Contains(mc[0].Expression, "object.spec != oldObject.spec") || !strings.Contains(mc[1].Expression, "deletionTimestamp") {
			t.Errorf("matchConditions = %+v, want the chart's two", mc)
		}
	}

	// The CA chain: self-signed Issuer -> CA Certificate -> CA Issuer -> serving Certificate.
	issuers := map[string]*unstructured.Unstructured{}
	for _, o := range chart.Find(objs, "Issuer") {
		issuers[o.GetName()] = o
	}
	certs := map[string]*unstructured.Unstructured{}
	for _, o := range chart.Find(objs, "Certificate") {
		certs[o.GetName()] = o
	}
	fullname := chart.DefaultRelease
	ca, serving := certs[fullname+"-ca"], certs[fullname+"-serving-cert"]
	if ca == nil || serving == nil {
		t.Fatalf("certificates: %v", sortedKeys(certs))
	}
	if _, ok := issuers[str(t, ca, "spec", "issuerRef", "name")].Object["spec"].(map[string]any)["selfSigned"]; !ok {
		t.Error("the CA Certificate is not issued by the self-signed Issuer")
	}
	if isCA, _, _ := unstructured.NestedBool(ca.Object, "spec", "isCA"); !isCA {
		t.Error("the CA Certificate is not isCA")
	}
	if p := str(t, ca, "spec", "privateKey", "rotationPolicy"); p != "Never" {
		t.Errorf("CA rotationPolicy = %s, want Never (the CA keeps its key, so the caBundle stays valid)", p)
	}
	caIssuer := issuers[str(t, serving, "spec", "issuerRef", "name")]
	if caIssuer == nil || str(t, caIssuer, "spec", "ca", "secretName") != str(t, ca, "spec", "secretName") {
		t.Error("the serving Certificate is not issued by a CA Issuer made from the CA Certificate's secret")
	}
}

// TestTemplateScenarios renders every option (chart.Scenarios) and checks what the option is for, on
// top of the invariants every render must keep.
func TestTemplateScenarios(t *testing.T) {
	checks := map[string]func(t *testing.T, objs []*unstructured.Unstructured){
		"default": func(t *testing.T, objs []*unstructured.Unstructured) {},
		"user-issuer": func(t *testing.T, objs []*unstructured.Unstructured) {
			if n := len(chart.Find(objs, "Issuer")); n != 0 {
				t.Errorf("%d Issuers rendered; the user's issuer replaces the chart's CA", n)
			}
			certs := chart.Find(objs, "Certificate")
			if len(certs) != 1 {
				t.Fatalf("want only the serving Certificate, got %d", len(certs))
			}
			if got := str(t, certs[0], "spec", "issuerRef", "name") + "/" + str(t, certs[0], "spec", "issuerRef", "kind"); got != "corp-ca/ClusterIssuer" {
				t.Errorf("issuerRef = %s", got)
			}
		},
		"user-secret": checkUserSecret,
		"user-secret-plain-pem": func(t *testing.T, objs []*unstructured.Unstructured) {
			checkUserSecret(t, objs)
		},
		"network-policy": func(t *testing.T, objs []*unstructured.Unstructured) {
			np := typed[*networkingv1.NetworkPolicy](t, one(t, objs, "NetworkPolicy"))
			dep := typed[*appsv1.Deployment](t, one(t, objs, "Deployment"))
			sel, _ := metav1LabelSelector(&np.Spec.PodSelector)
			if !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
				t.Error("the NetworkPolicy does not select the webhook's pods")
			}
			ingressPorts := map[string][]networkingv1.NetworkPolicyPeer{}
			for _, r := range np.Spec.Ingress {
				for _, p := range r.Ports {
					ingressPorts[p.Port.String()] = r.From
				}
			}
			for _, p := range []string{"webhook-server", "health", "metrics"} {
				if _, ok := ingressPorts[p]; !ok {
					t.Errorf("no ingress rule for port %s", p)
				}
			}
			if len(ingressPorts["webhook-server"]) != 0 {
				t.Error("webhook ingress is restricted by default; the API server calls from outside the pod network")
			}
			if len(ingressPorts["metrics"]) != 1 {
				t.Error("metricsFrom not applied")
			}
			if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || len(np.Spec.Egress) != 3 {
				t.Errorf("egress = %+v, want DNS, API server/Azure and the extra rule", np.Spec.Egress)
			}
		},
		"service-monitor": func(t *testing.T, objs []*unstructured.Unstructured) {
			sm := one(t, objs, "ServiceMonitor")
			if sm.GetLabels()["release"] != "kube-prometheus-stack" {
				t.Error("serviceMonitor.labels not applied")
			}
			sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			var metricsSvc *corev1.Service
			for _, s := range chart.Find(objs, "Service") {
				svc := typed[*corev1.Service](t, s)
				if labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)) {
					if metricsSvc != nil {
						t.Errorf("the ServiceMonitor selects more than one Service (%s, %s)", metricsSvc.Name, svc.Name)
					}
					metricsSvc = svc
				}
			}
			if metricsSvc == nil || metricsSvc.Spec.Ports[0].Name != "metrics" {
				t.Fatalf("the ServiceMonitor selects no metrics Service")
			}
			// Metrics are HTTPS with bearer-token authentication by default; the serving certificate
			// names the metrics Service, and Prometheus checks it against the chart's CA.
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			ep, _ := eps[0].(map[string]any)
			ca, _, _ := unstructured.NestedString(ep, "tlsConfig", "ca", "secret", "key")
			server, _, _ := unstructured.NestedString(ep, "tlsConfig", "serverName")
			if ep["scheme"] != "https" || ep["bearerTokenFile"] == nil || ca != "ca.crt" || server != metricsSvc.Name+"."+metricsSvc.Namespace+".svc" {
				t.Errorf("ServiceMonitor endpoint = %v, want https with a bearer token and the chart's CA", ep)
			}
			for _, c := range chart.Find(objs, "Certificate") {
				names, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
				if strings.HasSuffix(c.GetName(), "-serving-cert") && !slices.Contains(names, server) {
					t.Errorf("the serving certificate does not name %s: %v", server, names)
				}
			}
			endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != "metrics" {
				t.Errorf("endpoints = %v", endpoints)
			}
		},
		"audit": func(t *testing.T, objs []*unstructured.Unstructured) {
			args := typed[*appsv1.Deployment](t, one(t, objs, "Deployment")).Spec.Template.Spec.Containers[0].Args
			for _, a := range []string{"--audit-interval=90m", "--audit-reports=true", "--audit-events=true", "--audit-event-repeat=12h",
				"--leader-election-namespace=" + ns, "--leader-election-id=capz-encryption-webhook-audit"} {
				if !slices.Contains(args, a) {
					t.Errorf("args %q lack %s", args, a)
				}
			}
			crd := one(t, objs, "CustomResourceDefinition")
			if crd.GetName() != "reports.openreports.io" || crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
				t.Errorf("CRD %s annotations %v: want reports.openreports.io, kept on uninstall", crd.GetName(), crd.GetAnnotations())
			}
			lease := one(t, objs, "Role")
			if rules, _, _ := unstructured.NestedSlice(lease.Object, "rules"); len(rules) != 2 {
				t.Errorf("Lease role rules = %v", rules)
			}
			pr := one(t, objs, "PrometheusRule")
			if pr.GetLabels()["release"] != "kube-prometheus-stack" {
				t.Error("prometheusRule.labels not applied")
			}
			groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
			exprs := map[string]string{}
			for _, g := range groups {
				rules, _ := g.(map[string]any)["rules"].([]any)
				for _, r := range rules {
					m := r.(map[string]any)
					exprs[m["alert"].(string)] = m["expr"].(string)
				}
			}
			for alert, want := range map[string]string{
				"CAPZEncryptionKeyExpiresSoon":  "capz_encryption_webhook_des_key_expiry_timestamp_seconds) - time() < 3888000",
				"CAPZEncryptionKeyExpired":      "capz_encryption_webhook_des_key_expiry_timestamp_seconds) - time() <= 0",
				"CAPZEncryptionAuditViolations": `capz_encryption_webhook_violations{action="deny"}`,
				"CAPZEncryptionAuditStale":      "capz_encryption_webhook_audit_last_run_timestamp_seconds) > 16200",
			} {
				if !strings.Contains(exprs[alert], want) {
					t.Errorf("alert %s: expr %q lacks %q", alert, exprs[alert], want)
				}
			}
		},
		// The PrometheusRule and the dashboard are checked in depth by observability_test.go.
		"observability": func(t *testing.T, objs []*unstructured.Unstructured) {
			if len(chart.Find(objs, "PrometheusRule")) != 1 || len(chart.Find(objs, "ServiceMonitor")) != 1 || len(chart.Find(objs, "ConfigMap")) != 2 {
				t.Error("want a PrometheusRule, a ServiceMonitor and the dashboard ConfigMap next to the policy")
			}
		},
		"workload-identity": func(t *testing.T, objs []*unstructured.Unstructured) {
			dep := typed[*appsv1.Deployment](t, one(t, objs, "Deployment"))
			if dep.Spec.Template.Labels["azure.workload.identity/use"] != "true" {
				t.Error("pod label azure.workload.identity/use missing")
			}
			sa := typed[*corev1.ServiceAccount](t, one(t, objs, "ServiceAccount"))
			if sa.Annotations["azure.workload.identity/client-id"] != chart.TestClientID ||
				sa.Annotations["azure.workload.identity/tenant-id"] != chart.TestTenantID {
				t.Errorf("service account annotations = %v", sa.Annotations)
			}
			if dep.Spec.Template.Spec.ServiceAccountName != sa.Name {
				t.Error("the pods do not use the annotated service account")
			}
			args := dep.Spec.Template.Spec.Containers[0].Args
			for _, a := range []string{"--azure-subscription-id=" + chart.TestSubscription, "--azure-cloud=AzureUSGovernmentCloud",
				"--azure-arm-endpoint=https://management.usgovcloudapi.net/", "--sku-refresh-interval=6h",
				// The federated token only: the default chain could fall back to the node's identity.
				"--azure-credential=workload-identity"} {
				if !slices.Contains(args, a) {
					t.Errorf("args %q lack %s", args, a)
				}
			}
		},
		"palette": func(t *testing.T, objs []*unstructured.Unstructured) {
			doc := policyDoc(t, objs)
			want := map[string]any{"cloud": map[string]any{"azure": map[string]any{
				"diskEncryptionSetID": chart.TestDESID, "encryptionAtHost": true}}}
			if !reflect.DeepEqual(doc, want) {
				t.Errorf("policy file = %v, want the Palette pack-values document %v", doc, want)
			}
		},
		"match-conditions": func(t *testing.T, objs []*unstructured.Unstructured) {
			m, v, err := chart.Webhooks(objs)
			if err != nil {
				t.Fatal(err)
			}
			for _, mc := range [][]admissionregistrationv1.MatchCondition{m.Webhooks[0].MatchConditions, v.Webhooks[0].MatchConditions} {
				if len(mc) != 3 || mc[0].Name != "capz-encryption-webhook-spec-changed" || mc[2].Name != "not-capz-controller" {
					t.Errorf("matchConditions = %+v, want the chart's two, then the user's", mc)
				}
			}
		},
		"policy": func(t *testing.T, objs []*unstructured.Unstructured) {
			doc := policyDoc(t, objs)
			if warnOnly, _ := doc["warnOnly"].(bool); !warnOnly || doc["requireCustomerManagedKeys"] != any(true) || doc["defaultLocation"] != "eastus" {
				t.Errorf("policy file = %v", doc)
			}
			defaults, _ := doc["defaults"].([]any)
			if len(defaults) != 2 {
				t.Fatalf("defaults = %v", doc["defaults"])
			}
			first := defaults[0].(map[string]any)
			if first["diskEncryptionSetID"] != chart.TestDESID || first["name"] != "prod-eastus" {
				t.Errorf("defaults[0] = %v", first)
			}
			if rules := doc["rules"].(map[string]any); rules["sku-unknown"] != "warn" || rules["des-key-rotation"] != "audit" {
				t.Errorf("rules = %v", rules)
			}
		},
		"webhook-tuning": func(t *testing.T, objs []*unstructured.Unstructured) {
			if n := len(chart.Find(objs, "MutatingWebhookConfiguration")); n != 0 {
				t.Error("webhook.mutating.enabled=false still renders the mutating webhook")
			}
			vs := chart.Find(objs, "ValidatingWebhookConfiguration")
			if len(vs) != 1 {
				t.Fatal("no validating webhook")
			}
			v := typed[*admissionregistrationv1.ValidatingWebhookConfiguration](t, vs[0])
			w := v.Webhooks[0]
			if *w.FailurePolicy != admissionregistrationv1.Ignore || *w.TimeoutSeconds != 5 {
				t.Errorf("failurePolicy %s timeoutSeconds %d", *w.FailurePolicy, *w.TimeoutSeconds)
			}
			sel, err := metav1LabelSelector(w.NamespaceSelector)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]bool{"capi-system": false, "capz-system": false, "kube-system": false, ns: false, "team-a": true} {
				if got := sel.Matches(labels.Set{"kubernetes.io/metadata.name": name}); got != want {
					t.Errorf("namespace %s selected = %v, want %v", name, got, want)
				}
			}
			if sel.Matches(labels.Set{"kubernetes.io/metadata.name": "team-a", "capz-encryption-webhook.io/skip": ""}) {
				t.Error("the extra matchExpression is not applied")
			}
		},
		"cel": func(t *testing.T, objs []*unstructured.Unstructured) {
			dep := typed[*appsv1.Deployment](t, one(t, objs, "Deployment"))
			checkCELRBAC(t, objs, dep)
			for _, a := range []string{"--cel-sync", "--cel-namespace=" + ns, "--cel-exclude-namespaces=capi-system,capz-system",
				`--cel-namespace-selector={"matchExpressions":[],"matchLabels":{"capz-encryption-webhook.io/enforce":"true"}}`,
				"--leader-election-id=capz-encryption-webhook-audit", "--leader-election-namespace=" + ns} {
				if !slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, a) {
					t.Errorf("args %q lack %s", dep.Spec.Template.Spec.Containers[0].Args, a)
				}
			}
			v := typed[*admissionregistrationv1.ValidatingWebhookConfiguration](t, one(t, objs, "ValidatingWebhookConfiguration"))
			if mc := v.Webhooks[0].MatchConditions; !slices.ContainsFunc(mc, func(c admissionregistrationv1.MatchCondition) bool {
				return c.Name == "capz-encryption-webhook-needs-data"
			}) ||
				*v.Webhooks[0].FailurePolicy != admissionregistrationv1.Ignore {
				t.Errorf("validating webhook: matchConditions %+v, failurePolicy %s", mc, *v.Webhooks[0].FailurePolicy)
			}
		},
		"misc": func(t *testing.T, objs []*unstructured.Unstructured) {
			dep := typed[*appsv1.Deployment](t, one(t, objs, "Deployment"))
			pod := dep.Spec.Template.Spec
			c := pod.Containers[0]
			if *dep.Spec.Replicas != 3 || pod.PriorityClassName != "" {
				t.Errorf("replicas %d priorityClassName %q", *dep.Spec.Replicas, pod.PriorityClassName)
			}
			if !strings.HasPrefix(c.Image, "ghcr.io/capz-encryption-webhook/capz-encryption-webhook@sha256:") {
				t.Errorf("image = %s, want pinned by digest", c.Image)
			}
			for _, a := range []string{"--metrics-bind-address=0", "--log-level=debug", "--sku-catalog=/etc/capz-encryption-webhook-skus/skus.json", "--sku-refresh-interval=1h"} {
				if !slices.Contains(c.Args, a) {
					t.Errorf("args %q lack %s", c.Args, a)
				}
			}
			for _, p := range c.Ports {
				if p.Name == "metrics" {
					t.Error("metrics port exposed with metrics disabled")
				}
			}
			for _, s := range chart.Find(objs, "Service") {
				if strings.HasSuffix(s.GetName(), "-metrics") {
					t.Error("metrics Service rendered with metrics disabled")
				}
			}
			if len(pod.TopologySpreadConstraints) != 1 || pod.TopologySpreadConstraints[0].LabelSelector == nil {
				t.Errorf("topologySpreadConstraints = %+v, want the user's, with the pod selector added", pod.TopologySpreadConstraints)
			}
			if len(c.Env) != 2 || c.Env[0].Name != "MEMORY_LIMIT" || c.Env[1].Name != "HTTPS_PROXY" {
				t.Errorf("env = %+v, want MEMORY_LIMIT then extraEnv", c.Env)
			}
			pdb := typed[*policyv1.PodDisruptionBudget](t, one(t, objs, "PodDisruptionBudget"))
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Spec.MaxUnavailable != nil {
				t.Errorf("PDB = %+v, want minAvailable 2 only", pdb.Spec)
			}
			var skuVol bool
			for _, v := range pod.Volumes {
				skuVol = skuVol || v.ConfigMap != nil && v.ConfigMap.Name == "azure-skus"
			}
			if !skuVol {
				t.Error("no volume for the SKU catalog ConfigMap")
			}
			if typed[*corev1.ServiceAccount](t, one(t, objs, "ServiceAccount")).Annotations["team"] != "platform" {
				t.Error("serviceAccount.annotations not applied")
			}
		},
	}
	for _, s := range chart.Scenarios() {
		check, ok := checks[s.Name]
		if !ok {
			t.Errorf("scenario %s has no check here", s.Name)
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			objs := render(t, s.Args...)
			checkCommon(t, objs)
			check(t, objs)
		})
	}
}

// TestTemplateMinKubeVersion renders the chart for the oldest Kubernetes it claims to support, and
// checks that an older one is refused (matchConditions need 1.30).
func TestTemplateMinKubeVersion(t *testing.T) {
	helm := helmPath(t)
	if _, err := chart.Template(chart.Options{Helm: helm, KubeVersion: chart.MinKubeVersion, Args: scenarioArgs(t, "match-conditions")}); err != nil {
		t.Errorf("Kubernetes %s: %v", chart.MinKubeVersion, err)
	}
	_, err := chart.Template(chart.Options{Helm: helm, KubeVersion: "1.29.9"})
	if err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("Kubernetes 1.29 accepted (err %v)", err)
	}
}

func checkUserSecret(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	if n := len(chart.Find(objs, "Certificate")) + len(chart.Find(objs, "Issuer")); n != 0 {
		t.Errorf("%d cert-manager objects rendered with certManager.enabled=false", n)
	}
	dep := typed[*appsv1.Deployment](t, one(t, objs, "Deployment"))
	if certSecret(t, dep) != "webhook-tls" {
		t.Errorf("the pods mount %s, not the user's Secret", certSecret(t, dep))
	}
	m, v, err := chart.Webhooks(objs)
	if err != nil {
		t.Fatal(err)
	}
	for _, cc := range []admissionregistrationv1.WebhookClientConfig{m.Webhooks[0].ClientConfig, v.Webhooks[0].ClientConfig} {
		if string(cc.CABundle) != string(testsupport.CAPEM()) {
			t.Errorf("caBundle = %q, want the given CA", cc.CABundle)
		}
	}
	if _, ok := m.Annotations["cert-manager.io/inject-ca-from"]; ok {
		t.Error("inject-ca-from set without cert-manager")
	}
}

// checkCommon holds what every render must keep, whatever the values.
func checkCommon(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	if len(objs) == 0 {
		t.Fatal("nothing rendered")
	}
	for _, o := range objs {
		// Built-in kinds must match their API types exactly (CRD kinds are checked against their
		// schemas by test/chartapply).
		if scheme.Scheme.Recognizes(o.GroupVersionKind()) {
			_ = typed[runtime.Object](t, o)
		}
		if clusterScoped[o.GetKind()] {
			if o.GetNamespace() != "" {
				t.Errorf("%s %s is cluster-scoped but has namespace %s", o.GetKind(), o.GetName(), o.GetNamespace())
			}
		} else if o.GetNamespace() != ns {
			t.Errorf("%s %s: namespace %q, want the release namespace (helm template does not add it)", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		// The break-glass command selects by this label.
		if o.GetLabels()["app.kubernetes.io/name"] != "capz-encryption-webhook" {
			t.Errorf("%s %s lacks app.kubernetes.io/name=capz-encryption-webhook", o.GetKind(), o.GetName())
		}
	}

	dep := typed[*appsv1.Deployment](t, one(t, objs, "Deployment"))
	checkPodSecurity(t, dep)
	checkServicesAndPDB(t, objs, dep)
	checkRBAC(t, withoutAuditRBAC(objs), dep)
	checkWebhooks(t, objs, dep)
	if cm := policyDoc(t, objs); len(cm) == 0 {
		t.Error("empty policy file")
	}
}

func checkPodSecurity(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	pod := dep.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	if psc != nil && (psc.RunAsUser == nil || *psc.RunAsUser == 0) {
		t.Error("pod runAsUser is not a non-zero UID")
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("want one container, got %d (+%d init)", len(pod.Containers), len(pod.InitContainers))
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("host namespaces used")
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("no container securityContext")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("privileged")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities = %+v, want drop ALL and nothing added", sc.Capabilities)
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("container runAsNonRoot is not true")
	}
	probes := map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe}
	for path, p := range probes {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "health" {
			t.Errorf("probe for %s = %+v", path, p)
		}
	}
	// Mounts: a writable emptyDir at /tmp, the certificate Secret read-only at --cert-dir, the policy
	// ConfigMap read-only as a directory (subPath mounts never see ConfigMap updates).
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
		if m.SubPath != "" {
			t.Errorf("mount %s uses subPath", m.MountPath)
		}
	}
	if m, ok := mounts["/tmp"]; !ok || vols[m.Name].EmptyDir == nil {
		t.Error("no emptyDir at /tmp")
	}
	if m, ok := mounts["/tmp/k8s-webhook-server/serving-certs"]; !ok || !m.ReadOnly || vols[m.Name].Secret == nil {
		t.Error("the certificate Secret is not mounted read-only at the cert dir")
	}
	if m, ok := mounts["/etc/capz-encryption-webhook"]; !ok || !m.ReadOnly || vols[m.Name].ConfigMap == nil {
		t.Error("the policy ConfigMap is not mounted read-only at /etc/capz-encryption-webhook")
	}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly && m.MountPath != "/tmp" {
			t.Errorf("writable mount %s", m.MountPath)
		}
	}
	if !slices.Contains(c.Args, "--cert-dir=/tmp/k8s-webhook-server/serving-certs") || c.Args[0] != "serve" {
		t.Errorf("args = %q", c.Args)
	}
}

func checkServicesAndPDB(t *testing.T, objs []*unstructured.Unstructured, dep *appsv1.Deployment) {
	t.Helper()
	podLabels := labels.Set(dep.Spec.Template.Labels)
	ports := map[string]int32{}
	for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, o := range chart.Find(objs, "Service") {
		svc := typed[*corev1.Service](t, o)
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s does not select the pods", svc.Name)
		}
		for _, p := range svc.Spec.Ports {
			if _, ok := ports[p.TargetPort.String()]; !ok {
				t.Errorf("Service %s targets port %s, which the container does not name", svc.Name, p.TargetPort.String())
			}
		}
	}
	sel, err := metav1LabelSelector(dep.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("the Deployment's selector does not match its pods (%v)", err)
	}
	for _, o := range chart.Find(objs, "PodDisruptionBudget") {
		pdb := typed[*policyv1.PodDisruptionBudget](t, o)
		sel, err := metav1LabelSelector(pdb.Spec.Selector)
		if err != nil || !sel.Matches(podLabels) {
			t.Errorf("the PDB does not select the pods (%v)", err)
		}
	}
}

// withoutAuditRBAC leaves out the RBAC of the background audit (audit.enabled; held to
// audit.Permissions by test/chart/kindtable), so that checkRBAC sees the webhook's own, read-only role.
func withoutAuditRBAC(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if strings.HasPrefix(o.GetKind(), "Cluster") && strings.HasSuffix(o.GetName(), "-audit") ||
			strings.HasPrefix(o.GetKind(), "Role") && strings.HasSuffix(o.GetName(), "-leader-election") {
			continue
		}
		out = append(out, o)
	}
	return out
}

func checkRBAC(t *testing.T, objs []*unstructured.Unstructured, dep *appsv1.Deployment) {
	t.Helper()
	// The compiled admission policies' RBAC (cel.mode) is checked by checkCELRBAC; here only the
	// webhook's own, which is read-only in every scenario.
	notCEL := func(kind string) []*unstructured.Unstructured {
		return slices.DeleteFunc(chart.Find(objs, kind), func(o *unstructured.Unstructured) bool { return strings.HasSuffix(o.GetName(), "-cel") })
	}
	if n := len(notCEL("Role")) + len(notCEL("RoleBinding")) + len(chart.Find(objs, "Secret")); n != 0 {
		t.Errorf("%d Roles, RoleBindings or Secrets rendered", n)
	}
	var role *rbacv1.ClusterRole
	secure := false
	for _, o := range notCEL("ClusterRole") {
		r := typed[*rbacv1.ClusterRole](t, o)
		if !strings.HasSuffix(r.Name, "-metrics-reader") {
			role = r
			continue
		}
		secure = true
		if len(r.Rules) != 1 || !slices.Equal(r.Rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(r.Rules[0].Verbs, []string{"get"}) {
			t.Errorf("metrics reader role: %+v", r.Rules)
		}
	}
	if role == nil {
		t.Fatal("no ClusterRole for the webhook")
	}
	got, gets, reviews := map[string][]string{}, map[string][]string{}, map[string][]string{}
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) != 0 || len(r.ResourceNames) != 0 {
			t.Errorf("unexpected rule %+v", r)
		}
		if _, review := wantMetricsAuthRBAC[r.APIGroups[0]]; review {
			if !slices.Equal(r.Verbs, []string{"create"}) {
				t.Errorf("rule %+v: verbs must be exactly create", r)
			}
			reviews[r.APIGroups[0]] = append(reviews[r.APIGroups[0]], r.Resources...)
			continue
		}
		into := got
		switch {
		case slices.Equal(r.Verbs, []string{"get"}):
			into = gets
		case !slices.Equal(r.Verbs, []string{"get", "list", "watch"}):
			t.Errorf("rule %+v: verbs must be exactly get, list, watch (or get alone)", r)
		}
		for _, g := range r.APIGroups {
			into[g] = append(into[g], r.Resources...)
		}
		for _, res := range r.Resources {
			if res == "secrets" || res == "*" || strings.Contains(res, "/") {
				t.Errorf("rule grants %s", res)
			}
		}
	}
	if !reflect.DeepEqual(got, wantRBAC) {
		t.Errorf("ClusterRole grants\n %v\nwant\n %v", got, wantRBAC)
	}
	if !reflect.DeepEqual(gets, wantGetRBAC) {
		t.Errorf("ClusterRole grants get alone on\n %v\nwant\n %v", gets, wantGetRBAC)
	}
	if want := map[string][]string{}; secure && !reflect.DeepEqual(reviews, wantMetricsAuthRBAC) || !secure && !reflect.DeepEqual(reviews, want) {
		t.Errorf("ClusterRole grants reviews %v (secure metrics %v)", reviews, secure)
	}
	crbs := notCEL("ClusterRoleBinding")
	if len(crbs) != 1 {
		t.Fatalf("%d ClusterRoleBindings for the webhook", len(crbs))
	}
	crb := typed[*rbacv1.ClusterRoleBinding](t, crbs[0])
	if crb.RoleRef.Name != role.Name || len(crb.Subjects) != 1 || crb.Subjects[0].Name != dep.Spec.Template.Spec.ServiceAccountName || crb.Subjects[0].Namespace != ns {
		t.Errorf("ClusterRoleBinding %+v does not bind the role to the pods' service account", crb)
	}
	celObjs := 0
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"} {
		celObjs += len(chart.Find(objs, kind)) - len(notCEL(kind))
	}
	if sync := slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--cel-sync"); sync != (celObjs > 0) {
		t.Errorf("--cel-sync %v, but %d RBAC objects for it", sync, celObjs)
	}
}

// checkCELRBAC: with a cel mode, the service account may write the four admission-policy kinds, and
// in the release namespace only the Lease it shares with the background audit (by name; create
// cannot be narrowed), plus events.
func checkCELRBAC(t *testing.T, objs []*unstructured.Unstructured, dep *appsv1.Deployment) {
	t.Helper()
	sa := dep.Spec.Template.Spec.ServiceAccountName
	var cr *rbacv1.ClusterRole
	var role *rbacv1.Role
	for _, o := range chart.Find(objs, "ClusterRole") {
		if strings.HasSuffix(o.GetName(), "-cel") {
			cr = typed[*rbacv1.ClusterRole](t, o)
		}
	}
	for _, o := range chart.Find(objs, "Role") {
		if strings.HasSuffix(o.GetName(), "-leader-election") {
			role = typed[*rbacv1.Role](t, o)
		}
	}
	if cr == nil || role == nil {
		t.Fatal("no RBAC for the compiled admission policies")
	}
	want := []rbacv1.PolicyRule{{APIGroups: []string{"admissionregistration.k8s.io"},
		Resources: []string{"validatingadmissionpolicies", "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"},
		Verbs:     []string{"get", "list", "create", "patch", "delete"}}}
	if !reflect.DeepEqual(cr.Rules, want) {
		t.Errorf("ClusterRole %s: %+v", cr.Name, cr.Rules)
	}
	if role.Namespace != ns {
		t.Errorf("Role in %s", role.Namespace)
	}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			switch {
			case res == "leases" && !slices.Equal(r.Verbs, []string{"create"}) && !slices.Equal(r.ResourceNames, []string{"capz-encryption-webhook-audit"}):
				t.Errorf("Lease rule not narrowed to the webhook's Lease: %+v", r)
			case res != "leases" && res != "events":
				t.Errorf("Role grants %s", res)
			}
		}
	}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, o := range chart.Find(objs, kind) {
			if !strings.HasSuffix(o.GetName(), "-cel") {
				continue
			}
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			if len(subjects) != 1 || subjects[0].(map[string]any)["name"] != sa {
				t.Errorf("%s %s binds %v", kind, o.GetName(), subjects)
			}
		}
	}
}

// checkPolicyCheckWebhook: the policy ConfigMap, and only it, is sent to /validate-policy; a webhook
// that is down lets edits through (failurePolicy Ignore), so that it never blocks its own repair.
func checkPolicyCheckWebhook(t *testing.T, objs []*unstructured.Unstructured, w admissionregistrationv1.ValidatingWebhook) {
	t.Helper()
	// The policy's ConfigMap; others (the Grafana dashboard) are not the policy check's business.
	var cms []*unstructured.Unstructured
	for _, cm := range chart.Find(objs, "ConfigMap") {
		if strings.HasSuffix(cm.GetName(), "-policy") {
			cms = append(cms, cm)
		}
	}
	if len(cms) != 1 {
		t.Fatalf("%d policy ConfigMaps", len(cms))
	}
	r := w.Rules
	switch {
	case w.Name != "policy.capz-encryption-webhook.io" || w.ClientConfig.Service == nil || *w.ClientConfig.Service.Path != "/validate-policy":
		t.Errorf("policy check webhook: %s %+v", w.Name, w.ClientConfig)
	case w.FailurePolicy == nil || *w.FailurePolicy != admissionregistrationv1.Ignore:
		t.Errorf("policy check: failurePolicy = %v, want Ignore", w.FailurePolicy)
	case len(r) != 1 || !slices.Equal(r[0].APIGroups, []string{""}) || !slices.Equal(r[0].Resources, []string{"configmaps"}) ||
		!slices.Equal(r[0].Operations, []admissionregistrationv1.OperationType{"CREATE", "UPDATE"}):
		t.Errorf("policy check rules: %+v", r)
	case w.NamespaceSelector == nil || w.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != cms[0].GetNamespace():
		t.Errorf("policy check namespaceSelector = %+v, want the release namespace %s", w.NamespaceSelector, cms[0].GetNamespace())
	case len(w.MatchConditions) != 1 || w.MatchConditions[0].Expression != "object.metadata.name == '"+cms[0].GetName()+"'":
		t.Errorf("policy check matchConditions = %+v, want the name of ConfigMap %s", w.MatchConditions, cms[0].GetName())
	}
}

func checkWebhooks(t *testing.T, objs []*unstructured.Unstructured, dep *appsv1.Deployment) {
	t.Helper()
	var hooks []renderedHook
	for _, o := range chart.Find(objs, "MutatingWebhookConfiguration") {
		m := typed[*admissionregistrationv1.MutatingWebhookConfiguration](t, o)
		if len(m.Webhooks) != 1 {
			t.Fatalf("%d mutating webhooks", len(m.Webhooks))
		}
		mw := m.Webhooks[0]
		// Same fields as a validating webhook, bar reinvocationPolicy.
		vw := admissionregistrationv1.ValidatingWebhook{Name: mw.Name, ClientConfig: mw.ClientConfig, Rules: mw.Rules,
			FailurePolicy: mw.FailurePolicy, MatchPolicy: mw.MatchPolicy, NamespaceSelector: mw.NamespaceSelector,
			ObjectSelector: mw.ObjectSelector, SideEffects: mw.SideEffects, TimeoutSeconds: mw.TimeoutSeconds,
			AdmissionReviewVersions: mw.AdmissionReviewVersions, MatchConditions: mw.MatchConditions}
		hooks = append(hooks, renderedHook{"mutating", vw, mw.ReinvocationPolicy, m.Annotations, "/mutate", []admissionregistrationv1.OperationType{"CREATE"},
			[]ruleWant{{capz, []string{"*"}, wantMutatingResources}}})
	}
	for _, o := range chart.Find(objs, "ValidatingWebhookConfiguration") {
		v := typed[*admissionregistrationv1.ValidatingWebhookConfiguration](t, o)
		if len(v.Webhooks) != 3 {
			t.Fatalf("%d validating webhooks, want the CAPZ one, the policy check and the binding check", len(v.Webhooks))
		}
		checkPolicyCheckWebhook(t, objs, v.Webhooks[1])
		hooks = append(hooks,
			renderedHook{"validating", v.Webhooks[0], nil, v.Annotations, "/validate", []admissionregistrationv1.OperationType{"CREATE", "UPDATE"},
				[]ruleWant{{capz, []string{"*"}, wantValidatingResources}}},
			renderedHook{"binding", v.Webhooks[2], nil, v.Annotations, "/validate-binding", []admissionregistrationv1.OperationType{"CREATE", "UPDATE"},
				wantBindingRules})
	}
	if len(hooks) == 0 {
		t.Fatal("no webhook configuration rendered")
	}
	svcName := ""
	for _, o := range chart.Find(objs, "Service") {
		if typed[*corev1.Service](t, o).Spec.Ports[0].Name == "https" {
			svcName = o.GetName()
		}
	}
	certs := map[string]*unstructured.Unstructured{}
	for _, o := range chart.Find(objs, "Certificate") {
		certs[o.GetNamespace()+"/"+o.GetName()] = o
	}
	for _, h := range hooks {
		w := h.w
		if !slices.Equal(w.AdmissionReviewVersions, []string{"v1"}) {
			t.Errorf("%s: admissionReviewVersions = %v", h.kind, w.AdmissionReviewVersions)
		}
		if w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
			t.Errorf("%s: sideEffects = %v, want None", h.kind, w.SideEffects)
		}
		if w.MatchPolicy == nil || *w.MatchPolicy != admissionregistrationv1.Equivalent {
			t.Errorf("%s: matchPolicy = %v, want Equivalent", h.kind, w.MatchPolicy)
		}
		if w.FailurePolicy == nil || w.TimeoutSeconds == nil {
			t.Errorf("%s: failurePolicy or timeoutSeconds left to the API server's defaults", h.kind)
		}
		if h.kind == "mutating" && (h.reinvoke == nil || *h.reinvoke != admissionregistrationv1.IfNeededReinvocationPolicy) {
			t.Errorf("mutating: reinvocationPolicy = %v, want IfNeeded", h.reinvoke)
		}
		if !strings.HasSuffix(w.Name, ".capz-encryption-webhook.io") {
			t.Errorf("%s: webhook name %s is not qualified", h.kind, w.Name)
		}
		// Only our kinds, only the operations of the contract; never DELETE.
		if len(w.Rules) != len(h.wantRules) {
			t.Fatalf("%s: %d rules, want %d", h.kind, len(w.Rules), len(h.wantRules))
		}
		for i, r := range w.Rules {
			want := h.wantRules[i]
			if !slices.Equal(r.APIGroups, []string{want.group}) || !slices.Equal(r.APIVersions, want.versions) {
				t.Errorf("%s: groups %v versions %v, want %s %v", h.kind, r.APIGroups, r.APIVersions, want.group, want.versions)
			}
			if !slices.Equal(r.Operations, h.wantOps) {
				t.Errorf("%s: operations = %v, want %v", h.kind, r.Operations, h.wantOps)
			}
			if !slices.Equal(r.Resources, want.resources) {
				t.Errorf("%s: resources = %v, want %v", h.kind, r.Resources, want.resources)
			}
			if r.Scope == nil || *r.Scope != admissionregistrationv1.NamespacedScope {
				t.Errorf("%s: scope = %v", h.kind, r.Scope)
			}
		}
		if h.kind == "binding" {
			checkBindingHook(t, w)
		}
		// Never kube-system, never the webhook's own namespace.
		sel, err := metav1LabelSelector(w.NamespaceSelector)
		if err != nil {
			t.Fatalf("%s: namespaceSelector: %v", h.kind, err)
		}
		for _, n := range []string{"kube-system", ns} {
			if sel.Matches(labels.Set{"kubernetes.io/metadata.name": n}) {
				t.Errorf("%s: namespace %s is not left out", h.kind, n)
			}
		}
		found := false
		for _, e := range w.NamespaceSelector.MatchExpressions {
			if e.Key == "kubernetes.io/metadata.name" && e.Operator == "NotIn" && slices.Contains(e.Values, "kube-system") && slices.Contains(e.Values, ns) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no kubernetes.io/metadata.name NotIn [kube-system, %s]", h.kind, ns)
		}
		// The Service, and the certificate trust.
		cc := w.ClientConfig
		if cc.URL != nil || cc.Service == nil || cc.Service.Name != svcName || cc.Service.Namespace != ns ||
			cc.Service.Path == nil || *cc.Service.Path != h.wantPath || cc.Service.Port == nil || *cc.Service.Port != 443 {
			t.Errorf("%s: clientConfig = %+v, want service %s/%s:443%s", h.kind, cc, ns, svcName, h.wantPath)
		}
		inject := h.meta["cert-manager.io/inject-ca-from"]
		switch {
		case inject != "" && len(cc.CABundle) != 0:
			t.Errorf("%s: both inject-ca-from and caBundle", h.kind)
		case inject != "":
			cert := certs[inject]
			if cert == nil {
				t.Fatalf("%s: inject-ca-from %s names no rendered Certificate", h.kind, inject)
			}
			if secret := str(t, cert, "spec", "secretName"); secret != certSecret(t, dep) {
				t.Errorf("%s: injects the CA of %s, whose secret %s is not the one the pods mount (%s)", h.kind, inject, secret, certSecret(t, dep))
			}
			dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
			if !slices.Contains(dnsNames, fmt.Sprintf("%s.%s.svc", svcName, ns)) {
				t.Errorf("serving certificate dnsNames %v lack %s.%s.svc", dnsNames, svcName, ns)
			}
		case len(cc.CABundle) != 0:
			if b, _ := pem.Decode(cc.CABundle); b == nil || b.Type != "CERTIFICATE" {
				t.Errorf("%s: caBundle is not a PEM certificate", h.kind)
			}
		default:
			t.Errorf("%s: neither inject-ca-from nor caBundle: the API server could not trust the webhook", h.kind)
		}
	}
}

// renderedHook is one webhook of either configuration, with what the contract expects of it. A mutating
// webhook is carried in the validating type (they share every field but reinvocationPolicy).
type renderedHook struct {
	kind      string
	w         admissionregistrationv1.ValidatingWebhook
	reinvoke  *admissionregistrationv1.ReinvocationPolicyType
	meta      map[string]string
	wantPath  string
	wantOps   []admissionregistrationv1.OperationType
	wantRules []ruleWant
}

type ruleWant struct {
	group     string
	versions  []string
	resources []string
}

const capz = "infrastructure.cluster.x-k8s.io"

// The binding-time check's rules: the CAPI objects that bind a template to a cluster, in every
// version served.
var wantBindingRules = []ruleWant{
	{"cluster.x-k8s.io", []string{"*"}, []string{"machinedeployments", "machinepools"}},
	{"controlplane.cluster.x-k8s.io", []string{"*"}, []string{"kubeadmcontrolplanes"}},
}

// checkBindingHook: its own failurePolicy (Ignore by default, so a CAPI scale-up never depends on
// the webhook), and a first matchCondition that lets only CREATE and reference changes through.
// What the condition does is shown against a real apiserver in test/e2e (TestBindingMatchConditions).
func checkBindingHook(t *testing.T, w admissionregistrationv1.ValidatingWebhook) {
	t.Helper()
	if w.Name != "validate-binding.capz-encryption-webhook.io" {
		t.Errorf("binding webhook named %s", w.Name)
	}
	if len(w.MatchConditions) == 0 || w.MatchConditions[0].Name != "capz-encryption-webhook-binds-a-template" {
		t.Fatalf("binding webhook matchConditions = %+v", w.MatchConditions)
	}
	for _, want := range []string{"request.operation == 'CREATE'", "spec.?template.?spec.?infrastructureRef",
		"spec.?machineTemplate.?infrastructureRef", "spec.?machineTemplate.?spec.?infrastructureRef"} {
		if !strings.Contains(w.MatchConditions[0].Expression, want) {
			t.Errorf("binding matchCondition lacks %q: %s", want, w.MatchConditions[0].Expression)
		}
	}
}

func certSecret(t *testing.T, dep *appsv1.Deployment) string {
	t.Helper()
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "serving-certs" && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	t.Fatal("no serving-certs volume")
	return ""
}

// policyDoc returns the policy file the ConfigMap holds, parsed.
func policyDoc(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	for _, o := range chart.Find(objs, "ConfigMap") {
		if !strings.HasSuffix(o.GetName(), "-policy") {
			continue
		}
		cm := typed[*corev1.ConfigMap](t, o)
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(cm.Data["policy.yaml"]), &doc); err != nil {
			t.Fatalf("policy.yaml: %v", err)
		}
		return doc
	}
	t.Fatal("no policy ConfigMap")
	return nil
}

func metav1LabelSelector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, fmt.Errorf("no selector")
	}
	return metav1.LabelSelectorAsSelector(s)
}

// TestBindingWebhookValues: the binding check has its own switch and failurePolicy, independent of
// the CAPZ validating webhook's; the user's matchConditions come after its own.
func TestBindingWebhookValues(t *testing.T) {
	names := func(objs []*unstructured.Unstructured) map[string]admissionregistrationv1.ValidatingWebhook {
		out := map[string]admissionregistrationv1.ValidatingWebhook{}
		for _, o := range chart.Find(objs, "ValidatingWebhookConfiguration") {
			for _, w := range typed[*admissionregistrationv1.ValidatingWebhookConfiguration](t, o).Webhooks {
				out[w.Name] = w
			}
		}
		return out
	}
	const binding, validate = "validate-binding.capz-encryption-webhook.io", "validate.capz-encryption-webhook.io"
	def := names(render(t))
	if fp := def[binding].FailurePolicy; fp == nil || *fp != admissionregistrationv1.Ignore {
		t.Errorf("binding failurePolicy = %v, want Ignore by default", fp)
	}
	if fp := def[validate].FailurePolicy; fp == nil || *fp != admissionregistrationv1.Fail {
		t.Errorf("validate failurePolicy = %v, want Fail", fp)
	}
	hooks := names(render(t, "--set", "webhook.binding.failurePolicy=Fail", "--set", "webhook.failurePolicy=Ignore",
		"--set-json", `webhook.matchConditions=[{"name":"not-capi","expression":"request.userInfo.username != 'system:serviceaccount:capi-system:capi-manager'"}]`))
	if fp := hooks[binding].FailurePolicy; *fp != admissionregistrationv1.Fail {
		t.Errorf("binding failurePolicy = %v, want the value's Fail", *fp)
	}
	if fp := hooks[validate].FailurePolicy; *fp != admissionregistrationv1.Ignore {
		t.Errorf("validate failurePolicy = %v, want Ignore", *fp)
	}
	if mc := hooks[binding].MatchConditions; len(mc) != 4 || mc[0].Name != "capz-encryption-webhook-binds-a-template" || mc[3].Name != "not-capi" {
		t.Errorf("binding matchConditions = %+v", mc)
	}
	if only := names(render(t, "--set", "webhook.validating.enabled=false")); len(only) != 1 || only[binding].Name == "" {
		t.Errorf("validating disabled: %v", only)
	}
	if only := names(render(t, "--set", "webhook.binding.enabled=false")); len(only) != 2 || only[validate].Name == "" || only[binding].Name != "" {
		t.Errorf("binding disabled: %v", only)
	}
	if none := names(render(t, "--set", "webhook.binding.enabled=false", "--set", "webhook.validating.enabled=false")); len(none) != 0 {
		t.Errorf("both disabled: %v", none)
	}
}
