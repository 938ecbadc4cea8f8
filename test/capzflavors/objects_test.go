package capzflavors

import (
	"strings"
	"testing"
)

func TestObjectsKeepsFileOrderAndSkipsEmptyDocuments(t *testing.T) {
	in := `---
apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata: {name: c}
---
---
# only a comment
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta1
kind: AzureMachineTemplate
metadata: {name: t}
spec: {template: {spec: {vmSize: Standard_D2s_v3}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: m}
`
	objs, err := Objects([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.GetKind()+"/"+o.GetName())
	}
	if want := "Cluster/c AzureMachineTemplate/t ConfigMap/m"; strings.Join(got, " ") != want {
		t.Errorf("Objects() = %v, want %s", got, want)
	}
	if v := objs[1].Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["vmSize"]; v != "Standard_D2s_v3" {
		t.Errorf("content lost: vmSize = %v", v)
	}
}

func TestObjectsRejectsNonObjects(t *testing.T) {
	for name, in := range map[string]string{
		"no kind":       "apiVersion: v1\nmetadata: {name: x}\n",
		"no apiVersion": "kind: ConfigMap\n",
		"a list":        "- a\n- b\n",
		"bad yaml":      "apiVersion: v1\nkind: [\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Objects([]byte("apiVersion: v1\nkind: ConfigMap\n---\n" + in)); err == nil || !strings.Contains(err.Error(), "document 2") {
				t.Errorf("err = %v, want one naming document 2", err)
			}
		})
	}
}

func TestObjectsOfNothing(t *testing.T) {
	objs, err := Objects(nil)
	if err != nil || len(objs) != 0 {
		t.Errorf("Objects(nil) = %v, %v", objs, err)
	}
}
