package main

import (
	"runtime/debug"
	"testing"

	"github.com/go-logr/logr"
)

// TestSetMemoryLimit: the runtime's memory limit is 90% of the container limit the chart passes.
func TestSetMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	t.Setenv(envMemoryLimit, "402653184") // 384Mi, the chart's default limit
	if got := setMemoryLimit(0.9, logr.Discard()); got != 362387865 || debug.SetMemoryLimit(-1) != 362387865 {
		t.Errorf("limit = %d (runtime %d), want 362387865", got, debug.SetMemoryLimit(-1))
	}
	// The operator's GOMEMLIMIT wins.
	debug.SetMemoryLimit(before)
	t.Setenv("GOMEMLIMIT", "100MiB")
	setMemoryLimit(0.9, logr.Discard())
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("GOMEMLIMIT set, yet the limit became %d", got)
	}
}
