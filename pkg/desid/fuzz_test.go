package desid

import (
	"errors"
	"testing"
)

// FuzzParse: Parse never panics; what it accepts re-formats to an ID it accepts again, equal to the
// first and a fixed point of String; what it rejects comes with a segment and an expectation.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		id("rg", "des"), id("ресурсы", "d"), "", "/", "//", id("rg", "des") + "/",
		"/subscriptions/subscriptionId/resourceGroups/resourceGroup/providers/Microsoft.Compute/diskEncryptionSets/diskEncryptionSet",
		"https://kv.vault.azure.net/keys/k/1", "/subscriptions/" + guid + "/resourceGroups/rg/providers/Microsoft.Compute/disks/d",
		"https://management.azure.com" + id("rg", "d"), "/SUBSCRIPTIONS/" + guid + "/RESOURCEGROUPS/x/PROVIDERS/MICROSOFT.COMPUTE/DISKENCRYPTIONSETS/y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Segment == "" || e.Expected == "" {
				t.Fatalf("Parse(%q): error %v lacks segment or expectation", s, err)
			}
			return
		}
		again, err := Parse(got.String())
		if err != nil {
			t.Fatalf("Parse(%q) accepted, but its String %q is rejected: %v", s, got.String(), err)
		}
		if !again.Equal(got) || again.String() != got.String() {
			t.Fatalf("round trip changed %q: %+v -> %+v", s, got, again)
		}
	})
}
