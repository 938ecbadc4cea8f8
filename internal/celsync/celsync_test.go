package celsync

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
)

const (
	ns  = "capz-encryption-webhook-system"
	des = "/subscriptions/6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des"
)

func mustPolicy(t *testing.T, doc string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("p.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	palette = "cloud:\n  azure:\n    diskEncryptionSetID: " + des + "\n    encryptionAtHost: true\n"
	desOnly = "cloud:\n  azure:\n    diskEncryptionSetID: " + des + "\n"
)

type harness struct {
	s      *Syncer
	c      client.Client
	now    time.Time
	policy *policy.Policy
	reg    *prometheus.Registry
}

func newHarness(t *testing.T, c client.Client, doc string) *harness {
	t.Helper()
	h := &harness{c: c, now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), policy: mustPolicy(t, doc), reg: prometheus.NewRegistry()}
	h.s = &Syncer{Client: c, Reader: c, Policy: func() *policy.Policy { return h.policy }, Catalog: skucatalog.Embedded(),
		Options: celpolicy.Options{Namespace: ns}, Interval: time.Second, Resync: 10 * time.Minute,
		Clock: func() time.Time { return h.now }, Log: logr.Discard(), Metrics: NewMetrics(h.reg)}
	return h
}

func newClient(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	return fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(objs...).WithReturnManagedFields().Build()
}

// names lists the objects of one kind in the fake cluster.
func names(t *testing.T, c client.Client, kind string) []string {
	t.Helper()
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(admissionregistrationv1.SchemeGroupVersion.WithKind(kind + "List"))
	if err := c.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range list.Items {
		out = append(out, strings.TrimPrefix(o.GetNamespace()+"/"+o.GetName(), "/"))
	}
	slices.Sort(out)
	return out
}

// ours leaves out the objects the tests made as someone else's.
func ours(names []string) []string {
	return slices.DeleteFunc(names, func(n string) bool { return n == "someone-elses" || strings.HasSuffix(n, "-copy") })
}

func expected(t *testing.T, h *harness, kind string) []string {
	t.Helper()
	res, err := celpolicy.Compile(h.policy, h.s.Catalog, celpolicy.Options{Namespace: ns, Now: h.now})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range res.Objects() {
		if o.GetObjectKind().GroupVersionKind().Kind == kind {
			out = append(out, strings.TrimPrefix(o.GetNamespace()+"/"+o.GetName(), "/"))
		}
	}
	slices.Sort(out)
	return out
}

func syncs(h *harness, result string) float64 {
	return testutil.ToFloat64(h.s.Metrics.syncs.WithLabelValues(result))
}

// Applied, kept, and pruned: a policy change deletes what the new compilation no longer makes, and
// only that; objects without the label are left alone.
func TestSyncAppliesAndPrunesOnlyItsOwn(t *testing.T) {
	foreignVAP := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "someone-elses"}}
	strayVAP := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "capz-encryption-webhook.retired-rule.azuremachine",
		Labels: map[string]string{celpolicy.LabelManagedBy: celpolicy.ManagedBy}}}
	foreignMAPB := &admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "capz-encryption-webhook.inject-eah.azuremachine-copy"}}
	c := newClient(t, foreignVAP, strayVAP, foreignMAPB)
	h := newHarness(t, c, palette)
	ctx := context.Background()

	if err := h.s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"} {
		if got, want := ours(names(t, c, kind)), expected(t, h, kind); !slices.Equal(got, want) {
			t.Errorf("%s after the first sync:\n%v\nwant\n%v", kind, got, want)
		}
	}
	var vap admissionregistrationv1.ValidatingAdmissionPolicy
	if err := c.Get(ctx, client.ObjectKey{Name: "capz-encryption-webhook.eah-sku-unsupported.azuremachine"}, &vap); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(vap.Spec.Variables[0].Expression, `"standard_d4a_v4": "doubtful"`) || !slices.ContainsFunc(vap.ManagedFields, func(f metav1.ManagedFieldsEntry) bool {
		return f.Manager == FieldManager && f.Operation == metav1.ManagedFieldsOperationApply
	}) {
		t.Errorf("the VM-size verdicts were not server-side applied by %s: %.100s, %v", FieldManager, vap.Spec.Variables[0].Expression, vap.ManagedFields)
	}

	// The same policy and catalog: nothing to write.
	if err := h.s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if syncs(h, "applied") != 1 || syncs(h, "unchanged") != 1 {
		t.Errorf("applied %v, unchanged %v", syncs(h, "applied"), syncs(h, "unchanged"))
	}

	// encryptionAtHost leaves the policy: its mutating policies go, nothing else.
	h.policy = mustPolicy(t, desOnly)
	if err := h.s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "ValidatingAdmissionPolicyBinding"} {
		if got, want := ours(names(t, c, kind)), expected(t, h, kind); !slices.Equal(got, want) {
			t.Errorf("%s after the policy changed:\n%v\nwant\n%v", kind, got, want)
		}
		for _, n := range ours(names(t, c, kind)) {
			if strings.Contains(n, "inject-eah") {
				t.Errorf("%s %s is still there", kind, n)
			}
		}
	}
	if got := names(t, c, "ValidatingAdmissionPolicy"); slices.Contains(got, strayVAP.Name) || !slices.Contains(got, foreignVAP.Name) {
		t.Errorf("validating policies: %v (the stray owned one must go, the foreign one stay)", got)
	}
	if got := names(t, c, "MutatingAdmissionPolicyBinding"); !slices.Contains(got, foreignMAPB.Name) {
		t.Errorf("the unlabelled binding was deleted: %v", got)
	}
	if got := testutil.ToFloat64(h.s.Metrics.objects.WithLabelValues("MutatingAdmissionPolicy")); got != 3 {
		t.Errorf("%v mutating policies counted, want 3", got)
	}

	// Time passes: evidence ages and a verdict changes. The policies holding it are applied again.
	h.policy = mustPolicy(t, palette)
	if err := h.s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	h.now = h.now.AddDate(2, 0, 0)
	before := syncs(h, "applied")
	if err := h.s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "capz-encryption-webhook.eah-sku-unsupported.azuremachine"}, &vap); err != nil {
		t.Fatal(err)
	}
	if syncs(h, "applied") != before+1 || strings.Contains(vap.Spec.Variables[0].Expression, `"standard_a0": "unsupported"`) {
		t.Errorf("two years on, Standard_A0's 2025 evidence is old, but the verdicts were not reapplied: %.200s", vap.Spec.Variables[0].Expression)
	}
}

// An object that has one of the compiled names but not the label is not the syncer's: it is left as
// it is, the sync reports it, and every other object is still applied.
func TestSyncLeavesAnUnlabelledNamesakeAlone(t *testing.T) {
	name := "capz-encryption-webhook.des-id-malformed.azuremachine"
	theirs := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"owner": "team-x"}}}
	c := newClient(t, theirs)
	h := newHarness(t, c, palette)
	err := h.s.Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "not ours") {
		t.Fatalf("error %v, want one naming %s", err, name)
	}
	var got admissionregistrationv1.ValidatingAdmissionPolicy
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations["owner"] != "team-x" || len(got.Labels) != 0 || got.Spec.Validations != nil {
		t.Errorf("the namesake was changed: %+v", got.ObjectMeta)
	}
	if n := len(names(t, c, "ValidatingAdmissionPolicyBinding")); n != len(expected(t, h, "ValidatingAdmissionPolicyBinding")) {
		t.Errorf("%d bindings applied", n)
	}
	if syncs(h, "error") != 1 {
		t.Errorf("errors counted: %v", syncs(h, "error"))
	}
}

// Someone deletes a compiled object: it is back at the next resync, not before (the compiled output
// did not change, so the syncer does not call the apiserver in between).
func TestResyncRepairs(t *testing.T) {
	c := newClient(t)
	h := newHarness(t, c, palette)
	ctx := context.Background()
	if err := h.s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	name := "capz-encryption-webhook.ade-extension.azuremachine"
	if err := c.Delete(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	get := func() error {
		return c.Get(ctx, client.ObjectKey{Name: name}, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{})
	}
	h.now = h.now.Add(time.Minute)
	if err := h.s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := get(); !apierrors.IsNotFound(err) {
		t.Fatalf("restored before the resync: %v", err)
	}
	h.now = h.now.Add(10 * time.Minute)
	if err := h.s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Fatalf("not restored by the resync: %v", err)
	}
}

// An apiserver without MutatingAdmissionPolicy (before 1.36) answers "no matches for kind": the
// validating policies are applied, the mutating ones left out, and the sync succeeds.
func TestSyncWithoutMutatingAdmissionPolicy(t *testing.T) {
	noMatch := func(gvk schema.GroupVersionKind) error {
		if strings.HasPrefix(gvk.Kind, "MutatingAdmissionPolicy") {
			return &meta.NoKindMatchError{GroupKind: gvk.GroupKind(), SearchedVersions: []string{gvk.Version}}
		}
		return nil
	}
	c := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if err := noMatch(obj.GetObjectKind().GroupVersionKind()); err != nil {
				return err
			}
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			gvk := list.GetObjectKind().GroupVersionKind()
			if err := noMatch(gvk.GroupVersion().WithKind(strings.TrimSuffix(gvk.Kind, "List"))); err != nil {
				return err
			}
			return c.List(ctx, list, opts...)
		},
	}).Build()
	h := newHarness(t, c, palette)
	for range 2 {
		if err := h.s.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := names(t, c, "ValidatingAdmissionPolicyBinding"), expected(t, h, "ValidatingAdmissionPolicyBinding"); !slices.Equal(got, want) {
		t.Errorf("bindings %v, want %v", got, want)
	}
	for _, kind := range []string{"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"} {
		if !h.s.absent[admissionregistrationv1.SchemeGroupVersion.WithKind(kind)] {
			t.Errorf("%s not recorded as absent", kind)
		}
	}
}

func TestNeedsLeadership(t *testing.T) {
	if !(&Syncer{}).NeedLeaderElection() {
		t.Error("the syncer must run on the leader only")
	}
}
