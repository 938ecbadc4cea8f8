package azure

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	azkeysfake "github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys/fake"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	pol "github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

const vault = "https://kv-e2e.vault.azure.net"

// router sends Key Vault calls (their paths start with /keys/) to the azkeys fake and everything else
// to the Resource Manager fakes.
type router struct{ arm, kv policy.Transporter }

func (r router) Do(req *http.Request) (*http.Response, error) {
	if strings.HasPrefix(req.URL.Path, "/keys/") {
		return r.kv.Do(req)
	}
	return r.arm.Do(req)
}

func clientsFor(t *testing.T, srv *fake.ServerFactory, kv *azkeysfake.Server) *Clients {
	t.Helper()
	if kv == nil {
		kv = &azkeysfake.Server{}
	}
	c, err := NewClients(Config{SubscriptionID: sub, Credential: &azfake.TokenCredential{}, Timeout: 5 * time.Second,
		Transport: router{arm: fake.NewServerFactoryTransport(srv), kv: azkeysfake.NewServerTransport(kv)}})
	if err != nil {
		t.Fatal(err)
	}
	c.opts.Retry = policy.RetryOptions{MaxRetries: -1}
	return c
}

func disk(name string, typ armcompute.EncryptionType, des string) armcompute.Disk {
	d := armcompute.Disk{Name: to.Ptr(name), Properties: &armcompute.DiskProperties{Encryption: &armcompute.Encryption{Type: to.Ptr(typ)}}}
	if des != "" {
		d.Properties.Encryption.DiskEncryptionSetID = to.Ptr(des)
	}
	return d
}

func diskID(name string) *string {
	return to.Ptr("/subscriptions/" + sub + "/resourceGroups/rg-disks/providers/Microsoft.Compute/disks/" + name)
}

func TestMachinesVM(t *testing.T) {
	disks := map[string]armcompute.Disk{
		"m-0_OsDisk": disk("m-0_OsDisk", armcompute.EncryptionTypeEncryptionAtRestWithCustomerKey, desEast),
		"m-0_etcd":   disk("m-0_etcd", armcompute.EncryptionTypeEncryptionAtRestWithPlatformKey, ""),
		"m-0_cvm": {Properties: &armcompute.DiskProperties{Encryption: &armcompute.Encryption{Type: to.Ptr(armcompute.EncryptionTypeEncryptionAtRestWithPlatformKey)},
			SecurityProfile: &armcompute.DiskSecurityProfile{SecurityType: to.Ptr(armcompute.DiskSecurityTypesConfidentialVMDiskEncryptedWithCustomerKey), SecureVMDiskEncryptionSetID: to.Ptr(desWest)}}},
	}
	var rgs []string
	srv := &fake.ServerFactory{
		VirtualMachinesServer: fake.VirtualMachinesServer{Get: func(_ context.Context, rg, name string, _ *armcompute.VirtualMachinesClientGetOptions) (resp azfake.Responder[armcompute.VirtualMachinesClientGetResponse], errResp azfake.ErrorResponder) {
			rgs = append(rgs, rg)
			switch name {
			case "gone":
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
			case "ephemeral":
				resp.SetResponse(http.StatusOK, armcompute.VirtualMachinesClientGetResponse{VirtualMachine: armcompute.VirtualMachine{Properties: &armcompute.VirtualMachineProperties{
					StorageProfile: &armcompute.StorageProfile{OSDisk: &armcompute.OSDisk{Name: to.Ptr("eph"), DiffDiskSettings: &armcompute.DiffDiskSettings{}}}}}}, nil)
			default:
				resp.SetResponse(http.StatusOK, armcompute.VirtualMachinesClientGetResponse{VirtualMachine: armcompute.VirtualMachine{Properties: &armcompute.VirtualMachineProperties{
					SecurityProfile: &armcompute.SecurityProfile{EncryptionAtHost: to.Ptr(true)},
					StorageProfile: &armcompute.StorageProfile{
						OSDisk:    &armcompute.OSDisk{Name: to.Ptr("m-0_OsDisk"), ManagedDisk: &armcompute.ManagedDiskParameters{ID: diskID("m-0_OsDisk")}},
						DataDisks: []*armcompute.DataDisk{{Lun: to.Ptr[int32](2), Name: to.Ptr("m-0_etcd"), ManagedDisk: &armcompute.ManagedDiskParameters{ID: diskID("m-0_etcd")}}, {Lun: to.Ptr[int32](3), ManagedDisk: &armcompute.ManagedDiskParameters{ID: diskID("m-0_cvm")}}},
					}}}}, nil)
			}
			return
		}},
		DisksServer: fake.DisksServer{Get: func(_ context.Context, rg, name string, _ *armcompute.DisksClientGetOptions) (resp azfake.Responder[armcompute.DisksClientGetResponse], errResp azfake.ErrorResponder) {
			if rg != "rg-disks" {
				errResp.SetResponseError(http.StatusNotFound, "wrong resource group "+rg)
				return
			}
			resp.SetResponse(http.StatusOK, armcompute.DisksClientGetResponse{Disk: disks[name]}, nil)
			return
		}},
	}
	m := NewMachines(clientsFor(t, srv, nil))
	ctx := context.Background()
	vm, err := m.VM(ctx, "azure:///subscriptions/"+sub+"/resourceGroups/rg-vms/providers/Microsoft.Compute/virtualMachines/m-0")
	if err != nil {
		t.Fatal(err)
	}
	if !vm.EncryptionAtHost || !strings.HasSuffix(vm.Resource, "/resourceGroups/rg-vms/providers/Microsoft.Compute/virtualMachines/m-0") || rgs[0] != "rg-vms" {
		t.Errorf("vm = %+v (resource groups asked %v)", vm, rgs)
	}
	want := pol.ActualDisk{Name: "m-0_OsDisk", Lun: -1, EncryptionType: "EncryptionAtRestWithCustomerKey", DESID: desEast}
	if vm.OSDisk != want {
		t.Errorf("OS disk = %+v, want %+v", vm.OSDisk, want)
	}
	if len(vm.DataDisks) != 2 || vm.DataDisks[0] != (pol.ActualDisk{Name: "m-0_etcd", Lun: 2, EncryptionType: "EncryptionAtRestWithPlatformKey"}) {
		t.Errorf("data disks = %+v", vm.DataDisks)
	}
	if cvm := vm.DataDisks[1]; cvm.EncryptionType != "ConfidentialVM_DiskEncryptedWithCustomerKey" || cvm.DESID != desWest || cvm.Name != "m-0_cvm" {
		t.Errorf("confidential disk = %+v", cvm)
	}
	if _, err := m.VM(ctx, "azure:///subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a deleted VM: %v", err)
	}
	eph, err := m.VM(ctx, "azure:///subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/ephemeral")
	if err != nil || eph.OSDisk.EncryptionType != "Ephemeral" {
		t.Errorf("ephemeral OS disk: %+v %v", eph, err)
	}
	for _, bad := range []string{"", "aws:///i-123", "azure:///subscriptions/" + sub, "azure:///subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.Compute/disks/d"} {
		if _, err := m.VM(ctx, bad); err == nil {
			t.Errorf("providerID %q accepted", bad)
		}
	}
}

func TestMachinesScaleSet(t *testing.T) {
	srv := &fake.ServerFactory{VirtualMachineScaleSetsServer: fake.VirtualMachineScaleSetsServer{Get: func(_ context.Context, rg, name string, _ *armcompute.VirtualMachineScaleSetsClientGetOptions) (resp azfake.Responder[armcompute.VirtualMachineScaleSetsClientGetResponse], errResp azfake.ErrorResponder) {
		if name != "mp-0" || rg != "rg" {
			errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
			return
		}
		resp.SetResponse(http.StatusOK, armcompute.VirtualMachineScaleSetsClientGetResponse{VirtualMachineScaleSet: armcompute.VirtualMachineScaleSet{Properties: &armcompute.VirtualMachineScaleSetProperties{
			VirtualMachineProfile: &armcompute.VirtualMachineScaleSetVMProfile{StorageProfile: &armcompute.VirtualMachineScaleSetStorageProfile{
				OSDisk:    &armcompute.VirtualMachineScaleSetOSDisk{ManagedDisk: &armcompute.VirtualMachineScaleSetManagedDiskParameters{DiskEncryptionSet: &armcompute.DiskEncryptionSetParameters{ID: to.Ptr(desEast)}}},
				DataDisks: []*armcompute.VirtualMachineScaleSetDataDisk{{Lun: to.Ptr[int32](0), ManagedDisk: &armcompute.VirtualMachineScaleSetManagedDiskParameters{}}},
			}}}}}, nil)
		return
	}}}
	m := NewMachines(clientsFor(t, srv, nil))
	ss, err := m.ScaleSet(context.Background(), sub, "rg", "mp-0")
	if err != nil {
		t.Fatal(err)
	}
	if !ss.ScaleSet || ss.EncryptionAtHost || ss.OSDisk.DESID != desEast || len(ss.DataDisks) != 1 || ss.DataDisks[0].DESID != "" || ss.DataDisks[0].Lun != 0 {
		t.Errorf("scale set = %+v", ss)
	}
	if _, err := m.ScaleSet(context.Background(), sub, "rg", "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing scale set: %v", err)
	}
}

// keyVaultFake answers Get Key and Get Key Rotation Policy for the keys in versions (name → versions,
// oldest first).
type keyVersion struct {
	version          string
	enabled          bool
	created, expires time.Time
}

func keyVaultFake(versions map[string][]keyVersion, rotation map[string]azkeys.KeyRotationPolicy, calls *atomic.Int32, down *atomic.Bool) *azkeysfake.Server {
	bundle := func(name string, v keyVersion) azkeys.KeyBundle {
		kid := azkeys.ID(vault + "/keys/" + name + "/" + v.version)
		a := &azkeys.KeyAttributes{Enabled: to.Ptr(v.enabled), Created: to.Ptr(v.created)}
		if !v.expires.IsZero() {
			a.Expires = to.Ptr(v.expires)
		}
		return azkeys.KeyBundle{Key: &azkeys.JSONWebKey{KID: &kid}, Attributes: a}
	}
	return &azkeysfake.Server{
		GetKey: func(_ context.Context, name, version string, _ *azkeys.GetKeyOptions) (resp azfake.Responder[azkeys.GetKeyResponse], errResp azfake.ErrorResponder) {
			calls.Add(1)
			// The fake's path pattern lets the key name swallow "/VERSION": split it back.
			if n, v, ok := strings.Cut(name, "/"); ok {
				name, version = n, v
			}
			vs := versions[name]
			if down != nil && down.Load() {
				errResp.SetResponseError(http.StatusForbidden, "Forbidden")
				return
			}
			for i := len(vs) - 1; i >= 0; i-- {
				if version == "" || vs[i].version == version {
					resp.SetResponse(http.StatusOK, azkeys.GetKeyResponse{KeyBundle: bundle(name, vs[i])}, nil)
					return
				}
			}
			errResp.SetResponseError(http.StatusNotFound, "KeyNotFound")
			return
		},
		GetKeyRotationPolicy: func(_ context.Context, name string, _ *azkeys.GetKeyRotationPolicyOptions) (resp azfake.Responder[azkeys.GetKeyRotationPolicyResponse], errResp azfake.ErrorResponder) {
			if p, ok := rotation[name]; ok {
				resp.SetResponse(http.StatusOK, azkeys.GetKeyRotationPolicyResponse{KeyRotationPolicy: p}, nil)
			} else {
				errResp.SetResponseError(http.StatusNotFound, "KeyNotFound")
			}
			return
		},
	}
}

func rotate(trigger azkeys.LifetimeActionTrigger) azkeys.KeyRotationPolicy {
	return azkeys.KeyRotationPolicy{LifetimeActions: []*azkeys.LifetimeAction{
		{Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionNotify)}, Trigger: &azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P30D")}},
		{Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}, Trigger: &trigger},
	}}
}

// TestDESCacheReadsKeys: the cache reads each set's active key from Key Vault — expiry, enabled, a
// newer version, the rotation policy's next rotation — and exports the expiry as a metric. A Key
// Vault failure keeps the last good key facts and does not hide the set's own facts.
func TestDESCacheReadsKeys(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	expires := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	sets := map[string]string{ // DES name → active key URL
		"des-east": vault + "/keys/disk/v1",
		"des-west": vault + "/keys/rotating/v2",
		"des-data": vault + "/keys/pinned/v1",
		"des-bare": "",
	}
	versions := map[string][]keyVersion{
		"disk":     {{version: "v1", enabled: true, created: created, expires: expires}},
		"rotating": {{version: "v2", enabled: false, created: created, expires: expires}},
		"pinned":   {{version: "v1", enabled: true, created: created, expires: expires}, {version: "v2", enabled: true, created: created, expires: expires.AddDate(1, 0, 0)}},
	}
	rotation := map[string]azkeys.KeyRotationPolicy{
		"disk":     rotate(azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P7D")}),
		"rotating": rotate(azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P1Y")}),
	}
	calls, down := &atomic.Int32{}, &atomic.Bool{}
	srv := &fake.ServerFactory{DiskEncryptionSetsServer: fake.DiskEncryptionSetsServer{Get: func(_ context.Context, _, name string, _ *armcompute.DiskEncryptionSetsClientGetOptions) (resp azfake.Responder[armcompute.DiskEncryptionSetsClientGetResponse], errResp azfake.ErrorResponder) {
		props := &armcompute.EncryptionSetProperties{EncryptionType: to.Ptr(armcompute.DiskEncryptionSetTypeEncryptionAtRestWithCustomerKey), RotationToLatestKeyVersionEnabled: to.Ptr(true)}
		if u := sets[name]; u != "" {
			props.ActiveKey = &armcompute.KeyForDiskEncryptionSet{KeyURL: to.Ptr(u)}
		}
		resp.SetResponse(http.StatusOK, armcompute.DiskEncryptionSetsClientGetResponse{DiskEncryptionSet: armcompute.DiskEncryptionSet{Location: to.Ptr("eastus"), Properties: props}}, nil)
		return
	}}}
	c := NewDESCache(clientsFor(t, srv, keyVaultFake(versions, rotation, calls, down)), time.Hour, time.Minute, logr.Discard(), WithDESScope(SubscriptionScope(sub, noList)))
	id := func(name string) string {
		return "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/" + name
	}
	changes := &atomic.Int32{}
	c.OnChange(func() { changes.Add(1) })
	ctx := context.Background()
	if !c.Ensure(ctx, id("des-east"), id("des-west"), id("des-data"), id("des-bare")) {
		t.Fatal("Ensure loaded nothing")
	}
	if changes.Load() != 4 {
		t.Errorf("%d change notifications for four new sets", changes.Load())
	}
	info, state := c.LookupDES(id("des-east"))
	want := pol.KeyInfo{URL: vault + "/keys/disk/v1", Known: true, Enabled: true, Expires: expires, NextRotation: expires.AddDate(0, 0, -7)}
	if state != pol.DESFound || info.Key != want {
		t.Errorf("des-east key = %+v, want %+v", info.Key, want)
	}
	info, _ = c.LookupDES(id("des-west"))
	if k := info.Key; !k.Known || k.Enabled || !k.NextRotation.Equal(created.AddDate(1, 0, 0)) || k.NewerVersion {
		t.Errorf("des-west key (disabled, rotates a year after creation) = %+v", k)
	}
	info, _ = c.LookupDES(id("des-data"))
	if k := info.Key; !k.Known || !k.NewerVersion || !k.NewerExpires.Equal(expires.AddDate(1, 0, 0)) || !k.NextRotation.IsZero() {
		t.Errorf("des-data key (a newer version, no rotation policy) = %+v", k)
	}
	if info, state := c.LookupDES(id("des-bare")); state != pol.DESFound || info.Key != (pol.KeyInfo{}) {
		t.Errorf("a set without an active key: %+v", info)
	}
	series := ""
	for _, n := range []string{"des-data", "des-east", "des-west"} {
		series += `capz_encryption_webhook_des_key_expiry_timestamp_seconds{des="` + strings.ToLower(id(n)) + `"} 1.7750016e+09` + "\n"
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP capz_encryption_webhook_des_key_expiry_timestamp_seconds Expiry of the active Key Vault key of each Disk Encryption Set in use, as a Unix time (sets whose key never expires are left out).
# TYPE capz_encryption_webhook_des_key_expiry_timestamp_seconds gauge
`+series), "capz_encryption_webhook_des_key_expiry_timestamp_seconds"); err != nil {
		t.Error(err)
	}

	// Key Vault refuses: the sets stay known and keep their last good key facts.
	before := calls.Load()
	down.Store(true)
	// Past the ttl (a refresh is due), within the idle time (the sets are still kept).
	c.now = func() time.Time { return time.Now().Add(90 * time.Minute) }
	c.once(ctx)
	if calls.Load() == before {
		t.Fatal("no Key Vault call after the ttl")
	}
	info, state = c.LookupDES(id("des-east"))
	if state != pol.DESFound || info.Key != want {
		t.Errorf("after a Key Vault failure: %v %+v", state, info.Key)
	}
	if changes.Load() != 4 {
		t.Errorf("a refresh that brought nothing new notified: %d", changes.Load())
	}
}

func TestNextRotation(t *testing.T) {
	created := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	expires := time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		policy azkeys.KeyRotationPolicy
		want   time.Time
	}{
		{rotate(azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P30D")}), expires.AddDate(0, 0, -30)},
		{rotate(azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P1M")}), created.AddDate(0, 1, 0)},
		{rotate(azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P1Y2M10DT2H30M")}), created.AddDate(1, 2, 10).Add(150 * time.Minute)},
		{rotate(azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("PT48H")}), expires.Add(-48 * time.Hour)},
		{rotate(azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P2W")}), expires.AddDate(0, 0, -14)},
		{azkeys.KeyRotationPolicy{LifetimeActions: []*azkeys.LifetimeAction{{Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionNotify)}, Trigger: &azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P30D")}}}}, time.Time{}},
		{azkeys.KeyRotationPolicy{}, time.Time{}},
	}
	for i, c := range cases {
		got, err := nextRotation(c.policy, created, expires)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("case %d: %s %v, want %s", i, got, err, c.want)
		}
	}
	// Without an expiry, a rotation before expiry never fires.
	if got, _ := nextRotation(rotate(azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P30D")}), created, time.Time{}); !got.IsZero() {
		t.Errorf("no expiry: %s", got)
	}
	for _, bad := range []string{"", "P", "PT", "30D", "P30", "PD", "P1D1Y", "P1DT", "P1H", "PT1D", "P1.5D", "P9999999D"} {
		if _, err := addISODuration(created, bad, 1); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseKeyURL(t *testing.T) {
	k, err := parseKeyURL("https://kv.vault.azure.net/keys/disk/0123abcd")
	if err != nil || k != (keyRef{vault: "https://kv.vault.azure.net", name: "disk", version: "0123abcd"}) {
		t.Errorf("%+v %v", k, err)
	}
	if k, err := parseKeyURL("https://kv.vault.azure.net/keys/disk"); err != nil || k.version != "" {
		t.Errorf("versionless: %+v %v", k, err)
	}
	for _, bad := range []string{"http://kv.vault.azure.net/keys/d/v", "https://kv.vault.azure.net/secrets/d/v", "https:///keys/d", "https://kv/keys/", "https://kv/keys/d/v/x", "https://u@kv/keys/d", "https://kv/keys/d?x=1"} {
		if _, err := parseKeyURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestStoreOnChange: a refresh notifies only when it brings new data.
func TestStoreOnChange(t *testing.T) {
	value := "a"
	s := newStore("test", "test", time.Nanosecond, 0, time.Second, func(context.Context, string) (string, error) { return value, nil }, logr.Discard())
	s.same = func(a, b string) bool { return a == b }
	s.limits.Idle = time.Hour // the ttl of 1ns would otherwise make "k" idle at once
	n := 0
	s.OnChange(func() { n++ })
	ctx := context.Background()
	s.Want("k")
	s.once(ctx)
	s.once(ctx)
	if n != 1 {
		t.Fatalf("%d notifications after a first load and an unchanged refresh", n)
	}
	value = "b"
	s.once(ctx)
	if n != 2 {
		t.Fatalf("a changed value did not notify: %d", n)
	}
}
