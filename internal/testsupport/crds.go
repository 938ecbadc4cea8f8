package testsupport

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// ModuleVersion returns the version of module that go.mod in repoRoot selects.
func ModuleVersion(repoRoot, module string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// ModuleDir returns the directory of module@version in the module cache, downloading it when it is
// not there yet.
func ModuleDir(repoRoot, module, version string) (string, error) {
	dl := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	dl.Dir = repoRoot
	out, err := dl.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("locating %s@%s: %w", module, version, err)
	}
	if m.Dir == "" {
		return "", fmt.Errorf("locating %s@%s: go mod download names no directory", module, version)
	}
	return m.Dir, nil
}

// CRDFiles reads CustomResourceDefinitions from YAML files, strictly.
func CRDFiles(files ...string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, crd)
	}
	return out, nil
}

// CAPZCRDs returns every CRD of the pinned CAPZ module and CAPI core's CRDs named in capiCore
// (file names under core/config/crd/bases, e.g. "cluster.x-k8s.io_clusters.yaml"), read from the
// module cache: the repository keeps no copies.
func CAPZCRDs(repoRoot string, capiCore ...string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	capzVersion, err := ModuleVersion(repoRoot, "sigs.k8s.io/cluster-api-provider-azure")
	if err != nil {
		return nil, err
	}
	capz, err := ModuleDir(repoRoot, "sigs.k8s.io/cluster-api-provider-azure", capzVersion)
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(capz, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CAPZ CRDs under %s", capz)
	}
	if len(capiCore) > 0 {
		// CAPI's API module does not ship CRDs; the main module at the same version does.
		version, err := ModuleVersion(repoRoot, "sigs.k8s.io/cluster-api/api")
		if err != nil {
			return nil, err
		}
		capi, err := ModuleDir(repoRoot, "sigs.k8s.io/cluster-api", version)
		if err != nil {
			return nil, err
		}
		for _, name := range capiCore {
			files = append(files, filepath.Join(capi, "core", "config", "crd", "bases", name))
		}
	}
	return CRDFiles(files...)
}
