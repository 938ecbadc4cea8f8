package desid

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; what it accepts differs from its canonical form only in case and
// re-parses to an equal ID whose String is a fixed point; what it rejects comes with a segment and
// an expectation, on one bounded line.
func FuzzParse(f *testing.F) {
	for _, tc := range validCases {
		f.Add(tc.in)
	}
	for _, tc := range invalidCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Segment == "" || e.Expected == "" || e.Input != s {
				t.Fatalf("Parse(%q): incomplete error %#v", s, err)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 2000 {
				t.Fatalf("Parse(%q): multi-line or unbounded message (%d bytes): %q", s, len(msg), msg)
			}
			return
		}
		canon := got.String()
		if !strings.EqualFold(canon, s) {
			t.Fatalf("Parse(%q) accepted, but String %q is not the same ID", s, canon)
		}
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) accepted, but its String %q is rejected: %v", s, canon, err)
		}
		if again != got || again.String() != canon {
			t.Fatalf("round trip changed %q: %+v -> %+v", s, got, again)
		}
		// internal/azure keys its cache by the lower-cased canonical ID and parses the key again.
		if _, err := Parse(strings.ToLower(canon)); err != nil {
			t.Fatalf("lower-cased %q is rejected: %v", canon, err)
		}
	})
}
