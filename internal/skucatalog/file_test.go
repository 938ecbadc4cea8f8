package skucatalog

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// testdata/az-vm-list-skus.json is `az vm list-skus --all -o json` output in Azure's exact shape
// (nulls, zoneDetails, a disks and an availabilitySets record). The VM records carry real
// capability values from the embedded data; the second location and the zone lists are added to
// exercise what the subset cannot show.
func readTestdata(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/az-vm-list-skus.json")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseAzCLI(t *testing.T) {
	cli := readTestdata(t)
	inputs := []struct {
		name string
		data []byte
	}{
		{"az vm list-skus array", cli},
		{"ARM REST envelope", []byte(`{"value": ` + string(cli) + `}`)},
		{"REST envelope with an empty nextLink", []byte(`{"nextLink": "", "value": ` + string(cli) + `}`)},
		{"byte-order mark (PowerShell Out-File)", append([]byte("\xef\xbb\xbf"), cli...)},
	}
	type want struct {
		region, size string
		found        bool
		family       string
		eah          bool
		restriction  string   // type of the NotAvailableForSubscription restriction, "" for none
		zones        []string // of that restriction
	}
	wants := []want{
		// One record, two locations: one SKU each; the Zone restriction names only eastus.
		{region: "eastus", size: "Standard_D2s_v3", found: true, family: "standardDSv3Family", eah: true, restriction: skus.RestrictionTypeZone, zones: []string{"3"}},
		{region: "westcentralus", size: "Standard_D2s_v3", found: true, family: "standardDSv3Family", eah: true},
		{region: "East US", size: "standard_d2s_V3", found: true, family: "standardDSv3Family", eah: true, restriction: skus.RestrictionTypeZone, zones: []string{"3"}},
		{region: "eastus", size: "Standard_M8-2ms", found: true, family: "standardMSFamily", eah: true, restriction: skus.RestrictionTypeZone, zones: []string{"1", "2"}},
		// Location restriction: "zones": null in the file stays nil, not an empty list.
		{region: "westcentralus", size: "Standard_A0", found: true, family: "standardA0_A7Family", restriction: skus.RestrictionTypeLocation},
		{region: "eastus", size: "Standard_A0"},
		// Non-VM resource types are skipped.
		{region: "eastus", size: "Premium_LRS"},
		{region: "eastus", size: "Aligned"},
	}
	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			got, err := ParseAzCLI(in.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 4 {
				t.Fatalf("want 4 SKUs (a 2-location record + 2, non-VM records skipped), got %d: %+v", len(got), got)
			}
			c := skus.NewStatic(got, skus.SourceInfo{Name: "file"})
			if r := c.Regions(); !slices.Equal(r, []string{"eastus", "westcentralus"}) {
				t.Errorf("regions = %v", r)
			}
			for _, w := range wants {
				s, ok := c.Lookup(w.region, w.size)
				if ok != w.found {
					t.Errorf("%s/%s: found=%v, want %v", w.region, w.size, ok, w.found)
					continue
				}
				if !ok {
					continue
				}
				if s.Family != w.family || s.EncryptionAtHostSupported() != w.eah {
					t.Errorf("%s/%s: family=%q eah=%v, want %q %v", w.region, w.size, s.Family, s.EncryptionAtHostSupported(), w.family, w.eah)
				}
				r, restricted := s.SubscriptionRestriction()
				if restricted != (w.restriction != "") || r.Type != w.restriction || !slices.Equal(r.Zones, w.zones) {
					t.Errorf("%s/%s: restriction=%+v (%v), want type %q zones %v", w.region, w.size, r, restricted, w.restriction, w.zones)
				}
			}
		})
	}
}

func TestParseAzCLIErrors(t *testing.T) {
	const okRecord = `{"resourceType": "virtualMachines", "name": "Standard_D2s_v3", "locations": ["eastus"]}`
	cases := []struct {
		name string
		data string
		want []string // substrings of the error
	}{
		{"empty input", "", []string{"empty input"}},
		{"not JSON", "name: x", []string{"invalid JSON at line 1, column 2", "invalid character 'a'"}},
		{"malformed JSON, position given", "[\n  " + okRecord + ",\n  {\"name\": \"x\",]\n]", []string{"invalid JSON at line 3, column 16", "invalid character ']'"}},
		{"truncated file", "[\n  " + okRecord + ",\n", []string{"unexpected end of input"}},
		{"missing name, record index and line given", "[\n  " + okRecord + ",\n  {\"resourceType\": \"virtualMachines\", \"locations\": [\"eastus\"]}\n]", []string{"record 1 (line 3, column 3): missing name"}},
		{"blank name", `[{"resourceType": "virtualMachines", "name": " ", "locations": ["eastus"]}]`, []string{"record 0", "missing name"}},
		{"PowerShell PascalCase keys", `[{"ResourceType": "virtualMachines", "Name": "Standard_D2s_v3", "Locations": ["eastus"]}]`, []string{"record 0", "camelCase"}},
		{"no locations", `[{"resourceType": "virtualMachines", "name": "Standard_D2s_v3"}]`, []string{"record 0", "Standard_D2s_v3: no locations"}},
		{"wrong type in a record", "[" + okRecord + `, {"name": 5}]`, []string{"record 1 (line 1, column ", "Name"}},
		{"null record", `[null]`, []string{"record 0", "null record"}},
		{"scalar document", `"Standard_D2s_v3"`, []string{"expected a JSON array"}},
		{"object without value", `{"resourceType": "virtualMachines", "name": "Standard_D2s_v3"}`, []string{`without "value"`}},
		{"value not an array", `{"value": {}}`, []string{`"value" must be an array`}},
		{"one page of a paged list", `{"value": [` + okRecord + `], "nextLink": "https://management.azure.com/...&$skiptoken=x"}`, []string{"nextLink"}},
		{"trailing data", "[" + okRecord + "] []", []string{"unexpected data after"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAzCLI([]byte(tc.data))
			if err == nil {
				t.Fatalf("want an error, got %+v", got)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestFromSDKIsolation: the SKUs of one multi-location record must not share a capabilities map,
// or a caller changing one region's record would change another's.
func TestFromSDKIsolation(t *testing.T) {
	got, err := ParseAzCLI(readTestdata(t))
	if err != nil {
		t.Fatal(err)
	}
	got[0].Capabilities[skus.CapabilityEncryptionAtHost] = "False"
	if got[1].Name != got[0].Name || !got[1].EncryptionAtHostSupported() {
		t.Errorf("records %q/%s and %q/%s share state", got[0].Name, got[0].Region, got[1].Name, got[1].Region)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mtime time.Time) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mtime := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	good := write("skus.json", string(readTestdata(t)), mtime)

	c, err := LoadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	src := c.Source("eastus")
	if src.Name != "file" || src.Detail != good || !src.AsOf.Equal(mtime) {
		t.Errorf("source = %+v, want file %s as of %v", src, good, mtime)
	}
	if c.Source("") != src || c.Source("westeurope").Name != "none" {
		t.Errorf("Source(\"\") = %+v, Source(westeurope) = %+v", c.Source(""), c.Source("westeurope"))
	}

	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"missing file", filepath.Join(dir, "absent.json"), []string{"absent.json", "no such file"}},
		{"no VM sizes", write("disks.json", `[{"resourceType": "disks", "name": "Premium_LRS", "locations": ["eastus"]}]`, mtime), []string{"disks.json", "no virtualMachines records"}},
		{"broken file names itself", write("broken.json", "[\n{", mtime), []string{"broken.json", "unexpected end of input"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFile(tc.path)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
