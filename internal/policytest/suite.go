// Package policytest runs users' policy test suites, as `kyverno test` and `gator verify` do for
// theirs: a file of cases, each an object (inline or from a manifest file) with the decision, the
// rules and the patch the team expects from its EncryptionPolicy. A team gates changes to its policy
// in pull requests by running the suite (`capz-encryption-webhook test -f suite.yaml`).
package policytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Kind is the kind of a suite file; its apiVersion is the policy's (policy.APIVersion).
const Kind = "EncryptionPolicyTest"

// Suite is one test suite file. Paths in it are relative to the file.
type Suite struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	// Name of the suite (the JUnit test suite name); default: the file name.
	Name string `yaml:"name"`
	// Policy is the policy file under test (EncryptionPolicy or Palette pack values); empty: the
	// built-in policy.
	Policy string `yaml:"policy"`
	// SKUCatalog is a VM-size catalog file layered over the embedded one, as check --sku-catalog.
	SKUCatalog string `yaml:"skuCatalog"`
	// Location is the region of objects whose region nothing else names, as check --location.
	Location string `yaml:"location"`
	// Namespace of objects that name none (default "default").
	Namespace string `yaml:"namespace"`
	// Resources are manifest files or directories with the objects' surroundings: Clusters and
	// AzureClusters, which give regions and tell AKS clusters apart, as in check.
	Resources []string `yaml:"resources"`
	Cases     []Case   `yaml:"cases"`

	path string
}

// Case is one object and what the policy must decide on it (as a CREATE, defaults injected).
type Case struct {
	Name string `yaml:"name"`
	// Object is the object inline (a zero Node when absent: yaml.v3 decodes nodes by value); or File
	// names a manifest file holding it, and Select picks it when the file holds several CAPZ objects.
	Object yaml.Node `yaml:"object"`
	File   string    `yaml:"file"`
	Select *Selector `yaml:"select"`
	// NamespaceLabels are the labels of the object's namespace, for defaults' namespaceSelector.
	NamespaceLabels map[string]string `yaml:"namespaceLabels"`
	// Location overrides the suite's location for this case.
	Location string `yaml:"location"`
	Expect   Expect `yaml:"expect"`

	line int
}

// Selector picks an object of a file by kind and/or name.
type Selector struct {
	Kind string `yaml:"kind"`
	Name string `yaml:"name"`
}

// Expect is what the case checks. Allowed is required; each other key is checked only when given.
type Expect struct {
	Allowed *bool `yaml:"allowed"`
	// Violations and Warnings are the exact sets of rule IDs that deny and that warn.
	Violations *[]policy.RuleID `yaml:"violations"`
	Warnings   *[]policy.RuleID `yaml:"warnings"`
	// Patch is the exact JSON patch of defaults, in order ([] for none); a zero Node when not given.
	Patch yaml.Node `yaml:"patch"`
	// Fields maps JSON pointers (/spec/template/spec/securityProfile/encryptionAtHost) to their
	// value in the object after the patch; null means absent.
	Fields map[string]yaml.Node `yaml:"fields"`
}

// Load reads a suite file strictly: an unknown key is an error with its line.
func Load(path string) (*Suite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &Suite{path: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.APIVersion != policy.APIVersion || s.Kind != Kind {
		return nil, fmt.Errorf("%s: apiVersion %q kind %q, want %s %s", path, s.APIVersion, s.Kind, policy.APIVersion, Kind)
	}
	if len(s.Cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	if s.Name == "" {
		s.Name = filepath.Base(path)
	}
	if cases := caseNodes(&root); len(cases) == len(s.Cases) {
		for i := range s.Cases {
			s.Cases[i].line = cases[i].Line
		}
	}
	for i, c := range s.Cases {
		at := fmt.Sprintf("%s:%d", path, c.line)
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("%s: case %d has no name", at, i+1)
		case (c.Object.Kind == 0) == (c.File == ""):
			return nil, fmt.Errorf("%s: case %q: give either object or file", at, c.Name)
		case c.Select != nil && c.File == "":
			return nil, fmt.Errorf("%s: case %q: select needs file", at, c.Name)
		case c.Expect.Allowed == nil:
			return nil, fmt.Errorf("%s: case %q: expect.allowed is required", at, c.Name)
		}
	}
	return s, nil
}

// caseNodes returns the nodes of the cases list, for their lines.
func caseNodes(root *yaml.Node) []*yaml.Node {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "cases" && m.Content[i+1].Kind == yaml.SequenceNode {
			return m.Content[i+1].Content
		}
	}
	return nil
}

// rel resolves a path of the suite relative to the suite file.
func (s *Suite) rel(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(s.path), p)
}
