package celpolicy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// WriteYAML writes the objects as a multi-document YAML stream that kubectl applies, headed by
// comments saying where they come from, what they enforce and what is left to the webhook.
func (r *Result) WriteYAML(w io.Writer) error {
	var b bytes.Buffer
	r.writeSummary(&b, "# ")
	for _, o := range r.Objects() {
		m, err := Applied(o)
		if err != nil {
			return err
		}
		y, err := marshalYAML(m)
		if err != nil {
			return fmt.Errorf("%s %s: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteJSON writes the objects as one v1 List, which kubectl applies too. What is not compiled is
// in Result.NotCompiled; a List has no place for it.
func (r *Result) WriteJSON(w io.Writer) error {
	list := metav1.List{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: []runtime.RawExtension{}}
	for _, o := range r.Objects() {
		m, err := Applied(o)
		if err != nil {
			return err
		}
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		list.Items = append(list.Items, runtime.RawExtension{Raw: raw})
	}
	out, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// marshalYAML writes m with its keys in JSON's order (sorted bytewise). sigs.k8s.io/yaml sorts map
// keys "naturally" (digits by value), an order that is not total for keys such as standard_b4ms,
// standard_b12ms and standard_b1ls, so that the same map came out in different orders.
func marshalYAML(m map[string]any) ([]byte, error) {
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	plain(&doc)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// plain drops the JSON styles (flow collections, double quotes) that parsing JSON left on the nodes,
// so that the encoder writes block YAML and quotes only what needs it.
func plain(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		plain(c)
	}
}

// Applied is o as it is applied: without the empty status the typed objects carry, which belongs
// to the apiserver.
func Applied(o Object) (map[string]any, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.GetObjectKind().GroupVersionKind().Kind, o.GetName(), err)
	}
	delete(m, "status")
	return m, nil
}

// WriteExplain writes, for people, what is compiled into which objects and what is not, and why.
func (r *Result) WriteExplain(w io.Writer) error {
	var b bytes.Buffer
	r.writeSummary(&b, "")
	_, err := w.Write(b.Bytes())
	return err
}

func (r *Result) writeSummary(b *bytes.Buffer, prefix string) {
	line := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		if s == "" {
			b.WriteString(strings.TrimRight(prefix, " ") + "\n")
			return
		}
		b.WriteString(prefix + s + "\n")
	}
	line("Admission policies compiled by `capz-encryption-webhook cel` from policy %s", orNone(r.PolicySource))
	line("and VM-size catalog %s.", orNone(r.CatalogSource))
	line("Objects are labelled %s=%s; a controller owns exactly those.", LabelManagedBy, ManagedBy)
	line("")
	line("Compiled:")
	for _, cv := range r.Compiled {
		what := string(cv.Rule)
		if what == "" {
			what = "injection of the organisation default"
		}
		if cv.Action != "" {
			what += " (" + string(cv.Action) + ")"
		}
		line("  - %s: %s", what, strings.Join(cv.Kinds, ", "))
		if cv.Note != "" {
			line("      %s", cv.Note)
		}
	}
	line("")
	line("Not compiled (only the webhook enforces these):")
	for _, o := range r.NotCompiled {
		line("  - %s", describeOmission(o))
	}
	if len(r.Inactive) > 0 {
		line("")
		line("Off in this policy:")
		for _, o := range r.Inactive {
			line("  - %s", describeOmission(o))
		}
	}
}

func describeOmission(o Omission) string {
	what := string(o.Rule)
	switch {
	case what == "":
		what = o.Scope
	case o.Scope != "":
		what += ", " + o.Scope
	}
	return what + ": " + o.Reason
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
