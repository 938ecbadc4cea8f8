package policy

import (
	"strings"
	"testing"
	"time"
)

func evalStored(t testing.TB, p *Policy, o obj, env Environment) *Decision {
	t.Helper()
	d, err := EvaluateStored(p, Request{Object: o.json(t)}, env)
	if err != nil {
		t.Fatalf("EvaluateStored: %v", err)
	}
	return d
}

// TestEvaluateStored: the stored object is judged as it is, without a patch; what the organisation
// default would inject but the object lacks is listed and reported as created-before-default.
func TestEvaluateStored(t *testing.T) {
	p := defaultsPolicy(t, "")
	t.Run("predates the default", func(t *testing.T) {
		d := evalStored(t, p, template(), eastEnv())
		if len(d.Patch) != 0 || len(d.Injected) != 0 {
			t.Fatalf("a stored evaluation must not patch: %+v", d.Patch)
		}
		want := []string{"osDisk.managedDisk.diskEncryptionSet.id", "securityProfile.encryptionAtHost"}
		if strings.Join(d.MissingDefaults, ",") != strings.Join(want, ",") {
			t.Errorf("missing defaults = %v, want %v", d.MissingDefaults, want)
		}
		f := findingsOf(d, RuleCreatedBeforeDefault)
		if len(f) != 1 || f[0].Action != ActionWarn || f[0].Field != "spec.template.spec" ||
			!strings.Contains(f[0].Message, `default "eastus"`) || !strings.Contains(f[0].Message, "no capz-encryption-webhook.io/injected annotation") {
			t.Fatalf("created-before-default = %+v", f)
		}
		if !d.Allowed {
			t.Errorf("a warn rule denied: %+v", d.Findings)
		}
	})
	t.Run("default changed after creation", func(t *testing.T) {
		o := template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast).
			set("metadata.annotations", map[string]any{AnnotationInjected: "osDisk.managedDisk.diskEncryptionSet.id"})
		d := evalStored(t, p, o, eastEnv())
		f := findingsOf(d, RuleCreatedBeforeDefault)
		if len(f) != 1 || !strings.Contains(f[0].Message, "records only osDisk.managedDisk.diskEncryptionSet.id") || len(d.MissingDefaults) != 1 {
			t.Fatalf("created-before-default = %+v, missing %v", f, d.MissingDefaults)
		}
	})
	t.Run("compliant object", func(t *testing.T) {
		o := template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast).set(tpl("securityProfile.encryptionAtHost"), true)
		d := evalStored(t, p, o, eastEnv())
		if len(d.Findings) != 0 || len(d.MissingDefaults) != 0 || !d.Allowed {
			t.Fatalf("findings %+v missing %v", d.Findings, d.MissingDefaults)
		}
	})
	t.Run("violations are enforced, not ratcheted", func(t *testing.T) {
		o := template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desPlaceholder)
		d := evalStored(t, p, o, eastEnv())
		f := findingsOf(d, RuleDESIDMalformed)
		if d.Allowed || len(f) != 1 || f[0].Ratcheted || f[0].Action != ActionDeny {
			t.Fatalf("stored placeholder: allowed=%v %+v", d.Allowed, f)
		}
	})
	t.Run("required key names the missing default", func(t *testing.T) {
		req := defaultsPolicy(t, "requireCustomerManagedKeys: true\n")
		d := evalStored(t, req, template(), eastEnv())
		f := findingsOf(d, RuleDESRequired)
		if len(f) != 1 || f[0].Action != ActionDeny || !strings.Contains(f[0].Message, "stored without it") {
			t.Fatalf("des-required = %+v", f)
		}
	})
	t.Run("AKS kinds and deleting objects", func(t *testing.T) {
		o := template().set("metadata.deletionTimestamp", "2026-01-01T00:00:00Z").set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desPlaceholder)
		if d := evalStored(t, p, o, eastEnv()); !d.Allowed || d.Exempt != "deleting" {
			t.Errorf("an object being deleted is reported, not failed: %+v", d)
		}
		ammp := obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureManagedMachinePool",
			"metadata": map[string]any{"name": "p"}, "spec": map[string]any{"enableEncryptionAtHost": true}}
		if d := evalStored(t, p, ammp, eastEnv()); d.Allowed || len(d.MissingDefaults) != 0 {
			t.Errorf("AKS pool: %+v", d)
		}
	})
}

func TestRuleDESKeyExpiry(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	osDES := tpl("osDisk.managedDisk.diskEncryptionSet.id")
	key := func(mod func(*KeyInfo)) KeyInfo {
		k := KeyInfo{URL: "https://kv.vault.azure.net/keys/disk/v1", Known: true, Enabled: true, Expires: now.Add(200 * day)}
		if mod != nil {
			mod(&k)
		}
		return k
	}
	envWith := func(rotation bool, k KeyInfo) Environment {
		e := eastEnv()
		e.Now = now
		e.DES = fakeDES{desEast: {Location: "eastus", EncryptionType: "EncryptionAtRestWithCustomerKey", RotationToLatestKeyVersion: rotation, Key: k}}
		return e
	}
	o := template().set(osDES, desEast)
	expiresIn := func(d time.Duration) func(*KeyInfo) { return func(k *KeyInfo) { k.Expires = now.Add(d) } }
	runRuleCases(t, RuleDESKeyExpiry, []ruleCase{
		{name: "valid key far from expiry", object: o, env: envWith(true, key(nil)), wantAllowed: true},
		{name: "key without expiry", object: o, env: envWith(false, key(func(k *KeyInfo) { k.Expires = time.Time{} })), wantAllowed: true},
		{name: "expired key denies a new machine", object: o, env: envWith(true, key(expiresIn(-time.Hour))),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"des-eastus", "expired on 2026-03-01T11:00:00Z", "kv.vault.azure.net"}},
		{name: "disabled key denies a new machine", object: o, env: envWith(true, key(func(k *KeyInfo) { k.Enabled = false })),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionDeny, wantMessage: []string{"disabled"}},
		{name: "expiring, rotation off: warns", object: o, env: envWith(false, key(expiresIn(10*day))),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"in 10 days", "keyExpiryWarning 30 days", "automatic key rotation off"}},
		{name: "expiring, rotation off, newer version unused: warns", object: o, env: envWith(false, key(func(k *KeyInfo) { k.Expires = now.Add(10 * day); k.NewerVersion = true })),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"newer key version exists"}},
		{name: "expiring, auto-rotation and a newer version: replaced", object: o, env: envWith(true, key(func(k *KeyInfo) { k.Expires = now.Add(10 * day); k.NewerVersion = true })), wantAllowed: true},
		{name: "expiring, auto-rotation and a newer version that expires sooner: warns", object: o,
			env:      envWith(true, key(func(k *KeyInfo) { k.Expires = now.Add(10 * day); k.NewerVersion, k.NewerExpires = true, now.Add(5*day) })),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"no Rotate action"}},
		{name: "expiring, auto-rotation, Key Vault rotates before expiry: replaced", object: o,
			env: envWith(true, key(func(k *KeyInfo) { k.Expires = now.Add(10 * day); k.NextRotation = now.Add(3 * day) })), wantAllowed: true},
		{name: "expiring, auto-rotation, no rotation policy: warns", object: o, env: envWith(true, key(expiresIn(10*day))),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"no Rotate action"}},
		{name: "expiring, Key Vault rotates after expiry: warns", object: o,
			env:      envWith(true, key(func(k *KeyInfo) { k.Expires = now.Add(10 * day); k.NextRotation = now.Add(20 * day) })),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"after it expires"}},
		{name: "expiring, Key Vault rotation overdue: warns", object: o,
			env:      envWith(true, key(func(k *KeyInfo) { k.Expires = now.Add(10 * day); k.NextRotation = now.Add(-3 * day) })),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"should have rotated"}},
		{name: "outside the default window", object: o, env: envWith(false, key(expiresIn(31*day))), wantAllowed: true},
		{name: "inside a longer keyExpiryWarning", object: o, env: envWith(false, key(expiresIn(60*day))), policy: mustPolicy(t, policyHeader+"keyExpiryWarning: 90d\n"),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionWarn, wantAllowed: true, wantMessage: []string{"in 60 days", "keyExpiryWarning 90 days"}},
		{name: "no clock: not judged", object: o, env: func() Environment { e := envWith(true, key(expiresIn(-day))); e.Now = time.Time{}; return e }(), wantAllowed: true},
		{name: "Key Vault not read: not judged", object: o, env: envWith(true, KeyInfo{URL: "https://kv.vault.azure.net/keys/disk/v1"}), wantAllowed: true},
		{name: "policy audits the rule", object: o, env: envWith(true, key(expiresIn(-day))), policy: mustPolicy(t, policyHeader+"rules:\n  des-key-expiry: audit\n"),
			wantRule: RuleDESKeyExpiry, wantField: osDES, wantAction: ActionAudit, wantAllowed: true},
	})

	env := envWith(true, key(expiresIn(-day)))
	t.Run("UPDATE of an existing object only warns", func(t *testing.T) {
		// A new finding on UPDATE (the DES was changed to the expired one) is judged, but at most warns.
		old := template().set(osDES, desWest)
		d, err := Evaluate(DefaultPolicy(), Request{Operation: OperationUpdate, Stage: StageValidate, Object: o.json(t), OldObject: old.json(t)}, env)
		if err != nil {
			t.Fatal(err)
		}
		f := findingsOf(d, RuleDESKeyExpiry)
		if len(f) != 1 || f[0].Action != ActionWarn || !d.Allowed {
			t.Fatalf("UPDATE: allowed=%v %+v", d.Allowed, f)
		}
	})
	t.Run("the audit reports an expired key as a failure", func(t *testing.T) {
		d := evalStored(t, DefaultPolicy(), o, env)
		if f := findingsOf(d, RuleDESKeyExpiry); len(f) != 1 || f[0].Action != ActionDeny || d.Allowed {
			t.Fatalf("stored: allowed=%v %+v", d.Allowed, f)
		}
	})
}

// machine is an AzureMachine in eastus with the given OS disk DES ("" for none).
func machine(des string) obj {
	o := obj{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachine",
		"metadata": map[string]any{"name": "m-0", "namespace": "default"},
		"spec": map[string]any{"vmSize": "Standard_D4s_v3", "providerID": "azure:///subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/m-0",
			"osDisk": map[string]any{"osType": "Linux", "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}}}
	if des != "" {
		o.set("spec.osDisk.managedDisk.diskEncryptionSet.id", des)
	}
	return o
}

func TestRulesOnWhatAzureBuilt(t *testing.T) {
	cmk := func(name, des string, lun int32) ActualDisk {
		return ActualDisk{Name: name, Lun: lun, EncryptionType: "EncryptionAtRestWithCustomerKey", DESID: des}
	}
	pmk := func(name string, lun int32) ActualDisk {
		return ActualDisk{Name: name, Lun: lun, EncryptionType: "EncryptionAtRestWithPlatformKey"}
	}
	vm := func(eah bool, os ActualDisk, data ...ActualDisk) Environment {
		e := eastEnv()
		e.Actual = &ActualVM{Resource: "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/m-0", EncryptionAtHost: eah, OSDisk: os, DataDisks: data}
		return e
	}
	osField := "spec.osDisk.managedDisk.diskEncryptionSet.id"
	withData := func(o obj, des string) obj {
		return o.set("spec.dataDisks", []any{namedDisk("etcd", 0, des), namedDisk("logs", 3, des)})
	}
	lowerDES := strings.ToLower(desEast)
	type tc struct {
		name    string
		obj     obj
		policy  *Policy
		env     Environment
		rule    RuleID
		field   string
		message []string
	}
	cases := []tc{
		{name: "disks with the object's set", obj: machine(desEast), env: vm(false, cmk("os", lowerDES, -1))},
		{name: "no set asked, platform keys", obj: machine(""), env: vm(false, pmk("os", -1))},
		{name: "object asks for a set, disk has platform keys", obj: machine(desEast), env: vm(false, pmk("m-0_OsDisk_1", -1)),
			rule: RuleAzureDiskNotCustomerKey, field: osField, message: []string{"m-0_OsDisk_1", "platform-managed keys only", "EncryptionAtRestWithPlatformKey", "the object asks for Disk Encryption Set " + desEast}},
		{name: "disk encrypted with another set", obj: machine(desEast), env: vm(false, cmk("os", desWest, -1)),
			rule: RuleAzureDiskDESMismatch, field: osField, message: []string{desWest, desEast}},
		{name: "platform-and-customer keys count as customer keys", obj: machine(desEast),
			env: vm(false, ActualDisk{Name: "os", Lun: -1, EncryptionType: "EncryptionAtRestWithPlatformAndCustomerKeys", DESID: desEast})},
		{name: "confidential disk with a customer key", obj: machine("").set("spec.osDisk.managedDisk.securityProfile", map[string]any{
			"securityEncryptionType": "DiskWithVMGuestState", "diskEncryptionSet": map[string]any{"id": desEast}}),
			env: vm(false, ActualDisk{Name: "os", Lun: -1, EncryptionType: "ConfidentialVM_DiskEncryptedWithCustomerKey", DESID: desEast})},
		{name: "the default's set, machine created before it", obj: machine(""), policy: defaultsPolicy(t, ""), env: vm(true, pmk("os", -1)),
			rule: RuleAzureDiskNotCustomerKey, field: osField, message: []string{`organisation default "eastus" asks for`}},
		{name: "requireCustomerManagedKeys: any customer key", obj: machine(""), policy: mustPolicy(t, policyHeader+"requireCustomerManagedKeys: true\n"), env: vm(false, cmk("os", desWest, -1))},
		{name: "requireCustomerManagedKeys: platform key fails", obj: machine(""), policy: mustPolicy(t, policyHeader+"requireCustomerManagedKeys: true\n"), env: vm(false, pmk("os", -1)),
			rule: RuleAzureDiskNotCustomerKey, field: osField, message: []string{"customer-managed keys", "requireCustomerManagedKeys"}},
		{name: "data disk matched by lun", obj: withData(machine(desEast), desEast), env: vm(false, cmk("os", desEast, -1), cmk("etcd", desEast, 0), pmk("logs", 3)),
			rule: RuleAzureDiskNotCustomerKey, field: "spec.dataDisks[1].managedDisk.diskEncryptionSet.id", message: []string{"data disk (lun 3) logs"}},
		{name: "object asks for EAH, VM has it off", obj: machine(desEast).set("spec.securityProfile.encryptionAtHost", true), env: vm(false, cmk("os", desEast, -1)),
			rule: RuleAzureEAHDisabled, field: "spec.securityProfile.encryptionAtHost", message: []string{"the object asks for encryption at host", "virtualMachines/m-0"}},
		{name: "default asks for EAH, VM has it off", obj: machine(desEast), policy: defaultsPolicy(t, ""), env: vm(false, cmk("os", desEast, -1)),
			rule: RuleAzureEAHDisabled, field: "spec.securityProfile.encryptionAtHost", message: []string{`organisation default "eastus"`}},
		{name: "user turned EAH off: not asked", obj: machine(desEast).set("spec.securityProfile.encryptionAtHost", false), policy: defaultsPolicy(t, ""), env: vm(false, cmk("os", desEast, -1))},
		{name: "EAH on", obj: machine(desEast).set("spec.securityProfile.encryptionAtHost", true), env: vm(true, cmk("os", desEast, -1))},
		{name: "AKS cluster: not judged", obj: machine(desEast), env: func() Environment {
			e := vm(false, pmk("os", -1))
			e.Cluster = ClusterInfo{Name: "aks", Found: true, AKS: true}
			return e
		}()},
		{name: "scale-set model without a set", obj: pool(), env: func() Environment {
			e := eastEnv()
			e.Actual = &ActualVM{Resource: "vmss/mp-0", ScaleSet: true, OSDisk: ActualDisk{Name: "OS disk of the model", Lun: -1}, DataDisks: []ActualDisk{{Name: "lun 0", Lun: 0, DESID: desEast}}}
			return e
		}(), rule: RuleAzureDiskNotCustomerKey, field: mp("osDisk.managedDisk.diskEncryptionSet.id"), message: []string{"no Disk Encryption Set in the scale-set model", "scale set vmss/mp-0"}},
	}
	azureRules := []RuleID{RuleAzureDiskNotCustomerKey, RuleAzureDiskDESMismatch, RuleAzureEAHDisabled}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.policy
			if p == nil {
				p = DefaultPolicy()
			}
			d := evalStored(t, p, c.obj, c.env)
			var hits []Finding
			for _, r := range azureRules {
				hits = append(hits, findingsOf(d, r)...)
			}
			if c.rule == "" {
				if len(hits) != 0 {
					t.Fatalf("want no finding on what Azure built, got %+v", hits)
				}
				return
			}
			if len(hits) != 1 || hits[0].Rule != c.rule || hits[0].Field != c.field || hits[0].Action != ActionDeny || d.Allowed {
				t.Fatalf("want one %s at %s (deny), got %+v", c.rule, c.field, hits)
			}
			for _, m := range c.message {
				if !strings.Contains(hits[0].Message, m) {
					t.Errorf("message %q lacks %q", hits[0].Message, m)
				}
			}
		})
	}
	t.Run("admission never has the VM", func(t *testing.T) {
		d := create(t, defaultsPolicy(t, ""), machine(""), eastEnv())
		for _, r := range azureRules {
			if len(findingsOf(d, r)) != 0 {
				t.Errorf("%s reported without Azure data", r)
			}
		}
	})
}

func TestParseKeyExpiryWarning(t *testing.T) {
	for v, want := range map[string]time.Duration{"45d": 45 * 24 * time.Hour, "720h": 720 * time.Hour, "1h": time.Hour, "365d": 365 * 24 * time.Hour} {
		if p := mustPolicy(t, policyHeader+"keyExpiryWarning: "+v+"\n"); p.KeyExpiryWindow() != want {
			t.Errorf("%s: %s", v, p.KeyExpiryWindow())
		}
	}
	if DefaultPolicy().KeyExpiryWindow() != 30*24*time.Hour || mustPolicy(t, policyHeader).KeyExpiryWindow() != 30*24*time.Hour {
		t.Error("the default window is 30 days")
	}
	for _, bad := range []string{"30", "-1d", "+3d", "0d", "366d", "99999999999999999999d", "30m", "1y", "d", "30 days", "[30d]"} {
		_, err := Parse("p.yaml", []byte(policyHeader+"keyExpiryWarning: "+bad+"\n"))
		if err == nil || !strings.Contains(err.Error(), "p.yaml:3: ") {
			t.Errorf("keyExpiryWarning: %s: want an error at line 3, got %v", bad, err)
		}
	}
}
