package policy

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// pool is a compliant AzureMachinePool in eastus: OS disk and one data disk with a DES.
func pool() obj {
	return obj{
		"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachinePool",
		"metadata": map[string]any{"name": "mp-0", "namespace": "default"},
		"spec": map[string]any{"location": "eastus", "template": map[string]any{
			"vmSize": "Standard_D4s_v3",
			"osDisk": map[string]any{"osType": "Linux", "diskSizeGB": 128, "managedDisk": map[string]any{
				"storageAccountType": "Premium_LRS", "diskEncryptionSet": map[string]any{"id": desEast}}},
			"dataDisks": []any{namedDisk("etcd", 0, desEast)},
		}},
	}
}

func namedDisk(suffix string, lun int, des any) map[string]any {
	d := dataDisk(des)
	d["nameSuffix"], d["lun"] = suffix, lun
	return d
}

func mp(p string) string { return "spec.template." + p }

func update(t testing.TB, p *Policy, stage Stage, oldObj, newObj obj) *Decision {
	t.Helper()
	d, err := Evaluate(p, Request{Operation: OperationUpdate, Stage: stage, Object: newObj.json(t), OldObject: oldObj.json(t)}, eastEnv())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRatcheting: on UPDATE a finding is waived only when the stored object produced the same
// finding (same rule, same field, list items matched by identity). What the update adds is judged in
// full, whichever stage asks.
func TestRatcheting(t *testing.T) {
	p := mustPolicy(t, policyHeader+"requireCustomerManagedKeys: true\n")
	dataDES := func(i int) string { return mp(fmt.Sprintf("dataDisks[%d].managedDisk.diskEncryptionSet.id", i)) }
	withDisks := func(o obj, disks ...any) obj { return o.set(mp("dataDisks"), disks) }
	// stored is a non-compliant object that predates the policy: its data disk "logs" has no DES.
	stored := func() obj { return withDisks(pool(), namedDisk("etcd", 0, desEast), namedDisk("logs", 1, nil)) }
	cases := []struct {
		name      string
		old, new  obj
		allowed   bool
		rule      RuleID
		field     string
		action    Action
		ratcheted bool
	}{
		{"data disk added without a DES", pool(), withDisks(pool(), namedDisk("etcd", 0, desEast), namedDisk("new", 1, nil)),
			false, RuleDESRequired, dataDES(1), ActionDeny, false},
		{"OS disk DES removed", pool(), pool().del(mp("osDisk.managedDisk.diskEncryptionSet")),
			false, RuleDESRequired, mp("osDisk.managedDisk.diskEncryptionSet.id"), ActionDeny, false},
		{"confidential OS disk DES removed",
			pool().del(mp("osDisk.managedDisk.diskEncryptionSet")).set(mp("osDisk.managedDisk.securityProfile"), map[string]any{"securityEncryptionType": "VMGuestStateOnly", "diskEncryptionSet": map[string]any{"id": desEast}}),
			pool().del(mp("osDisk.managedDisk.diskEncryptionSet")).set(mp("osDisk.managedDisk.securityProfile"), map[string]any{"securityEncryptionType": "VMGuestStateOnly"}),
			false, RuleDESRequired, mp("osDisk.managedDisk.diskEncryptionSet.id"), ActionDeny, false},
		{"DES changed to a malformed ID", pool(), pool().set(mp("osDisk.managedDisk.diskEncryptionSet.id"), desPlaceholder),
			false, RuleDESIDMalformed, mp("osDisk.managedDisk.diskEncryptionSet.id"), ActionDeny, false},
		{"data disks reordered: the old violation follows its disk", stored(), withDisks(pool(), namedDisk("logs", 1, nil), namedDisk("etcd", 0, desEast)),
			true, RuleDESRequired, dataDES(0), ActionAudit, true},
		{"data disks reordered and the compliant one stripped", stored(), withDisks(pool(), namedDisk("logs", 1, nil), namedDisk("etcd", 0, nil)),
			false, RuleDESRequired, dataDES(1), ActionDeny, false},
		{"a new disk takes the index of an old violation", stored(), withDisks(pool(), namedDisk("etcd", 0, desEast), namedDisk("other", 2, nil)),
			false, RuleDESRequired, dataDES(1), ActionDeny, false},
		{"unrelated edit of a stored non-compliant object", stored(), stored().set(mp("vmSize"), "Standard_D8s_v3"),
			true, RuleDESRequired, dataDES(1), ActionAudit, true},
		{"disk without nameSuffix matched by lun", withDisks(pool(), map[string]any{"lun": 3, "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}),
			withDisks(pool(), namedDisk("etcd", 0, desEast), map[string]any{"lun": 3, "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}),
			true, RuleDESRequired, dataDES(1), ActionAudit, true},
	}
	for _, tc := range cases {
		for _, stage := range []Stage{StageAdmit, StageValidate} {
			t.Run(tc.name+"/"+string(stage), func(t *testing.T) {
				d := update(t, p, stage, tc.old, tc.new)
				if d.Allowed != tc.allowed {
					t.Fatalf("allowed=%v, want %v: %+v", d.Allowed, tc.allowed, d.Findings)
				}
				var got *Finding
				for i, f := range d.Findings {
					if f.Rule == tc.rule && f.Field == tc.field {
						got = &d.Findings[i]
					}
				}
				if got == nil {
					t.Fatalf("no %s finding at %s: %+v", tc.rule, tc.field, d.Findings)
				}
				if got.Action != tc.action || got.Ratcheted != tc.ratcheted {
					t.Fatalf("%s at %s: action %s ratcheted %v, want %s %v", tc.rule, tc.field, got.Action, got.Ratcheted, tc.action, tc.ratcheted)
				}
			})
		}
	}
}

// TestValidateJudgesObjectAsReceived: the validating stage does not assume the mutating webhook ran.
func TestValidateJudgesObjectAsReceived(t *testing.T) {
	p := defaultsPolicy(t, "requireCustomerManagedKeys: true\n")
	raw := template().json(t)
	validate := func(raw []byte) *Decision {
		d, err := Evaluate(p, Request{Operation: OperationCreate, Stage: StageValidate, Object: raw}, eastEnv())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Unpatched (mutating webhook disabled, failed open, or undone): denied, and the message says why.
	d := validate(raw)
	f := findingsOf(d, RuleDESRequired)
	if d.Allowed || len(f) != 1 || f[0].Action != ActionDeny || !strings.Contains(f[0].Message, "mutating webhook did not inject it") {
		t.Fatalf("unpatched object: allowed=%v des-required=%+v", d.Allowed, f)
	}
	if len(d.Patch) != 0 || len(d.Injected) != 0 {
		t.Fatalf("the validating stage must not patch: %+v %v", d.Patch, d.Injected)
	}
	// Patched by the mutating stage: allowed, with the same findings StageAdmit reports.
	admit := create(t, p, template(), eastEnv())
	patched := validate(applyPatch(t, raw, admit))
	if !patched.Allowed || !sameFindings(admit, patched) {
		t.Fatalf("patched object: allowed=%v\nadmit:    %+v\nvalidate: %+v", patched.Allowed, admit.Findings, patched.Findings)
	}
	// A default that cannot apply is still reported once, by the validating stage.
	small := template().set(tpl("vmSize"), "Standard_D2_v3").set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast)
	d = validate(small.json(t))
	if got := findingsOf(d, RuleDefaultNotApplied); len(got) != 1 || got[0].Field != tpl("securityProfile.encryptionAtHost") {
		t.Fatalf("default-not-applied in the validating stage: %+v", d.Findings)
	}
	// A later webhook that removed the injected DES from a data disk is caught.
	withDisk := template().set(tpl("dataDisks"), []any{dataDisk(nil)})
	admit = create(t, p, withDisk, eastEnv())
	stripped := obj{}
	if err := json.Unmarshal(applyPatch(t, withDisk.json(t), admit), &stripped); err != nil {
		t.Fatal(err)
	}
	stripped.set(tpl("dataDisks"), []any{dataDisk(nil)})
	d = validate(stripped.json(t))
	if f := findingsOf(d, RuleDESRequired); d.Allowed || len(f) != 1 || f[0].Field != tpl("dataDisks[0].managedDisk.diskEncryptionSet.id") {
		t.Fatalf("stripped data disk: allowed=%v %+v", d.Allowed, d.Findings)
	}
}

func sameFindings(a, b *Decision) bool {
	key := func(d *Decision) []string {
		var out []string
		for _, f := range d.Findings {
			out = append(out, string(f.Rule)+"|"+string(f.Action)+"|"+f.Field)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// TestRatchetingProperty holds for random (old, new) pairs: every finding waived on UPDATE is one that
// evaluating the stored object alone also produced, judged here by the test's own notion of identity
// (rule, and the field with each data disk and extension named by nameSuffix/lun/name); and the
// update is denied exactly when the new object alone has a denying finding the old one lacks.
func TestRatchetingProperty(t *testing.T) {
	p := mustPolicy(t, policyHeader+"requireCustomerManagedKeys: true\nallowedDESSubscriptions: ["+sub+"]\n")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		old := randomMachine(rng)
		var newObj obj
		if rng.IntN(2) == 0 {
			newObj = randomMachine(rng)
		} else {
			newObj = editMachine(rng, old)
		}
		stage := []Stage{StageAdmit, StageValidate}[rng.IntN(2)]
		d := update(t, p, stage, old, newObj)
		oldAlone := stored(t, p, old)
		newAlone := stored(t, p, newObj)
		if d.Exempt != "" {
			continue
		}
		for _, f := range d.Findings {
			if f.Ratcheted && !producedBy(oldAlone, old, f, newObj) {
				t.Fatalf("case %d: %s at %s was waived, but the stored object did not produce it\nold: %s\nnew: %s\nold findings: %+v",
					i, f.Rule, f.Field, old.json(t), newObj.json(t), oldAlone.Findings)
			}
		}
		wantDenied := false
		for _, f := range newAlone.Findings {
			if f.Action == ActionDeny && !producedBy(oldAlone, old, f, newObj) {
				wantDenied = true
			}
		}
		if d.Allowed == wantDenied {
			t.Fatalf("case %d: allowed=%v, want denied=%v\nold: %s\nnew: %s\nfindings: %+v", i, d.Allowed, wantDenied, old.json(t), newObj.json(t), d.Findings)
		}
	}
}

// stored evaluates an object as stored state: an UPDATE with no older version.
func stored(t testing.TB, p *Policy, o obj) *Decision {
	t.Helper()
	d, err := Evaluate(p, Request{Operation: OperationUpdate, Stage: StageValidate, Object: o.json(t)}, eastEnv())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// producedBy reports whether the old object's findings include f (found on newObj), comparing the
// rule and the field with list indexes resolved to element names in each object.
func producedBy(oldD *Decision, old obj, f Finding, newObj obj) bool {
	want := testIdentity(newObj, f.Field)
	for _, g := range oldD.Findings {
		if g.Rule == f.Rule && testIdentity(old, g.Field) == want {
			return true
		}
	}
	return false
}

// testIdentity rewrites "…dataDisks[1]…" to "…dataDisks[name]…" by reading the element, independently
// of the policy's own identity code.
func testIdentity(o obj, field string) string {
	var out strings.Builder
	var cur any = map[string]any(o)
	for part := range strings.SplitSeq(field, ".") {
		key, idx, hasIdx := strings.Cut(part, "[")
		if out.Len() > 0 {
			out.WriteByte('.')
		}
		out.WriteString(key)
		m, _ := cur.(map[string]any)
		cur = m[key]
		if !hasIdx {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(strings.TrimSuffix(idx, "]"), "%d", &n); err != nil {
			panic(field + ": not an index: " + idx)
		}
		arr, _ := cur.([]any)
		name := fmt.Sprint(n)
		if n < len(arr) {
			if e, ok := arr[n].(map[string]any); ok {
				switch {
				case e["nameSuffix"] != nil:
					name = fmt.Sprint(e["nameSuffix"])
				case e["name"] != nil:
					name = fmt.Sprint(e["name"])
				}
			}
			cur = arr[n]
		}
		out.WriteString("[" + name + "]")
	}
	return out.String()
}

var (
	randomSizes = []string{"Standard_D4s_v3", "Standard_D8s_v3", "Standard_D2_v3", "Standard_M8-2ms", "Standard_Nope"}
	randomDES   = []any{nil, desEast, desData, desOther, desPlaceholder, "", keyVaultURL}
	randomNames = []string{"etcd", "logs", "data", "scratch"}
)

func randomMachine(rng *rand.Rand) obj {
	o := pool()
	o.set(mp("vmSize"), randomSizes[rng.IntN(len(randomSizes))])
	if des := randomDES[rng.IntN(len(randomDES))]; des == nil {
		o.del(mp("osDisk.managedDisk.diskEncryptionSet"))
	} else {
		o.set(mp("osDisk.managedDisk.diskEncryptionSet.id"), des)
	}
	if rng.IntN(4) == 0 {
		o.set(mp("securityProfile.encryptionAtHost"), rng.IntN(2) == 0)
	}
	if rng.IntN(6) == 0 {
		o.set(mp("vmExtensions"), []any{map[string]any{"name": "AzureDiskEncryptionForLinux", "publisher": "Microsoft.Azure.Security"}})
	}
	var disks []any
	for j, name := range randomNames[:rng.IntN(len(randomNames)+1)] {
		disks = append(disks, namedDisk(name, j, randomDES[rng.IntN(len(randomDES))]))
	}
	rng.Shuffle(len(disks), func(a, b int) { disks[a], disks[b] = disks[b], disks[a] })
	return o.set(mp("dataDisks"), disks)
}

// editMachine applies one or two of the edits users make: append a disk, strip or change a DES,
// reorder the disks, resize.
func editMachine(rng *rand.Rand, old obj) obj {
	var o obj
	_ = json.Unmarshal(mustJSON(old), &o)
	for range 1 + rng.IntN(2) {
		disks, _ := o["spec"].(map[string]any)["template"].(map[string]any)["dataDisks"].([]any)
		switch rng.IntN(5) {
		case 0:
			disks = append(disks, namedDisk(fmt.Sprintf("new%d", rng.IntN(3)), 9, randomDES[rng.IntN(len(randomDES))]))
		case 1:
			if len(disks) > 0 {
				d := disks[rng.IntN(len(disks))].(map[string]any)
				delete(d["managedDisk"].(map[string]any), "diskEncryptionSet")
			} else {
				o.del(mp("osDisk.managedDisk.diskEncryptionSet"))
			}
		case 2:
			o.set(mp("osDisk.managedDisk.diskEncryptionSet.id"), randomDES[1+rng.IntN(len(randomDES)-1)])
		case 3:
			rng.Shuffle(len(disks), func(a, b int) { disks[a], disks[b] = disks[b], disks[a] })
		case 4:
			o.set(mp("vmSize"), randomSizes[rng.IntN(len(randomSizes))])
		}
		o.set(mp("dataDisks"), disks)
	}
	return o
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
