package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

// The audit tests' objects: created with the webhook configurations removed, as if they predated the
// webhook, in namespaces of their own.
const (
	auditNS      = "e2e-audit"
	auditStaleNS = "e2e-audit-stale"
)

var (
	azureMachineGVK     = schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: "AzureMachine"}
	azureMachinePoolGVK = schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: "AzureMachinePool"}
	azureClusterGVK     = schema.GroupVersionKind{Group: "infrastructure.cluster.x-k8s.io", Version: "v1beta1", Kind: "AzureCluster"}
	seedOnce            sync.Once
	seedErr             error
)

func in(ns string, u *unstructured.Unstructured) *unstructured.Unstructured {
	u.SetNamespace(ns)
	return u
}

func ofCluster(u *unstructured.Unstructured, cluster string) *unstructured.Unstructured {
	u.SetLabels(map[string]string{"cluster.x-k8s.io/cluster-name": cluster})
	return u
}

// machineSpec: a machine of Cluster "east" (eastus) with the Disk Encryption Set des and encryption at host.
func machineSpec(des string, extra map[string]any) map[string]any {
	spec := map[string]any{"vmSize": "Standard_D4s_v3", "securityProfile": map[string]any{"encryptionAtHost": true},
		"osDisk": map[string]any{"osType": "Linux", "diskSizeGB": int64(128), "managedDisk": map[string]any{
			"storageAccountType": "Premium_LRS", "diskEncryptionSet": map[string]any{"id": des}}}}
	for k, v := range extra {
		spec[k] = v
	}
	return spec
}

// seedAuditObjects creates, once, the objects the audit tests look for, while the webhook is absent:
// both webhook configurations are deleted, the objects created, the configurations put back.
func seedAuditObjects(t *testing.T) {
	t.Helper()
	seedOnce.Do(func() { seedErr = seed() })
	if seedErr != nil {
		t.Fatal(seedErr)
	}
}

func seed() error {
	c := context.Background()
	for _, ns := range []string{auditNS, auditStaleNS} {
		if err := k8s.Create(c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	placeholder := in(auditNS, ofCluster(template("placeholder", "", "Standard_D4s_v3"), "east"))
	setField(placeholder, desPlaceholder(), tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
	lonely := in(auditStaleNS, template("lonely", "eastus", "Standard_D4s_v3"))
	setField(lonely, desPlaceholder(), tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
	compliant := in(auditNS, ofCluster(object(amtGVK, "compliant", map[string]any{"template": map[string]any{"spec": machineSpec(desEast, nil)}}), "east"))
	objs := []*unstructured.Unstructured{
		in(auditNS, object(azureClusterGVK, "east", map[string]any{"location": "eastus", "resourceGroup": rgEast, "subscriptionID": sub})),
		in(auditNS, object(clusterGVK, "east", map[string]any{
			"infrastructureRef": map[string]any{"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "AzureCluster", "name": "east"},
			"controlPlaneRef":   map[string]any{"apiGroup": "controlplane.cluster.x-k8s.io", "kind": "KubeadmControlPlane", "name": "east-cp"}})),
		in(auditNS, ofCluster(template("predates-default", "", "Standard_D4s_v3"), "east")),
		placeholder, compliant, lonely,
		in(auditNS, ofCluster(object(azureMachineGVK, vmBad, machineSpec(desEast, map[string]any{"providerID": providerID(vmBad)})), "east")),
		in(auditNS, ofCluster(object(azureMachineGVK, vmGood, machineSpec(desEast, map[string]any{"providerID": providerID(vmGood)})), "east")),
		in(auditNS, ofCluster(object(azureMachinePoolGVK, poolBad, map[string]any{"location": "eastus", "template": machineSpec(desEast, nil)}), "east")),
	}
	return withoutWebhooks(c, func() error {
		for _, o := range objs {
			if err := k8s.Create(c, o); err != nil {
				return fmt.Errorf("%s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
		return nil
	})
}

// withoutWebhooks runs create with both webhook configurations deleted, once the apiserver has
// stopped calling them (neither a denial nor an injected default), and puts them back afterwards,
// waiting until the webhook judges again.
func withoutWebhooks(c context.Context, create func() error) error {
	var ms admissionregistrationv1.MutatingWebhookConfigurationList
	var vs admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := k8s.List(c, &ms); err != nil {
		return err
	}
	if err := k8s.List(c, &vs); err != nil {
		return err
	}
	if len(ms.Items) != 1 || len(vs.Items) != 1 {
		return fmt.Errorf("want the two webhook configurations of the suite, found %d and %d", len(ms.Items), len(vs.Items))
	}
	m, v := ms.Items[0].DeepCopy(), vs.Items[0].DeepCopy()
	if err := k8s.Delete(c, m); err != nil {
		return err
	}
	if err := k8s.Delete(c, v); err != nil {
		return err
	}
	probe := func() (*unstructured.Unstructured, error) {
		u := template("probe", "eastus", "Standard_D4s_v3")
		setField(u, desPlaceholder(), tplPath("osDisk", "managedDisk", "diskEncryptionSet", "id")...)
		err := k8s.Create(c, u, client.DryRunAll)
		return u, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		u, err := probe()
		if err == nil && u.GetAnnotations()["capz-encryption-webhook.io/injected"] == "" {
			if _, found, _ := unstructured.NestedBool(u.Object, tplPath("securityProfile", "encryptionAtHost")...); !found {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the apiserver still calls the deleted webhooks: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	createErr := create()
	for _, o := range []client.Object{m, v} {
		o.SetResourceVersion("")
		o.SetUID("")
		o.SetCreationTimestamp(metav1.Time{})
		o.SetManagedFields(nil)
		if err := k8s.Create(c, o); err != nil {
			return errors.Join(createErr, err)
		}
	}
	for {
		if _, err := probe(); err != nil && strings.Contains(err.Error(), "[des-id-malformed]") {
			return createErr
		}
		if time.Now().After(deadline.Add(30 * time.Second)) {
			return errors.Join(createErr, errors.New("the webhook does not judge again after its configurations were put back"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runAudit runs `capz-encryption-webhook audit` against the suite's apiserver and returns stdout
// and the exit code.
func runAudit(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(hook.bin, append([]string{"audit", "--kubeconfig", auditKubeconfig, "--policy", hook.policy}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), 0
	case errors.As(err, &ee):
		if ee.ExitCode() == 2 {
			t.Logf("audit stderr: %s", stderr.String())
		}
		return stdout.String(), ee.ExitCode()
	default:
		t.Fatal(err)
		return "", 0
	}
}

type auditJSON struct {
	Kind, Namespace, Name, Region, RegionSource string
	Allowed                                     bool
	Violations, Warnings                        []struct{ Rule, Field, Message string }
	MissingDefaults                             []string
	Cluster                                     *struct{ Name string }
	Azure                                       *struct{ Resource, Error string }
}

func (a auditJSON) rules() []string {
	var out []string
	for _, f := range a.Violations {
		out = append(out, f.Rule+":deny")
	}
	for _, f := range a.Warnings {
		out = append(out, f.Rule+":warn")
	}
	return out
}

func parseAudit(t *testing.T, out string) map[string]auditJSON {
	t.Helper()
	var rs []auditJSON
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("audit -o json: %v\n%s", err, out)
	}
	m := map[string]auditJSON{}
	for _, r := range rs {
		m[r.Namespace+"/"+r.Name] = r
	}
	return m
}

// TestAuditCommand: `audit` finds what was created while the webhook was absent, judges it as
// admission would today, with the cluster's region, and exits 1; --azure compares the machines with
// what (fake) Azure built.
func TestAuditCommand(t *testing.T) {
	seedAuditObjects(t)
	out, code := runAudit(t, "-o", "json")
	if code != 1 {
		t.Fatalf("exit code %d, want 1 (violations exist)\n%s", code, out)
	}
	got := parseAudit(t, out)
	pd := got[auditNS+"/predates-default"]
	if pd.Allowed || pd.Region != "eastus" || pd.RegionSource != "cluster" || pd.Cluster == nil || pd.Cluster.Name != "east" ||
		!slices.Equal(pd.rules(), []string{"des-required:deny", "created-before-default:warn"}) ||
		!slices.Equal(pd.MissingDefaults, []string{"osDisk.managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}) {
		t.Errorf("predates-default: %+v", pd)
	}
	for _, name := range []string{auditNS + "/placeholder", auditStaleNS + "/lonely", testNS + "/" + legacyName} {
		if r, ok := got[name]; !ok || !slices.Contains(r.rules(), "des-id-malformed:deny") {
			t.Errorf("%s: %+v (found %v)", name, r.rules(), ok)
		}
	}
	for _, name := range []string{"compliant", vmBad, vmGood, poolBad} {
		if r := got[auditNS+"/"+name]; !r.Allowed || r.Azure != nil {
			t.Errorf("%s without --azure: allowed=%v %v azure %+v", name, r.Allowed, r.rules(), r.Azure)
		}
	}

	t.Run("text and report", func(t *testing.T) {
		out, code := runAudit(t, "-n", auditNS)
		if code != 1 || !strings.Contains(out, "AzureMachineTemplate e2e-audit/placeholder: DENIED  [cluster east; region eastus from cluster; catalog embedded]") ||
			!regexpMatch(`\n\d+ audited: 2 denied, 0 with warnings only, 0 not fully judged`, out) || strings.Contains(out, legacyName) {
			t.Errorf("exit %d, text:\n%s", code, out)
		}
		out, code = runAudit(t, "-n", auditNS, "-o", "report")
		if code != 1 {
			t.Errorf("exit %d", code)
		}
		var rep openreportsv1alpha1.Report
		if err := yaml.UnmarshalStrict([]byte(strings.TrimPrefix(out, "---\n")), &rep); err != nil {
			t.Fatalf("-o report: %v\n%s", err, out)
		}
		if rep.Namespace != auditNS || rep.Kind != "Report" || rep.Summary.Fail != 2 || rep.Summary.Pass != 4 {
			t.Errorf("report %s/%s summary %+v", rep.Namespace, rep.Name, rep.Summary)
		}
	})

	t.Run("azure", func(t *testing.T) {
		arm := newFakeARM(t)
		flags := azureFlags(t, arm)
		out, code := runAudit(t, append(flags, "--azure", "-n", auditNS, "-o", "json")...)
		if code != 1 {
			t.Fatalf("exit code %d\n%s", code, out)
		}
		got := parseAudit(t, out)
		if r := got[auditNS+"/"+vmBad]; r.Allowed || !slices.Contains(r.rules(), "azure-disk-not-customer-key:deny") || r.Azure == nil || !strings.HasSuffix(r.Azure.Resource, "/virtualMachines/"+vmBad) {
			t.Errorf("%s: %v %+v", vmBad, r.rules(), r.Azure)
		}
		if r := got[auditNS+"/"+vmGood]; !r.Allowed || len(r.rules()) != 0 || r.Azure == nil || r.Azure.Error != "" {
			t.Errorf("%s: %v %+v", vmGood, r.rules(), r.Azure)
		}
		if r := got[auditNS+"/"+poolBad]; !slices.Contains(r.rules(), "azure-disk-not-customer-key:deny") || !strings.HasSuffix(r.Azure.Resource, "/resourceGroups/"+rgEast+"/providers/Microsoft.Compute/virtualMachineScaleSets/"+poolBad) {
			t.Errorf("%s: %v %+v", poolBad, r.rules(), r.Azure)
		}
		// Live Disk Encryption Set data came with its Key Vault key (valid: no des-key-expiry).
		if r := got[auditNS+"/compliant"]; !r.Allowed || len(r.rules()) != 0 {
			t.Errorf("compliant with live data: %v", r.rules())
		}
	})
}

func regexpMatch(re, s string) bool {
	return regexpMust(re).MatchString(s)
}

// installReportCRD installs the Report CRD the chart vendors, once.
var reportCRDOnce sync.Once

func installReportCRD(t *testing.T) {
	t.Helper()
	var err error
	reportCRDOnce.Do(func() {
		var data []byte
		if data, err = os.ReadFile(filepath.Join(repoRoot, "charts", "capz-encryption-webhook", "files", "openreports.io_reports.yaml")); err != nil {
			return
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err = yaml.UnmarshalStrict(data, crd); err != nil {
			return
		}
		err = k8s.Create(context.Background(), crd)
	})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := k8s.Get(ctx(t), client.ObjectKey{Name: "reports.openreports.io"}, &crd); err != nil {
			return err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return errors.New("the Report CRD is not established")
	})
}

// reportsClient reads Reports, Leases and events.k8s.io Events.
func reportsClient(t *testing.T) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, openreportsv1alpha1.Install} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func logged(w *webhookProcess, msg string) int {
	n := 0
	for _, l := range w.logLines() {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			n++
		}
	}
	return n
}

// TestBackgroundAudit runs two replicas with the audit on: one holds the Lease and audits — Reports,
// Events, metrics, and the machines compared with (fake) Azure — while both serve admission with
// live data (a new machine on a set whose key has expired is denied by either). New Disk Encryption
// Set data runs the audit again, which updates and removes Reports. When the leader stops, the other
// takes over.
// auditLease is the Lease the chart's audit RBAC lets the audit take (capz-encryption-webhook.leaseName).
const auditLease = chart.DefaultRelease + "-audit"

func TestBackgroundAudit(t *testing.T) {
	seedAuditObjects(t)
	installReportCRD(t)
	rc := reportsClient(t)
	arm := newFakeARM(t)
	flags := append(azureFlags(t, arm), "--sku-refresh-interval", "2s",
		"--audit-interval", "1h", "--audit-settle", "300ms", "--audit-event-repeat", "1h",
		"--leader-election-namespace", releaseNamespace, "--leader-election-id", auditLease)
	var replicas []*webhookProcess
	for range 2 {
		w, err := newWebhookProcess(hook.bin, auditKubeconfig, hook.certDir, hook.policy)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.start(flags...); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.stop)
		replicas = append(replicas, w)
	}
	const started = "background audit started on this replica (leader)"
	var leader, follower *webhookProcess
	eventually(t, 30*time.Second, func() error {
		a, b := logged(replicas[0], started), logged(replicas[1], started)
		switch {
		case a+b > 1:
			return fmt.Errorf("both replicas audit (%d, %d)", a, b)
		case a == 1:
			leader, follower = replicas[0], replicas[1]
		case b == 1:
			leader, follower = replicas[1], replicas[0]
		default:
			return errors.New("no replica has started the audit")
		}
		return nil
	})
	var lease coordinationv1.Lease
	if err := rc.Get(ctx(t), client.ObjectKey{Namespace: releaseNamespace, Name: auditLease}, &lease); err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatalf("Lease: %+v %v", lease.Spec, err)
	}

	report := func(ns string) (*openreportsv1alpha1.Report, error) {
		r := &openreportsv1alpha1.Report{}
		return r, rc.Get(ctx(t), client.ObjectKey{Namespace: ns, Name: "capz-encryption-webhook"}, r)
	}
	results := func(r *openreportsv1alpha1.Report) map[string]string { // object/rule → result
		m := map[string]string{}
		for _, res := range r.Results {
			m[res.Subjects[0].Name+"/"+res.Rule] = string(res.Result)
		}
		return m
	}
	t.Run("Reports", func(t *testing.T) {
		eventually(t, 30*time.Second, func() error {
			r, err := report(auditNS)
			if err != nil {
				return err
			}
			got := results(r)
			for k, want := range map[string]string{
				"placeholder/des-id-malformed":            "fail",
				"predates-default/des-required":           "fail",
				"predates-default/created-before-default": "warn",
				vmBad + "/azure-disk-not-customer-key":    "fail",
				poolBad + "/azure-disk-not-customer-key":  "fail",
				vmGood + "/all-rules":                     "pass",
				"compliant/all-rules":                     "pass",
			} {
				if got[k] != want {
					return fmt.Errorf("%s = %q, want %q (results %v)", k, got[k], want, got)
				}
			}
			if _, err := report(auditStaleNS); err != nil {
				return err
			}
			if _, err := report(testNS); err != nil {
				return fmt.Errorf("the Report of %s (the object that predates the webhook): %w", testNS, err)
			}
			return nil
		})
	})
	t.Run("Events", func(t *testing.T) {
		eventually(t, 20*time.Second, func() error {
			var evs eventsv1.EventList
			if err := rc.List(ctx(t), &evs, client.InNamespace(auditNS)); err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.Regarding.Name == "placeholder" && e.Regarding.Kind == "AzureMachineTemplate" && e.Reason == "EncryptionPolicyViolation" &&
					e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "[des-id-malformed:deny]") && e.ReportingController == "capz-encryption-webhook-audit" {
					return nil
				}
			}
			return fmt.Errorf("no violation event on placeholder among %d events", len(evs.Items))
		})
	})
	t.Run("metrics", func(t *testing.T) {
		token := scrapeToken(t, scraperSA)
		scrapeOf := func(w *webhookProcess) string {
			_, body := getMetrics(t, w, token)
			return body
		}
		eventually(t, 20*time.Second, func() error {
			body := scrapeOf(leader)
			if v, ok := metricValue(body, "capz_encryption_webhook_violations", map[string]string{"namespace": auditNS, "rule": "des-id-malformed", "action": "deny"}); !ok || v != 1 {
				return fmt.Errorf("violations{%s,des-id-malformed,deny} = %v %v", auditNS, v, ok)
			}
			if v, ok := metricValue(body, "capz_encryption_webhook_audit_last_run_timestamp_seconds", nil); !ok || time.Since(time.Unix(int64(v), 0)) > time.Minute {
				return fmt.Errorf("last run = %v %v", v, ok)
			}
			return nil
		})
		// Both replicas keep the Disk Encryption Set cache (and its Key Vault reads) running; only the
		// leader audits.
		for _, w := range replicas {
			eventually(t, 20*time.Second, func() error {
				v, ok := metricValue(scrapeOf(w), "capz_encryption_webhook_des_key_expiry_timestamp_seconds", map[string]string{"des": strings.ToLower(desEast)})
				if !ok || time.Until(time.Unix(int64(v), 0)) < 190*24*time.Hour {
					return fmt.Errorf("key expiry of des-eastus = %v %v", v, ok)
				}
				return nil
			})
		}
		if _, ok := metricValue(scrapeOf(follower), "capz_encryption_webhook_violations", nil); ok {
			t.Error("the follower exports audit results")
		}
	})
	t.Run("both replicas serve admission: an expired key denies new machines", func(t *testing.T) {
		obj := map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachineTemplate",
			"metadata": map[string]any{"name": "expired-key", "namespace": testNS, "annotations": map[string]any{"capz-encryption-webhook.io/location": "eastus"}},
			"spec":     map[string]any{"template": map[string]any{"spec": machineSpec(desExp, nil)}}}
		for _, w := range replicas {
			eventually(t, 20*time.Second, func() error {
				resp, _ := review(t, w, "/validate", obj)
				if resp.Allowed || !strings.Contains(resp.Result.Message, "[des-key-expiry]") || !strings.Contains(resp.Result.Message, "expired on") {
					return fmt.Errorf("not denied for the expired key yet: allowed=%v %v", resp.Allowed, resp.Result)
				}
				return nil
			})
		}
	})
	t.Run("new Disk Encryption Set data runs the audit again", func(t *testing.T) {
		before := logged(leader, "audit run finished")
		for _, o := range []*unstructured.Unstructured{in(auditNS, template("placeholder", "", "")), in(auditStaleNS, template("lonely", "", ""))} {
			if err := k8s.Delete(ctx(t), o); err != nil {
				t.Fatal(err)
			}
		}
		// The interval is an hour: only the refresh of des-eastus (now with auto-rotation off) can
		// run the audit again.
		arm.rotationOff.Store(true)
		eventually(t, 30*time.Second, func() error {
			r, err := report(auditNS)
			if err != nil {
				return err
			}
			got := results(r)
			if _, ok := got["placeholder/des-id-malformed"]; ok {
				return errors.New("the deleted object is still reported")
			}
			if got["compliant/des-key-rotation"] != "warn" {
				return fmt.Errorf("the new Disk Encryption Set data is not in the Report: %v", got)
			}
			if _, err := report(auditStaleNS); !apierrors.IsNotFound(err) {
				return fmt.Errorf("the Report of a namespace without guarded objects is still there (%w)", err)
			}
			return nil
		})
		if after := logged(leader, "audit run finished"); after <= before {
			t.Errorf("audit runs %d → %d", before, after)
		}
		if n := logged(follower, "audit run finished"); n != 0 {
			t.Errorf("the follower audited %d times", n)
		}
	})
	t.Run("the other replica takes over", func(t *testing.T) {
		leader.stop()
		eventually(t, 30*time.Second, func() error {
			if logged(follower, started) != 1 || logged(follower, "audit run finished") == 0 {
				return errors.New("the follower has not taken over the audit")
			}
			return nil
		})
	})
}

func regexpMust(re string) *regexp.Regexp { return regexp.MustCompile(re) }
