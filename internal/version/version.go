// Package version holds the build's version, stamped by the linker (see the Makefile and Dockerfile).
package version

import (
	"fmt"
	"runtime"
)

// Set with -ldflags -X at build time; the defaults say the binary was built without stamping.
var (
	Version   = "dev"
	Commit    = "unknown"
	BuildDate = "unknown"
)

// String is the one-line version report of the `version` subcommand and the startup log.
func String() string {
	return fmt.Sprintf("capz-encryption-webhook %s (commit %s, built %s, %s)", Version, Commit, BuildDate, runtime.Version())
}
