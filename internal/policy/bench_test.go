package policy

import "testing"

// BenchmarkEvaluate measures the policy alone on the request path: a template that needs every
// default (the most work: decode, region, catalog, patch) and a compliant one (the common case).
func BenchmarkEvaluate(b *testing.B) {
	p := defaultsPolicy(b, "requireCustomerManagedKeys: true\n")
	env := eastEnv()
	cases := map[string][]byte{
		"needs-defaults": template().set(tpl("dataDisks"), []any{dataDisk(nil), dataDisk(nil)}).json(b),
		"compliant": template().set(tpl("osDisk.managedDisk.diskEncryptionSet.id"), desEast).
			set(tpl("securityProfile.encryptionAtHost"), true).json(b),
	}
	for name, raw := range cases {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Evaluate(p, Request{Operation: OperationCreate, Object: raw}, env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
