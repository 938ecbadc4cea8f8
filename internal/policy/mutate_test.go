package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func defaultsPolicy(t testing.TB, extra string) *Policy {
	return mustPolicy(t, policyHeader+extra+`defaults:
- name: eastus
  regions: [eastus]
  diskEncryptionSetID: `+desEast+`
  encryptionAtHost: true
- name: elsewhere
  diskEncryptionSetID: `+desWest+`
`)
}

type patchOp struct {
	Op, Path string
	Value    string // JSON of the value
}

func opsOf(t testing.TB, d *Decision) []patchOp {
	t.Helper()
	var out []patchOp
	for _, op := range d.Patch {
		v, err := json.Marshal(op.Value)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, patchOp{op.Operation, op.Path, string(v)})
	}
	return out
}

const base = "/spec/template/spec"

func TestDefaulting(t *testing.T) {
	p := defaultsPolicy(t, "")
	annotation := func(v string) patchOp {
		return patchOp{"add", "/metadata/annotations", `{"capz-encryption-webhook.io/injected":"` + v + `"}`}
	}
	cases := []struct {
		name     string
		object   obj
		env      Environment
		policy   *Policy
		op       Operation
		want     []patchOp
		findings []RuleID // rules hit besides none
	}{
		{name: "no default matches: no patch", object: template(), policy: mustPolicy(t, policyHeader), want: nil},
		{name: "OS disk DES and EAH injected", object: template(), want: []patchOp{
			{"add", base + "/osDisk/managedDisk/diskEncryptionSet", `{"id":"` + desEast + `"}`},
			{"add", base + "/securityProfile", `{"encryptionAtHost":true}`},
			annotation("osDisk.managedDisk.diskEncryptionSet.id,securityProfile.encryptionAtHost"),
		}},
		{name: "OS disk without managedDisk", object: template().del(tpl("osDisk.managedDisk")), want: []patchOp{
			{"add", base + "/osDisk/managedDisk", `{"diskEncryptionSet":{"id":"` + desEast + `"}}`},
			{"add", base + "/securityProfile", `{"encryptionAtHost":true}`},
			annotation("osDisk.managedDisk.diskEncryptionSet.id,securityProfile.encryptionAtHost"),
		}},
		{name: "empty placeholder is replaced", object: template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), "").set(tpl("securityProfile.encryptionAtHost"), true), want: []patchOp{
			{"replace", base + "/osDisk/managedDisk/diskEncryptionSet/id", `"` + desEast + `"`},
			annotation("osDisk.managedDisk.diskEncryptionSet.id"),
		}},
		{name: "null diskEncryptionSet is filled", object: template().set(tpl("osDisk.managedDisk.diskEncryptionSet"), nil).set(tpl("securityProfile.encryptionAtHost"), true), want: []patchOp{
			{"add", base + "/osDisk/managedDisk/diskEncryptionSet", `{"id":"` + desEast + `"}`},
			annotation("osDisk.managedDisk.diskEncryptionSet.id"),
		}},
		{name: "user DES is never overwritten", object: template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desData).set(tpl("securityProfile.encryptionAtHost"), true), want: nil},
		{name: "user's malformed DES is not overwritten, it is denied", object: template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desPlaceholder).set(tpl("securityProfile.encryptionAtHost"), true),
			want: nil, findings: []RuleID{RuleDESIDMalformed}},
		{name: "existing securityProfile keeps its fields", object: template().set(tpl("securityProfile.securityType"), "TrustedLaunch").set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast), want: []patchOp{
			{"add", base + "/securityProfile/encryptionAtHost", `true`},
			annotation("securityProfile.encryptionAtHost"),
		}},
		{name: "user's encryptionAtHost false is respected", object: template().set(tpl("securityProfile.encryptionAtHost"), false).set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast),
			want: nil, findings: []RuleID{RuleDefaultNotApplied}},
		{name: "size without EAH: DES only, warning", object: template().set(tpl("vmSize"), "Standard_D2_v3"), want: []patchOp{
			{"add", base + "/osDisk/managedDisk/diskEncryptionSet", `{"id":"` + desEast + `"}`},
			annotation("osDisk.managedDisk.diskEncryptionSet.id"),
		}, findings: []RuleID{RuleDefaultNotApplied}},
		{name: "restricted size: no EAH", object: template().set(tpl("vmSize"), "Standard_M8-2ms").set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast),
			want: nil, findings: []RuleID{RuleDefaultNotApplied}},
		{name: "data disks get the DES, one without managedDisk is reported", object: template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast).set(tpl("securityProfile.encryptionAtHost"), true).
			set(tpl("dataDisks"), []any{dataDisk(nil), map[string]any{"nameSuffix": "raw", "diskSizeGB": 10}, dataDisk("")}), want: []patchOp{
			{"add", base + "/dataDisks/0/managedDisk/diskEncryptionSet", `{"id":"` + desEast + `"}`},
			{"replace", base + "/dataDisks/2/managedDisk/diskEncryptionSet/id", `"` + desEast + `"`},
			annotation("dataDisks[0].managedDisk.diskEncryptionSet.id,dataDisks[2].managedDisk.diskEncryptionSet.id"),
		}, findings: []RuleID{RuleDefaultNotApplied}},
		{name: "ephemeral OS disk gets no DES", object: template().set(tpl("osDisk.diffDiskSettings"), map[string]any{"option": "Local"}), want: []patchOp{
			{"add", base + "/securityProfile", `{"encryptionAtHost":true}`},
			annotation("securityProfile.encryptionAtHost"),
		}, findings: []RuleID{RuleDefaultNotApplied}},
		{name: "confidential VM: neither DES nor EAH", object: template().set(tpl("osDisk.managedDisk.securityProfile.securityEncryptionType"), "DiskWithVMGuestState"),
			want: nil, findings: []RuleID{RuleDefaultNotApplied, RuleDefaultNotApplied}},
		{name: "region decides the default", object: template(), env: Environment{Catalog: testCatalog(), Locations: []LocationCandidate{{Location: "westus2", Source: "cluster", Cluster: true}}}, want: []patchOp{
			{"add", base + "/osDisk/managedDisk/diskEncryptionSet", `{"id":"` + desWest + `"}`},
			annotation("osDisk.managedDisk.diskEncryptionSet.id"),
		}},
		{name: "UPDATE is never mutated", object: template(), op: OperationUpdate, want: nil},
		{name: "AKS cluster is never mutated", object: template(), env: func() Environment {
			e := eastEnv()
			e.Cluster = ClusterInfo{Name: "aks", Found: true, AKS: true}
			return e
		}(), want: nil},
		{name: "existing annotations are kept", object: template().set("metadata.annotations", map[string]any{"team": "payments"}).set(tpl("securityProfile.encryptionAtHost"), true), want: []patchOp{
			{"add", base + "/osDisk/managedDisk/diskEncryptionSet", `{"id":"` + desEast + `"}`},
			{"add", "/metadata/annotations/capz-encryption-webhook.io~1injected", `"osDisk.managedDisk.diskEncryptionSet.id"`},
		}},
		{name: "a previous record is merged", object: template().set("metadata.annotations", map[string]any{AnnotationInjected: "securityProfile.encryptionAtHost"}).set(tpl("securityProfile.encryptionAtHost"), true), want: []patchOp{
			{"add", base + "/osDisk/managedDisk/diskEncryptionSet", `{"id":"` + desEast + `"}`},
			{"replace", "/metadata/annotations/capz-encryption-webhook.io~1injected", `"osDisk.managedDisk.diskEncryptionSet.id,securityProfile.encryptionAtHost"`},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := tc.policy
			if pol == nil {
				pol = p
			}
			env := tc.env
			if env.Catalog == nil {
				env = eastEnv()
			}
			op := tc.op
			if op == "" {
				op = OperationCreate
			}
			raw := tc.object.json(t)
			req := Request{Operation: op, Object: raw}
			if op == OperationUpdate {
				req.OldObject = raw
			}
			d, err := Evaluate(pol, req, env)
			if err != nil {
				t.Fatal(err)
			}
			if got := opsOf(t, d); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("patch:\n got %v\nwant %v", got, tc.want)
			}
			var rules []RuleID
			for _, f := range d.Findings {
				rules = append(rules, f.Rule)
			}
			if !reflect.DeepEqual(rules, tc.findings) {
				t.Errorf("findings = %v, want %v (%+v)", rules, tc.findings, d.Findings)
			}
		})
	}
}

// CAPZ's flavors leave the etcd data disk without managedDisk. With dataDiskStorageAccountType the
// default gives it one that carries the DES; never one without a storage type.
func TestDefaultingDataDiskWithoutManagedDisk(t *testing.T) {
	policyWith := func(storage string) *Policy {
		return mustPolicy(t, policyHeader+`requireCustomerManagedKeys: true
defaults:
- name: eastus
  diskEncryptionSetID: `+desEast+`
  dataDiskStorageAccountType: `+storage+"\n")
	}
	etcd := func(size string) obj {
		return template().set(tpl("vmSize"), size).set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast).
			set(tpl("dataDisks"), []any{map[string]any{"nameSuffix": "etcddisk", "diskSizeGB": 256, "lun": 0}})
	}
	injected := func(storage string) []patchOp {
		return []patchOp{
			{"add", base + "/dataDisks/0/managedDisk", `{"diskEncryptionSet":{"id":"` + desEast + `"},"storageAccountType":"` + storage + `"}`},
			{"add", "/metadata/annotations", `{"capz-encryption-webhook.io/injected":"dataDisks[0].managedDisk"}`},
		}
	}
	for _, tc := range []struct {
		name        string
		policy      *Policy
		object      obj
		env         Environment
		want        []patchOp
		wantRules   []RuleID
		wantMessage string
		wantAllowed bool
	}{
		{name: "Premium_LRS on a size with PremiumIO", policy: policyWith("Premium_LRS"), object: etcd("Standard_D4s_v3"),
			want: injected("Premium_LRS"), wantAllowed: true},
		{name: "StandardSSD_LRS on a size without PremiumIO", policy: policyWith("StandardSSD_LRS"), object: etcd("Standard_D2_v3"),
			want: injected("StandardSSD_LRS"), wantAllowed: true},
		{name: "Premium_LRS on a size without PremiumIO", policy: policyWith("Premium_LRS"), object: etcd("Standard_D2_v3"),
			wantRules: []RuleID{RuleDefaultNotApplied, RuleDESRequired}, wantMessage: "cannot attach Premium SSD disks in eastus"},
		{name: "Premium_LRS, region unknown, PremiumIO in every region that offers the size", policy: policyWith("Premium_LRS"), object: etcd("Standard_D4s_v3"),
			env: Environment{Catalog: testCatalog()}, want: injected("Premium_LRS"), wantAllowed: true},
		{name: "Premium_LRS, region unknown, PremiumIO in some regions only", policy: policyWith("Premium_LRS"), object: etcd("Standard_Mixed"),
			env:       Environment{Catalog: testCatalog()},
			wantRules: []RuleID{RuleDefaultNotApplied, RuleDESRequired}, wantMessage: "region is unknown"},
		{name: "no storage type: nothing injected, the warning stays", policy: mustPolicy(t, policyHeader+"requireCustomerManagedKeys: true\ndefaults:\n- name: eastus\n  diskEncryptionSetID: "+desEast+"\n"),
			object: etcd("Standard_D4s_v3"), wantRules: []RuleID{RuleDefaultNotApplied, RuleDESRequired}, wantMessage: "dataDiskStorageAccountType"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env.Catalog == nil {
				env = eastEnv()
			}
			d := create(t, tc.policy, tc.object, env)
			if got := opsOf(t, d); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("patch:\n got %v\nwant %v", got, tc.want)
			}
			var rules []RuleID
			var msgs []string
			for _, f := range d.Findings {
				rules = append(rules, f.Rule)
				msgs = append(msgs, f.Message)
			}
			if !reflect.DeepEqual(rules, tc.wantRules) {
				t.Errorf("findings = %v, want %v (%v)", rules, tc.wantRules, msgs)
			}
			if tc.wantMessage != "" && !strings.Contains(strings.Join(msgs, "\n"), tc.wantMessage) {
				t.Errorf("no message says %q: %v", tc.wantMessage, msgs)
			}
			if d.Allowed != tc.wantAllowed {
				t.Errorf("allowed = %v, want %v", d.Allowed, tc.wantAllowed)
			}
			// The validating webhook, on what the mutating one produced, agrees; on the object as it
			// was (the mutating webhook did not run), it says so.
			patched := applyPatch(t, tc.object.json(t), d)
			v, err := Evaluate(tc.policy, Request{Operation: OperationCreate, Stage: StageValidate, Object: patched}, env)
			if err != nil {
				t.Fatal(err)
			}
			if v.Allowed != d.Allowed {
				t.Errorf("validating the patched object: allowed = %v, want %v (%+v)", v.Allowed, d.Allowed, v.Findings)
			}
			if len(tc.want) > 0 {
				v, err = Evaluate(tc.policy, Request{Operation: OperationCreate, Stage: StageValidate, Object: tc.object.json(t)}, env)
				if err != nil {
					t.Fatal(err)
				}
				if f := findingsOf(v, RuleDESRequired); len(f) != 1 || !strings.Contains(f[0].Message, "mutating webhook did not inject it") {
					t.Errorf("validating the unpatched object: %+v", v.Findings)
				}
			}
		})
	}
}

func TestDefaultingOtherKinds(t *testing.T) {
	p := defaultsPolicy(t, "")
	machine := obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachine",
		"metadata": map[string]any{"name": "m", "namespace": "default", "annotations": map[string]any{AnnotationLocation: "East US"}},
		"spec":     map[string]any{"vmSize": "Standard_D4s_v3", "osDisk": map[string]any{"osType": "Linux", "managedDisk": map[string]any{}}}}
	d := create(t, p, machine, Environment{Catalog: testCatalog()})
	if d.Region != "eastus" || d.RegionSource != "annotation" {
		t.Errorf("region = %q from %q, want eastus from annotation", d.Region, d.RegionSource)
	}
	if got := opsOf(t, d); len(got) != 3 || got[0].Path != "/spec/osDisk/managedDisk/diskEncryptionSet" || got[1].Path != "/spec/securityProfile" {
		t.Errorf("AzureMachine patch = %v", got)
	}
	pool := obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachinePool",
		"metadata": map[string]any{"name": "mp", "namespace": "default"},
		"spec": map[string]any{"location": "westus2", "template": map[string]any{"vmSize": "Standard_D4s_v3",
			"osDisk": map[string]any{"osType": "Linux", "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}}}}
	d = create(t, p, pool, eastEnv())
	if d.Region != "westus2" || d.RegionSource != "spec.location" {
		t.Errorf("pool region = %q from %q, want westus2 from spec.location (before the cluster's eastus)", d.Region, d.RegionSource)
	}
	if got := opsOf(t, d); len(got) != 2 || got[0].Path != "/spec/template/osDisk/managedDisk/diskEncryptionSet" || !strings.Contains(got[0].Value, desWest) {
		t.Errorf("AzureMachinePool patch = %v", got)
	}
}

func TestDefaultSelection(t *testing.T) {
	p := mustPolicy(t, policyHeader+`defaults:
- name: prod
  namespaceSelector:
    matchExpressions: [{key: env, operator: In, values: [prod]}]
  diskEncryptionSetID: `+desData+`
- name: team-a
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: team-a}}
  diskEncryptionSetID: `+desWest+`
- name: rest
  regions: [eastus]
  diskEncryptionSetID: `+desEast+`
`)
	cases := []struct {
		ns     string
		labels map[string]string
		want   string
	}{
		{"payments", map[string]string{"env": "prod", "kubernetes.io/metadata.name": "payments"}, "prod"},
		{"team-a", nil, "team-a"}, // labels unknown: the name label is assumed, as the apiserver sets it
		{"other", map[string]string{"env": "dev"}, "rest"},
	}
	for _, tc := range cases {
		d, err := Evaluate(p, Request{Operation: OperationCreate, Object: template().del("metadata.namespace").json(t), Namespace: tc.ns, NamespaceLabels: tc.labels}, eastEnv())
		if err != nil {
			t.Fatal(err)
		}
		if d.DefaultName != tc.want || d.Namespace != tc.ns {
			t.Errorf("namespace %s: default %q (ns %q), want %q", tc.ns, d.DefaultName, d.Namespace, tc.want)
		}
	}
}

// TestMutationProperties checks, over many shapes of object, the promises of the mutation:
// validation of the patched object passes when the defaults are valid, a second pass yields no
// patch, no field is lost, and only the encryption paths and the record annotation are touched.
func TestMutationProperties(t *testing.T) {
	p := defaultsPolicy(t, "requireCustomerManagedKeys: true\n")
	shapes := map[string]obj{
		"bare":               template(),
		"no managedDisk":     template().del(tpl("osDisk.managedDisk")),
		"empty placeholders": template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), "").set(tpl("dataDisks"), []any{dataDisk(""), dataDisk(nil)}),
		"security profile":   template().set(tpl("securityProfile"), map[string]any{"securityType": "TrustedLaunch", "uefiSettings": map[string]any{"secureBootEnabled": true}}),
		"unknown fields everywhere": template().
			set("status", map[string]any{"ready": false}).
			set("metadata.annotations", map[string]any{"a": "b"}).
			set("metadata.labels", map[string]any{"cluster.x-k8s.io/cluster-name": "c"}).
			set(tpl("futureTopLevel"), map[string]any{"nested": []any{1, "two", 3.5}}).
			set(tpl("osDisk.managedDisk.futureDiskField"), "kept").
			set(tpl("osDisk.cachingType"), "ReadWrite").
			set(tpl("dataDisks"), []any{map[string]any{"nameSuffix": "d", "diskSizeGB": 1, "managedDisk": map[string]any{"storageAccountType": "Premium_LRS", "x-unknown": map[string]any{"y": 1}}, "futureDataDiskField": true}}).
			set("spec.template.metadata", map[string]any{"labels": map[string]any{"k": "v"}}).
			set("spec.futureSpecField", 12345678901234567),
	}
	allowed := []string{
		base + "/osDisk/managedDisk", base + "/securityProfile", "/metadata/annotations", base + "/dataDisks/",
	}
	for name, o := range shapes {
		t.Run(name, func(t *testing.T) {
			raw := o.json(t)
			d := create(t, p, o, eastEnv())
			if !d.Allowed {
				t.Fatalf("first pass denied: %+v", d.Findings)
			}
			for _, op := range d.Patch {
				if op.Operation != "add" && op.Operation != "replace" {
					t.Errorf("op %s at %s: only add/replace are allowed", op.Operation, op.Path)
				}
				ok := false
				for _, prefix := range allowed {
					ok = ok || strings.HasPrefix(op.Path, prefix)
				}
				if !ok {
					t.Errorf("op at %s is outside the encryption paths", op.Path)
				}
			}
			patched := applyPatch(t, raw, d)
			assertNoFieldLost(t, raw, patched)

			again, err := Evaluate(p, Request{Operation: OperationCreate, Object: patched}, eastEnv())
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Patch) != 0 {
				t.Errorf("second pass patched again: %v", opsOf(t, again))
			}
			if !again.Allowed {
				t.Errorf("patched object denied: %+v", again.Findings)
			}
			if !reflect.DeepEqual(again.Findings, d.Findings) {
				t.Errorf("findings changed between passes:\n1st %+v\n2nd %+v", d.Findings, again.Findings)
			}
		})
	}
}

// assertNoFieldLost walks every leaf of before and requires it, unchanged, in after; where before
// held "" or null at a path, after may hold the injected value.
func assertNoFieldLost(t *testing.T, before, after []byte) {
	t.Helper()
	var b, a any
	dec := json.NewDecoder(bytes.NewReader(before))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		t.Fatal(err)
	}
	dec = json.NewDecoder(bytes.NewReader(after))
	dec.UseNumber()
	if err := dec.Decode(&a); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, bv, av any)
	walk = func(path string, bv, av any) {
		switch bt := bv.(type) {
		case map[string]any:
			at, ok := av.(map[string]any)
			if !ok {
				t.Errorf("%s: was an object, now %T", path, av)
				return
			}
			for k, v := range bt {
				walk(path+"/"+k, v, at[k])
			}
		case []any:
			at, ok := av.([]any)
			if !ok || len(at) != len(bt) {
				t.Errorf("%s: array changed", path)
				return
			}
			for i := range bt {
				walk(fmt.Sprintf("%s/%d", path, i), bt[i], at[i])
			}
		default:
			if bv == nil || bv == "" {
				return
			}
			if !reflect.DeepEqual(bv, av) {
				t.Errorf("%s: %v became %v", path, bv, av)
			}
		}
	}
	walk("", b, a)
}

// A ClusterClass's template has no region: no regional default applies, and that is recorded, not
// warned (its per-cluster copies get their region's default); an unbound template is warned.
func TestNoDefaultForClassTemplates(t *testing.T) {
	p := mustPolicy(t, policyHeader+"defaults:\n- name: eastus\n  regions: [eastus]\n  diskEncryptionSetID: "+desEast+"\n")
	class := Environment{Catalog: testCatalog(), Cluster: ClusterInfo{Class: "quick-start"}}
	d := create(t, p, template(), class)
	if f := findingsOf(d, RuleDefaultNotApplied); len(f) != 1 || f[0].Action != ActionAudit || !strings.Contains(f[0].Message, "ClusterClass quick-start") {
		t.Errorf("class template: %+v", d.Findings)
	}
	d = create(t, p, template(), Environment{Catalog: testCatalog()})
	if f := findingsOf(d, RuleDefaultNotApplied); len(f) != 1 || f[0].Action != ActionWarn || !strings.Contains(f[0].Message, "nothing binds it to a cluster yet") {
		t.Errorf("unbound template: %+v", d.Findings)
	}
}
