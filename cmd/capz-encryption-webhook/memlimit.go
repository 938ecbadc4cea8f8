package main

import (
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/go-logr/logr"
)

// envMemoryLimit is where the chart puts the container's memory limit, in bytes, through the
// downward API (resourceFieldRef limits.memory): explicit, and right even where the cgroup files
// are not where the library looks.
const envMemoryLimit = "MEMORY_LIMIT"

// setMemoryLimit makes the Go runtime collect harder as the heap nears ratio of the container's
// memory limit (GOMEMLIMIT), instead of growing into the kernel's OOM kill: a few large admission
// reviews arriving together would otherwise double the heap before the next collection. The limit
// is MEMORY_LIMIT when set, else the cgroup's (automemlimit reads cgroup v1 and v2). A GOMEMLIMIT
// in the environment wins, as the Go runtime's own setting; ratio 0 leaves the runtime alone. It
// returns the limit in force (math.MaxInt64: none).
func setMemoryLimit(ratio float64, log logr.Logger) int64 {
	if ratio == 0 {
		log.Info("memory limit not derived (--memory-limit-ratio=0)")
		return -1
	}
	provider := memlimit.FromCgroup
	if v := strings.TrimSpace(os.Getenv(envMemoryLimit)); v != "" {
		provider = memlimit.ApplyFallback(func() (uint64, error) { return strconv.ParseUint(v, 10, 64) }, memlimit.FromCgroup)
	}
	limit, err := memlimit.Set(memlimit.WithRatio(ratio), memlimit.WithProvider(provider),
		memlimit.WithLogger(slog.New(logr.ToSlogHandler(log))))
	if err != nil {
		// Not fatal: without a limit the runtime behaves as it always has.
		log.Error(err, "deriving GOMEMLIMIT from the container's memory limit failed; running without one")
	}
	log.Info("Go memory limit", "bytes", limit, "ratio", ratio, "source", memoryLimitSource())
	return limit
}

func memoryLimitSource() string {
	switch {
	case os.Getenv("GOMEMLIMIT") != "":
		return "GOMEMLIMIT"
	case os.Getenv(envMemoryLimit) != "":
		return envMemoryLimit
	default:
		return "cgroup"
	}
}
