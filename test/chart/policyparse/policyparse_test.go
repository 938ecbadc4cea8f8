// Package policyparse_test feeds the policy file the chart renders to the webhook's own parser: the
// values under `policy:` (and the Palette `cloud:` values) must be the policy file's schema, exactly.
// It is a package of its own so that the other chart tests do not depend on internal/policy compiling.
package policyparse_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/test/chart"
)

func TestRenderedPolicyParses(t *testing.T) {
	helm := os.Getenv(chart.HelmEnv)
	if helm == "" {
		t.Fatalf("%s is not set: run via make test-unit (make helm installs it)", chart.HelmEnv)
	}
	for _, s := range chart.Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			objs, err := chart.Render(chart.Options{Helm: helm, Args: s.Args})
			if err != nil {
				t.Fatal(err)
			}
			var file string
			for _, o := range chart.Find(objs, "ConfigMap") {
				if strings.HasSuffix(o.GetName(), "-policy") {
					var cm corev1.ConfigMap
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cm); err != nil {
						t.Fatal(err)
					}
					file = cm.Data["policy.yaml"]
				}
			}
			if file == "" {
				t.Fatal("no policy file rendered")
			}
			p, err := policy.Parse("policy.yaml", []byte(file))
			if err != nil {
				t.Fatalf("the webhook refuses the rendered policy: %v\n%s", err, file)
			}
			switch s.Name {
			case "policy":
				if !p.WarnOnly || !p.RequireCustomerManagedKeys || len(p.Defaults) != 2 || p.ActionFor("sku-unknown") != "warn" {
					t.Errorf("parsed policy = %+v", p)
				}
			case "palette":
				if len(p.Defaults) != 1 || p.Defaults[0].DiskEncryptionSetID != chart.TestDESID || !p.Defaults[0].EncryptionAtHost {
					t.Errorf("parsed Palette policy = %+v", p)
				}
			case "cel":
				if len(p.Defaults) != 1 || p.Defaults[0].DiskEncryptionSetID != chart.TestDESID || p.Defaults[0].EncryptionAtHost {
					t.Errorf("parsed Palette policy (DES only) = %+v", p)
				}
			default:
				if len(p.Defaults) != 0 || p.WarnOnly {
					t.Errorf("the default values give a policy with defaults or dry run: %+v", p)
				}
			}
		})
	}
}

// TestSchemaNamesEveryRule: the values schema's policy.rules accepts exactly the policy's rule IDs
// (its additionalProperties is false, so a rule missing there could not be configured through the
// chart, and one left over would be accepted by helm and refused by the webhook).
func TestSchemaNamesEveryRule(t *testing.T) {
	dir, err := chart.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Policy struct {
				Properties struct {
					Rules struct {
						Properties map[string]struct {
							Enum []string `json:"enum"`
						} `json:"properties"`
					} `json:"rules"`
				} `json:"properties"`
			} `json:"policy"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	inSchema := schema.Properties.Policy.Properties.Rules.Properties
	var names []string
	for name, p := range inSchema {
		names = append(names, name)
		if !slices.Equal(p.Enum, []string{"deny", "warn", "audit"}) {
			t.Errorf("rule %s: enum %v, want deny, warn, audit", name, p.Enum)
		}
	}
	slices.Sort(names)
	var want []string
	for _, r := range policy.Rules() {
		want = append(want, string(r))
	}
	if !slices.Equal(names, want) {
		t.Errorf("values.schema.json policy.rules names %v, the policy has %v", names, want)
	}
}

// TestSchemaStorageTypesAreThePolicys holds the schema's enum of dataDiskStorageAccountType to the
// parser's list, so that the chart neither refuses a type the webhook takes nor takes one it refuses.
func TestSchemaStorageTypesAreThePolicys(t *testing.T) {
	dir, err := chart.Dir()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Policy struct {
				Properties struct {
					Defaults struct {
						Items struct {
							Properties struct {
								DataDiskStorageAccountType struct {
									Enum []string `json:"enum"`
								} `json:"dataDiskStorageAccountType"`
							} `json:"properties"`
						} `json:"items"`
					} `json:"defaults"`
				} `json:"properties"`
			} `json:"policy"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	got := schema.Properties.Policy.Properties.Defaults.Items.Properties.DataDiskStorageAccountType.Enum
	if !slices.Equal(got, policy.DataDiskStorageTypes) {
		t.Errorf("values.schema.json allows dataDiskStorageAccountType %v, the policy parser %v", got, policy.DataDiskStorageTypes)
	}
}
