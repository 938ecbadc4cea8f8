package testsupport

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// CAPIModule is the module whose config/ holds CAPI's CRDs; go.mod pins its api module, and the
// CRDs are read from the main module at the same version.
const CAPIModule = "sigs.k8s.io/cluster-api"

// CAPICRDDirs returns the directories of CAPI's CRDs at the version go.mod pins: core (Cluster,
// ClusterClass, MachineDeployment, MachineSet, MachinePool, Machine, ...), the kubeadm bootstrap
// provider (KubeadmConfig, KubeadmConfigTemplate) and the kubeadm control plane
// (KubeadmControlPlane, KubeadmControlPlaneTemplate): what CAPZ's flavors create besides CAPZ's own.
func CAPICRDDirs(repoRoot string) ([]string, error) {
	version, err := ModuleVersion(repoRoot, CAPIModule+"/api")
	if err != nil {
		return nil, err
	}
	capi, err := ModuleDir(repoRoot, CAPIModule, version)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, d := range []string{"core", filepath.Join("bootstrap", "kubeadm"), filepath.Join("controlplane", "kubeadm")} {
		dirs = append(dirs, filepath.Join(capi, d, "config", "crd", "bases"))
	}
	return dirs, nil
}

// FlavorCRDs returns every CRD of the pinned CAPZ module and every CRD of CAPICRDDirs: enough to
// create every object of CAPZ's flavors on a bare kube-apiserver (test/capzflavors says which
// flavors still cannot be, and why).
func FlavorCRDs(repoRoot string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	capz, err := CAPZCRDs(repoRoot)
	if err != nil {
		return nil, err
	}
	dirs, err := CAPICRDDirs(repoRoot)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, d := range dirs {
		m, err := filepath.Glob(filepath.Join(d, "*.yaml"))
		if err != nil || len(m) == 0 {
			return nil, fmt.Errorf("no CRDs under %s", d)
		}
		files = append(files, m...)
	}
	capi, err := CRDFiles(files...)
	if err != nil {
		return nil, err
	}
	return append(capz, capi...), nil
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

// KeepFieldsAcrossVersions makes every object schema of the CRDs in the given groups keep unknown
// fields (x-kubernetes-preserve-unknown-fields), for a bare kube-apiserver that has no conversion
// webhook. CAPI v1.14's CRDs serve v1beta1 and v1beta2 and store v1beta2; without CAPI's conversion
// webhook the apiserver "converts" by relabelling and pruning to the target version's schema, so a
// v1beta1 KubeadmControlPlane from a CAPZ flavor would be stored with spec.machineTemplate: {} (its
// infrastructure reference lost) and a MachineDeployment's reference would lose its apiVersion. In a
// real management cluster CAPI's webhook converts the shape; here the content is kept in the shape it
// was written in, under the other version's label, and the webhook reads both shapes (capiref).
// Validation of the fields each version knows is unchanged.
func KeepFieldsAcrossVersions(crds []*apiextensionsv1.CustomResourceDefinition, groups ...string) {
	for _, crd := range crds {
		if !slices.Contains(groups, crd.Spec.Group) {
			continue
		}
		for i := range crd.Spec.Versions {
			if v := crd.Spec.Versions[i].Schema; v != nil {
				preserveUnknown(v.OpenAPIV3Schema)
			}
		}
	}
}

func preserveUnknown(p *apiextensionsv1.JSONSchemaProps) {
	if p == nil {
		return
	}
	if p.Type == "object" && len(p.Properties) > 0 {
		keep := true
		p.XPreserveUnknownFields = &keep
	}
	for k, c := range p.Properties {
		preserveUnknown(&c)
		p.Properties[k] = c
	}
	if p.Items != nil {
		preserveUnknown(p.Items.Schema)
	}
	if p.AdditionalProperties != nil {
		preserveUnknown(p.AdditionalProperties.Schema)
	}
}
