package streamcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/manifest"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/offline"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/report"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport/flavorgen"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/capzflavors"
)

var now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func bytesSource(name string, data []byte) Source {
	return Source{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

// same holds Run on sources to Whole on the same input: the same report (every field of every
// result, in order) or the same error.
func same(t *testing.T, what string, sources []Source, objs []manifest.Object, readErr error, opts offline.Options) Stats {
	t.Helper()
	got, st, gotErr := Run(sources, opts)
	var want any
	wantErr := readErr
	if wantErr == nil {
		want, _, wantErr = Whole(objs, opts)
	}
	if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
		t.Fatalf("%s: streaming error %v, whole-input error %v", what, gotErr, wantErr)
	}
	if gotErr != nil {
		return st
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("%s: streaming report differs from the whole-input one:\nstream %s\nwhole  %s", what, g, w)
	}
	return st
}

// TestStreamingEqualsWholeOnTestdata: the repository's check inputs, as files and directories.
func TestStreamingEqualsWholeOnTestdata(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, paths := range [][]string{
		{filepath.Join(root, "cmd/capz-encryption-webhook/testdata/ci/manifests.yaml")},
		{filepath.Join(root, "cmd/capz-encryption-webhook/testdata/ci/check.yaml")},
		{filepath.Join(root, "config/samples")},
		{filepath.Join(root, "cmd/capz-encryption-webhook/testdata/policytest")},
		{filepath.Join(root, "config/samples"), filepath.Join(root, "cmd/capz-encryption-webhook/testdata/ci/manifests.yaml")},
		{filepath.Join(root, "does-not-exist.yaml")},
	} {
		for _, opts := range []offline.Options{{Now: now}, {Now: now, Location: "eastus", Namespace: "team-a"}} {
			files, err := manifest.ReadFiles(paths, nil)
			in := OpenInputs(paths, nil)
			same(t, filepath.Join(paths...), in.Sources, manifest.Objects(files), err, opts)
			if err := in.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestStreamingStdin reads stdin through its spooled copy.
func TestStreamingStdin(t *testing.T) {
	data, err := os.ReadFile("../../cmd/capz-encryption-webhook/testdata/ci/manifests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	in := OpenInputs([]string{"-"}, bytes.NewReader(data))
	defer in.Close()
	objs, err := manifest.Parse("-", data)
	same(t, "stdin", in.Sources, objs, err, offline.Options{Now: now})
}

// TestStreamingEqualsWholeOnCAPZFlavors: every flavor of the pinned CAPZ module, as rendered, and
// with its documents in reverse order (every referrer after what it binds, every Cluster last).
func TestStreamingEqualsWholeOnCAPZFlavors(t *testing.T) {
	flavors, err := capzflavors.Flavors()
	if err != nil {
		t.Fatal(err)
	}
	heldInOrder := 0
	for _, f := range flavors {
		data, err := capzflavors.Render(f, capzflavors.DefaultVars("eastus"))
		if err != nil {
			t.Fatal(err)
		}
		file, err := manifest.ParseFile(f.Name, data)
		if err != nil {
			t.Fatal(err)
		}
		st := same(t, f.Name, []Source{bytesSource(f.Name, data)}, manifest.Objects([]manifest.File{file}), nil, offline.Options{Now: now})
		heldInOrder += st.HeldBack + st.Redecided
		if st.MaxLiveDocuments > 3*parsers+2 {
			t.Errorf("%s: %d documents held at once", f.Name, st.MaxLiveDocuments)
		}

		var rev bytes.Buffer
		for i := len(file.Documents) - 1; i >= 0; i-- {
			rev.WriteString("---\n")
			rev.Write(file.Documents[i].Raw)
			if r := file.Documents[i].Raw; len(r) > 0 && r[len(r)-1] != '\n' {
				rev.WriteByte('\n')
			}
		}
		rfile, err := manifest.ParseFile(f.Name, rev.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		rst := same(t, f.Name+" reversed", []Source{bytesSource(f.Name, rev.Bytes())}, manifest.Objects([]manifest.File{rfile}), nil, offline.Options{Now: now})
		if rst.Checked > 0 && rst.HeldBack == 0 {
			t.Errorf("%s reversed: nothing held back, though every template comes before its referrer and Cluster", f.Name)
		}
	}
	t.Logf("%d flavors; in their own order %d objects held back or decided again", len(flavors), heldInOrder)
}

const (
	cluster = `apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata: {name: c1}
spec:
  infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta1, kind: AzureCluster, name: c1}
`
	azureCluster = `apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureCluster
metadata: {name: c1}
spec: {location: eastus}
`
	md = `apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata: {name: %s}
spec:
  clusterName: %s
  template:
    spec:
      clusterName: %s
      infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta1, kind: AzureMachineTemplate, name: %s}
`
	amt = `apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureMachineTemplate
metadata: {name: %s%s}
spec:
  template:
    spec:
      vmSize: Standard_D4s_v3
      osDisk: {osType: Linux, diskSizeGB: 128}
`
)

func mdOf(name, clusterName, template string) string {
	return fmt.Sprintf(md, name, clusterName, clusterName, template)
}

func amtOf(name, labels string) string { return fmt.Sprintf(amt, name, labels) }

// TestHeldBackOnlyWhatNeedsLaterObjects: a template is decided at once when everything that settles
// it came before; held back when its Cluster, AzureCluster or referrer comes later; decided again
// when a later referrer changes a settled binding.
func TestHeldBackOnlyWhatNeedsLaterObjects(t *testing.T) {
	for _, c := range []struct {
		name                 string
		docs                 []string
		held, redecided, dec int
	}{
		{"referrer and cluster first", []string{cluster, azureCluster, mdOf("md", "c1", "t"), amtOf("t", "")}, 0, 0, 1},
		{"labelled, cluster first", []string{cluster, azureCluster, amtOf("t", ", labels: {cluster.x-k8s.io/cluster-name: c1}")}, 0, 0, 1},
		{"referrer later", []string{cluster, azureCluster, amtOf("t", ""), mdOf("md", "c1", "t")}, 1, 0, 0},
		{"cluster later", []string{mdOf("md", "c1", "t"), amtOf("t", ""), cluster, azureCluster}, 1, 0, 0},
		{"azurecluster later", []string{cluster, mdOf("md", "c1", "t"), amtOf("t", ""), azureCluster}, 1, 0, 0},
		{"never bound", []string{amtOf("t", "")}, 1, 0, 0},
		{"a later referrer of another cluster", []string{cluster, azureCluster, mdOf("md", "c1", "t"), amtOf("t", ""), mdOf("md-2", "c2", "t")}, 0, 1, 0},
		{"a later duplicate AzureCluster", []string{cluster, azureCluster, mdOf("md", "c1", "t"), amtOf("t", ""), strings.ReplaceAll(azureCluster, "eastus", "westus")}, 0, 1, 0},
		{"two templates, one early", []string{mdOf("md", "c1", "t"), amtOf("t", ""), cluster, azureCluster, mdOf("md-2", "c1", "u"), amtOf("u", "")}, 1, 0, 1},
	} {
		data := []byte(strings.Join(c.docs, "---\n"))
		objs, err := manifest.Parse(c.name, data)
		if err != nil {
			t.Fatal(err)
		}
		st := same(t, c.name, []Source{bytesSource(c.name, data)}, objs, nil, offline.Options{Now: now})
		if st.HeldBack != c.held || st.Redecided != c.redecided || st.Decided-st.Redecided != c.dec {
			t.Errorf("%s: held back %d, decided again %d, decided at once for good %d; want %d, %d, %d",
				c.name, st.HeldBack, st.Redecided, st.Decided-st.Redecided, c.held, c.redecided, c.dec)
		}
	}
}

// TestLargeInputIsStreamed checks 100,000 generated objects: nothing is held back, a bounded
// number of documents is parsed at once, and what is kept for resolution is the Clusters,
// AzureClusters and MachineDeployments (trimmed), not the documents. With every template first,
// exactly the templates are held back, and still only their place in the input is kept.
func TestLargeInputIsStreamed(t *testing.T) {
	const clusters = 100000 / flavorgen.ObjectsPerCluster
	for _, templateFirst := range []bool{false, true} {
		n := clusters
		if templateFirst { // the same path at a fifth of the size: make test stays quick
			n /= 5
		}
		gen := flavorgen.Options{Clusters: n, TemplateFirst: templateFirst}
		src := Source{Name: "gen.yaml", Open: func() (io.ReadCloser, error) { return io.NopCloser(flavorgen.Reader(gen)), nil }}
		rep, st, err := Run([]Source{src}, offline.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		t.Logf("template first %v: %+v; heap in use %.1f MiB (with %d results)", templateFirst, st, float64(ms.HeapInuse)/(1<<20), len(rep.Results))
		wantHeld := 0
		if templateFirst {
			wantHeld = n
		}
		switch {
		case st.Objects != n*flavorgen.ObjectsPerCluster || st.Checked != n || len(rep.Results) != n:
			t.Errorf("template first %v: %d objects, %d checked, %d results; want %d, %d, %d", templateFirst,
				st.Objects, st.Checked, len(rep.Results), n*flavorgen.ObjectsPerCluster, n, n)
		case st.HeldBack != wantHeld || st.Redecided != 0:
			t.Errorf("template first %v: %d held back, %d decided again; want %d, 0", templateFirst, st.HeldBack, st.Redecided, wantHeld)
		case st.MaxLiveDocuments > 3*parsers+2:
			t.Errorf("template first %v: %d documents held at once; want at most %d", templateFirst, st.MaxLiveDocuments, 3*parsers+2)
		case st.Stored != 3*n:
			t.Errorf("template first %v: %d objects kept for resolution; want %d (Clusters, AzureClusters, MachineDeployments)", templateFirst, st.Stored, 3*n)
		}
		if slices.ContainsFunc(rep.Results, func(r report.Result) bool { return r.RegionSource != "cluster" }) {
			t.Errorf("template first %v: a template was not resolved to its cluster's region", templateFirst)
		}
	}
}
