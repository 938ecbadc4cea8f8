// Package capzflavors gives tests the cluster templates ("flavors") that ship with the CAPZ module
// this project pins, rendered the way `clusterctl generate cluster` renders them, so that a
// regression suite can run the webhook and `check` on what users actually apply.
//
// Nothing here is copied from CAPZ: the templates are read from the Go module cache at test time,
// so bumping sigs.k8s.io/cluster-api-provider-azure in go.mod changes the flavors under test.
package capzflavors

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

// CAPZModule is the module whose templates/ directory holds the flavors.
const CAPZModule = "sigs.k8s.io/cluster-api-provider-azure"

// Flavor is one templates/cluster-template*.yaml file of the pinned CAPZ module.
type Flavor struct {
	// Name is what `clusterctl generate cluster --flavor` takes: the part of the file name between
	// "cluster-template-" and ".yaml", or "default" for cluster-template.yaml (clusterctl's
	// "no --flavor").
	Name string
	// Path is the absolute path of the template in the module cache.
	Path string
}

// moduleDir is resolved once per test binary: the go command costs a process start, and the
// answer cannot change while the binary runs.
var moduleDir = sync.OnceValues(func() (string, error) {
	// "": the go command runs in the working directory, inside this repository.
	v, err := testsupport.ModuleVersion("", CAPZModule)
	if err != nil {
		return "", err
	}
	return testsupport.ModuleDir("", CAPZModule, v)
})

// ModuleDir returns the directory of the CAPZ module at the version go.mod selects, downloading it
// into the module cache if it is not there yet. It runs the go command, so it must be called from
// inside this repository (as `go test` does).
func ModuleDir() (string, error) { return moduleDir() }

// Flavors lists every templates/cluster-template*.yaml of the pinned CAPZ module, sorted by name.
func Flavors() ([]Flavor, error) {
	dir, err := ModuleDir()
	if err != nil {
		return nil, err
	}
	return flavorsIn(filepath.Join(dir, "templates"))
}

func flavorsIn(dir string) ([]Flavor, error) {
	files, err := filepath.Glob(filepath.Join(dir, "cluster-template*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		// An empty list would let a suite that ranges over it pass without testing anything.
		return nil, fmt.Errorf("no cluster-template*.yaml in %s", dir)
	}
	flavors := make([]Flavor, 0, len(files))
	for _, f := range files {
		flavors = append(flavors, Flavor{Name: flavorName(filepath.Base(f)), Path: f})
	}
	sort.Slice(flavors, func(i, j int) bool { return flavors[i].Name < flavors[j].Name })
	return flavors, nil
}

// flavorName inverts clusterctl's SimpleProcessor.GetTemplateName ("cluster-template" +
// "-"+flavor + ".yaml"); "default" stands for the empty flavor.
func flavorName(base string) string {
	name := strings.TrimSuffix(strings.TrimPrefix(base, "cluster-template"), ".yaml")
	if name == "" {
		return "default"
	}
	return strings.TrimPrefix(name, "-")
}

// Lookup returns the flavor of that name, or an error listing the names that exist.
func Lookup(name string) (Flavor, error) {
	all, err := Flavors()
	if err != nil {
		return Flavor{}, err
	}
	names := make([]string, 0, len(all))
	for _, f := range all {
		if f.Name == name {
			return f, nil
		}
		names = append(names, f.Name)
	}
	return Flavor{}, fmt.Errorf("no CAPZ flavor %q; there are: %s", name, strings.Join(names, ", "))
}

// Raw returns the template as it is in the module, before any variable is substituted.
func (f Flavor) Raw() ([]byte, error) { return os.ReadFile(f.Path) }
