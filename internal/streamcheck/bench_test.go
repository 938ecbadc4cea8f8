package streamcheck

import (
	"io"
	"testing"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/offline"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport/flavorgen"
)

// BenchmarkRun checks the 10,000-object flavor-shaped input (make bench-check runs the binary on
// it, for peak RSS as well).
func BenchmarkRun(b *testing.B) {
	gen := flavorgen.Options{Clusters: 10000 / flavorgen.ObjectsPerCluster}
	src := Source{Name: "gen.yaml", Open: func() (io.ReadCloser, error) { return io.NopCloser(flavorgen.Reader(gen)), nil }}
	for b.Loop() {
		if _, _, err := Run([]Source{src}, offline.Options{Now: time.Unix(1.8e9, 0)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*10000)/b.Elapsed().Seconds(), "objects/s")
}
