package yamlpatch

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	"go.yaml.in/yaml/v3"
	"gomodules.xyz/jsonpatch/v2"
	sigsyaml "sigs.k8s.io/yaml"
)

const des = "/subscriptions/6a5e1f0c-3d1b-4c7e-9f3a-2b8d4e6f7a90/resourceGroups/keys/providers/Microsoft.Compute/diskEncryptionSets/des"

func parse(t *testing.T, s string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

// TestApplyKeepsTheRest: the patch the mutation makes, on a document written the way people write
// them (comments, compact sequences, quotes, a placeholder to fill); everything else stays as it was.
func TestApplyKeepsTheRest(t *testing.T) {
	in := `# Workers of the payments cluster.
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureMachineTemplate
metadata:
  name: payments-md-0   # the MachineDeployment's template
  namespace: payments
spec:
  template:
    spec:
      vmSize: "Standard_D4s_v3"
      osDisk:
        osType: Linux
        managedDisk:
          storageAccountType: Premium_LRS
          diskEncryptionSet:
            id: "" # filled by the platform
      dataDisks:
      - nameSuffix: etcd
        diskSizeGB: 64
        managedDisk:
          storageAccountType: Premium_LRS
      sshPublicKey: ""
`
	ops := []jsonpatch.Operation{
		{Operation: "replace", Path: "/spec/template/spec/osDisk/managedDisk/diskEncryptionSet/id", Value: des},
		{Operation: "add", Path: "/spec/template/spec/dataDisks/0/managedDisk/diskEncryptionSet", Value: map[string]any{"id": des}},
		{Operation: "add", Path: "/spec/template/spec/securityProfile", Value: map[string]any{"encryptionAtHost": true}},
		{Operation: "add", Path: "/metadata/annotations", Value: map[string]any{"capz-encryption-webhook.io/injected": "spec.template.spec.osDisk"}},
	}
	want := `# Workers of the payments cluster.
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureMachineTemplate
metadata:
  name: payments-md-0 # the MachineDeployment's template
  namespace: payments
  annotations:
    capz-encryption-webhook.io/injected: spec.template.spec.osDisk
spec:
  template:
    spec:
      vmSize: "Standard_D4s_v3"
      osDisk:
        osType: Linux
        managedDisk:
          storageAccountType: Premium_LRS
          diskEncryptionSet:
            id: ` + des + ` # filled by the platform
      dataDisks:
      - nameSuffix: etcd
        diskSizeGB: 64
        managedDisk:
          storageAccountType: Premium_LRS
          diskEncryptionSet:
            id: ` + des + `
      sshPublicKey: ""
      securityProfile:
        encryptionAtHost: true
`
	got := applyAndMarshal(t, in, ops)
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestIndentStyles: the indentation is taken from the document (4 spaces, sequences indented under
// their key), and flow mappings stay flow.
func TestIndentStyles(t *testing.T) {
	in := `kind: AzureMachine
spec:
    vmSize: Standard_D4s_v3
    dataDisks:
        - nameSuffix: a
          managedDisk: {storageAccountType: Premium_LRS}
`
	ops := []jsonpatch.Operation{{Operation: "add", Path: "/spec/dataDisks/0/managedDisk/diskEncryptionSet", Value: map[string]any{"id": des}}}
	want := `kind: AzureMachine
spec:
    vmSize: Standard_D4s_v3
    dataDisks:
        - nameSuffix: a
          managedDisk: {storageAccountType: Premium_LRS, diskEncryptionSet: {id: ` + des + `}}
`
	if got := applyAndMarshal(t, in, ops); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// applyAndMarshal patches in and checks the result against the same patch applied to the JSON form
// by a JSON patch library: the node edit must mean exactly what the patch means.
func applyAndMarshal(t *testing.T, in string, ops []jsonpatch.Operation) string {
	t.Helper()
	doc := parse(t, in)
	if err := Apply(doc, ops); err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	js, err := sigsyaml.YAMLToJSON([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(ops)
	p, err := jsonpatchv5.DecodePatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, err := p.Apply(js)
	if err != nil {
		t.Fatal(err)
	}
	gotJSON, err := sigsyaml.YAMLToJSON(out)
	if err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, out)
	}
	var g, w any
	_ = json.Unmarshal(gotJSON, &g)
	_ = json.Unmarshal(wantJSON, &w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("the YAML edit differs from the JSON patch:\n yaml %s\n json %s", gotJSON, wantJSON)
	}
	return string(out)
}

func TestApplyErrors(t *testing.T) {
	for _, c := range []struct {
		op   jsonpatch.Operation
		want string
	}{
		{jsonpatch.Operation{Operation: "remove", Path: "/spec"}, "unsupported"},
		{jsonpatch.Operation{Operation: "add", Path: "/spec/missing/x", Value: 1}, "no /spec/missing"},
		{jsonpatch.Operation{Operation: "replace", Path: "/spec/nope", Value: 1}, "no such key"},
		{jsonpatch.Operation{Operation: "add", Path: "/spec/list/5", Value: 1}, "out of range"},
		{jsonpatch.Operation{Operation: "add", Path: "spec", Value: 1}, "not a JSON pointer"},
		{jsonpatch.Operation{Operation: "add", Path: "/spec/name/x", Value: 1}, "not a mapping or a sequence"},
	} {
		err := Apply(parse(t, "spec: {name: a, list: [1]}\n"), []jsonpatch.Operation{c.op})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.op, err, c.want)
		}
	}
	// Escaped keys, an append and an insert.
	doc := parse(t, "metadata:\n  annotations:\n    a/b: x\nlist: [1, 3]\n")
	if err := Apply(doc, []jsonpatch.Operation{
		{Operation: "replace", Path: "/metadata/annotations/a~1b", Value: "z"},
		{Operation: "add", Path: "/list/-", Value: 4},
		{Operation: "add", Path: "/list/1", Value: 2},
	}); err != nil {
		t.Fatal(err)
	}
	out, _ := Marshal(doc)
	if want := "metadata:\n  annotations:\n    a/b: z\nlist: [1, 2, 3, 4]\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}
