package capzflavors

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFlavorName(t *testing.T) {
	for base, want := range map[string]string{
		"cluster-template.yaml":                   "default",
		"cluster-template-aks.yaml":               "aks",
		"cluster-template-clusterclass-rke2.yaml": "clusterclass-rke2",
	} {
		if got := flavorName(base); got != want {
			t.Errorf("flavorName(%q) = %q, want %q", base, got, want)
		}
	}
}

func TestFlavorsOfTheModule(t *testing.T) {
	flavors, err := Flavors()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := ModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	// The module directory must be the version go.mod pins, not any CAPZ in the cache.
	if !strings.HasSuffix(dir, "@"+pinnedCAPZVersion(t)) {
		t.Errorf("ModuleDir() = %s, want the version go.mod pins (%s)", dir, pinnedCAPZVersion(t))
	}
	files, err := filepath.Glob(filepath.Join(dir, "templates", "cluster-template*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(flavors) != len(files) || len(files) == 0 {
		t.Fatalf("Flavors() returned %d flavors for %d template files", len(flavors), len(files))
	}
	names := make([]string, len(flavors))
	for i, f := range flavors {
		names[i] = f.Name
		// clusterctl's naming, the other way round: the flavor name leads back to its file.
		want := "cluster-template-" + f.Name + ".yaml"
		if f.Name == "default" {
			want = "cluster-template.yaml"
		}
		if filepath.Base(f.Path) != want || filepath.Dir(f.Path) != filepath.Join(dir, "templates") {
			t.Errorf("flavor %q has path %s, want templates/%s", f.Name, f.Path, want)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("flavors not sorted: %v", names)
	}
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("duplicate flavor names: %v", names)
	}
	for _, must := range []string{"default", "aks", "aks-aso", "clusterclass", "topology", "machinepool", "windows"} {
		if !slices.Contains(names, must) {
			t.Errorf("flavor %q missing from %v", must, names)
		}
	}
}

func TestFlavorsInEmptyDirIsAnError(t *testing.T) {
	if _, err := flavorsIn(t.TempDir()); err == nil {
		t.Fatal("no templates must be an error, or a suite ranging over them would test nothing")
	}
}

func TestLookup(t *testing.T) {
	f, err := Lookup("aks-aso")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(f.Path) != "cluster-template-aks-aso.yaml" {
		t.Errorf("Lookup(aks-aso).Path = %s", f.Path)
	}
	if _, err := Lookup("no-such-flavor"); err == nil || !strings.Contains(err.Error(), "default") {
		t.Errorf("Lookup of an unknown flavor: err = %v, want one listing the flavors", err)
	}
}

// pinnedCAPZVersion reads the CAPZ version from go.mod itself, independently of the go command
// that ModuleDir asks.
func pinnedCAPZVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == CAPZModule {
			return fields[1]
		}
	}
	t.Fatalf("%s not in go.mod", CAPZModule)
	return ""
}
