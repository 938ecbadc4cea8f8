package objmeta

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestDecodeAndFromMapAgree(t *testing.T) {
	raw := []byte(`{"apiVersion":"infrastructure.cluster.x-k8s.io/v1beta1","kind":"AzureMachine","metadata":{
		"generateName":"md-","namespace":"team","labels":{"cluster.x-k8s.io/cluster-name":"c1"},
		"annotations":{"a":"b"},"ownerReferences":[{"apiVersion":"cluster.x-k8s.io/v1beta2","kind":"Machine","name":"m-1","controller":true}]}}`)
	m, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if m.DisplayName() != "md-" || m.Namespace != "team" || m.Labels["cluster.x-k8s.io/cluster-name"] != "c1" ||
		len(m.OwnerReferences) != 1 || m.OwnerReferences[0].Controller == nil || !*m.OwnerReferences[0].Controller {
		t.Fatalf("Decode = %+v", m)
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatal(err)
	}
	if got := FromMap(obj); !reflect.DeepEqual(got, m) {
		t.Errorf("FromMap = %+v\nDecode  = %+v", got, m)
	}
	named := Meta{Name: "n", GenerateName: "g-"}
	if named.DisplayName() != "n" {
		t.Error("a name beats generateName")
	}
}

func TestDecodeErrorsAndLeniency(t *testing.T) {
	for _, bad := range []string{"", "{", `{"metadata": 7}`, `{"metadata": {"labels": {"a": 1}}}`} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q): want an error", bad)
		}
	}
	// FromMap never fails: wrong types read as absent.
	m := FromMap(map[string]any{"kind": 7, "metadata": map[string]any{"name": 1, "labels": map[string]any{"a": 1, "b": "c"}, "ownerReferences": []any{"x"}}})
	if m.Kind != "" || m.Name != "" || len(m.Labels) != 1 || m.Labels["b"] != "c" || len(m.OwnerReferences) != 0 {
		t.Errorf("FromMap = %+v", m)
	}
}

// TestFromMapStrictAgreesWithDecode: what Decode refuses, FromMapStrict refuses, and what Decode
// reads, FromMapStrict reads alike.
func TestFromMapStrictAgreesWithDecode(t *testing.T) {
	for _, doc := range []string{
		`{"metadata": 7}`, `{"kind": 7}`, `{"metadata": {"labels": {"a": 1}}}`, `{"metadata": {"name": 1}}`,
		`{"metadata": {"annotations": "x"}}`, `{"metadata": {"ownerReferences": {}}}`,
		`{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n", "labels": {"a": "b"}, "ownerReferences": [{"kind": "X", "name": "y"}]}}`,
		`{}`, `{"metadata": null}`,
	} {
		var obj map[string]any
		if err := json.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		want, wantErr := Decode([]byte(doc))
		got, gotErr := FromMapStrict(obj)
		if (wantErr == nil) != (gotErr == nil) {
			t.Errorf("%s: Decode error %v, FromMapStrict error %v", doc, wantErr, gotErr)
			continue
		}
		if wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: FromMapStrict %+v, Decode %+v", doc, got, want)
		}
	}
}
