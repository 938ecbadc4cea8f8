package celpolicy

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apiserver/pkg/cel/environment"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/pkg/skus"
)

const (
	sub      = "6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90"
	otherSub = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
	desOS    = "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des-os"
	desData  = "/subscriptions/" + sub + "/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des-data"
)

// fullPolicy turns on every rule that can be compiled: customer-managed keys required, an allow
// list of subscriptions, and one default for every region and namespace.
const fullPolicy = `apiVersion: policy.capz-encryption-webhook.io/v1alpha1
kind: EncryptionPolicy
requireCustomerManagedKeys: true
allowedDESSubscriptions: [` + sub + `]
defaults:
  - name: everywhere
    diskEncryptionSetID: ` + desOS + `
    dataDiskEncryptionSetID: ` + desData + `
    encryptionAtHost: true
`

func mustParse(t testing.TB, name, doc string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(name, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustCompile(t testing.TB, p *policy.Policy, cat skus.Catalog) *Result {
	t.Helper()
	res, err := Compile(p, cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Every expression compiles where the apiserver compiles it: as a new expression at the oldest
// compatibility version the policy kind exists at, at this library's default, and as a stored
// expression (what runs).
func TestExpressionsCompile(t *testing.T) {
	res := mustCompile(t, mustParse(t, "full.yaml", fullPolicy), skus.Embedded())
	if len(res.ValidatingPolicies) == 0 || len(res.MutatingPolicies) == 0 {
		t.Fatalf("nothing compiled: %d validating, %d mutating", len(res.ValidatingPolicies), len(res.MutatingPolicies))
	}
	for _, p := range res.ValidatingPolicies {
		for _, v := range vapVersions {
			compileVAP(t, p, v, environment.NewExpressions)
		}
		compileVAP(t, p, environment.DefaultCompatibilityVersion(), environment.StoredExpressions)
	}
	for _, p := range res.MutatingPolicies {
		for _, v := range mapVersions {
			compileMAP(t, p, v, environment.NewExpressions)
		}
		compileMAP(t, p, environment.DefaultCompatibilityVersion(), environment.StoredExpressions)
	}
}

// The versions above mean something: one minor earlier, the features the expressions rely on are
// missing (optional types arrived in 1.28; two-variable comprehensions in 1.32).
func TestExpressionsNeedTheirVersions(t *testing.T) {
	res := mustCompile(t, mustParse(t, "full.yaml", fullPolicy), skus.Embedded())
	if _, err := buildVAP(res.ValidatingPolicies[0], version.MajorMinor(1, 27), environment.NewExpressions); err == nil {
		t.Errorf("%s compiles at 1.27, which has no optional types", res.ValidatingPolicies[0].Name)
	}
	for _, p := range res.MutatingPolicies {
		if strings.Contains(p.Name, "inject-des") {
			if _, err := buildMAP(p, version.MajorMinor(1, 31), environment.NewExpressions); err == nil {
				t.Errorf("%s compiles at 1.31, which has no two-variable comprehensions", p.Name)
			}
		}
	}
}
