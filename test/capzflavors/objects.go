package capzflavors

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	apiyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Objects splits multi-document YAML into objects, in file order. Empty documents (a "---" with
// nothing after it) are skipped, as kubectl and clusterctl skip them; a document that is not an
// object with apiVersion and kind is an error naming its position, since nothing could apply it.
// Whole numbers come out as int64, as from any client-go decoder, so unstructured's typed
// accessors (NestedInt64, ...) work on them.
func Objects(rendered []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	err := eachDocument(rendered, func(b []byte) error {
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := utiljson.Unmarshal(j, &m); err != nil {
			return err
		}
		if m == nil {
			return nil
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return fmt.Errorf("not a Kubernetes object (apiVersion %q, kind %q)", u.GetAPIVersion(), u.GetKind())
		}
		objs = append(objs, u)
		return nil
	})
	return objs, err
}

// eachDocument calls fn with every YAML document; errors name its 1-based position. It uses the reader
// clusterctl (util/yaml.ToUnstructured) and kubectl use, so documents are cut where they cut them.
func eachDocument(data []byte, fn func(b []byte) error) error {
	reader := apiyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for doc := 1; ; doc++ {
		b, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil {
			err = fn(b)
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", doc, err)
		}
	}
}
