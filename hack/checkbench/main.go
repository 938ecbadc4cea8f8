// Command checkbench measures `check` as a user runs it: it generates a flavor-shaped multi-document
// input (internal/testsupport/flavorgen) into a temporary file, runs the built binary on it several
// times, and prints objects per second and peak RSS (the child's rusage) of each run and their
// median. `make bench-check` runs it; it is not part of `make test`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport/flavorgen"
)

func main() {
	bin := flag.String("bin", "bin/capz-encryption-webhook", "the capz-encryption-webhook binary to run")
	objects := flag.Int("objects", 10000, "objects to generate (rounded down to whole clusters of 5 objects)")
	runs := flag.Int("runs", 5, "runs of check")
	output := flag.String("o", "text", "check's output format")
	flag.Parse()
	if err := run(*bin, *objects, *runs, *output); err != nil {
		fmt.Fprintln(os.Stderr, "checkbench:", err)
		os.Exit(1)
	}
}

func run(bin string, objects, runs int, output string) error {
	f, err := os.CreateTemp("", "checkbench-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	clusters := objects / flavorgen.ObjectsPerCluster
	size, err := io.Copy(f, flavorgen.Reader(flavorgen.Options{Clusters: clusters}))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	n := clusters * flavorgen.ObjectsPerCluster
	fmt.Printf("input: %d objects, %.2f MB; %s check -o %s -f %s (%d runs)\n", n, float64(size)/1e6, bin, output, f.Name(), runs)
	var rates, rss []float64
	for i := 0; i < runs; i++ {
		cmd := exec.Command(bin, "check", "-o", output, "-f", f.Name())
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		start := time.Now()
		err := cmd.Run()
		elapsed := time.Since(start)
		var exit *exec.ExitError
		if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 1) { // 1: something denied
			return fmt.Errorf("%s: %w", bin, err)
		}
		ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		maxRSS := 0.0
		if ru != nil {
			maxRSS = float64(ru.Maxrss) / 1024 // KiB on Linux
		}
		rate := float64(n) / elapsed.Seconds()
		rates, rss = append(rates, rate), append(rss, maxRSS)
		fmt.Printf("run %d: %.2fs, %.0f objects/s, peak RSS %.1f MiB\n", i+1, elapsed.Seconds(), rate, maxRSS)
	}
	fmt.Printf("median: %.0f objects/s, peak RSS %.1f MiB\n", median(rates), median(rss))
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
