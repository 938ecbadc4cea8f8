package celpolicy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// WriteYAML writes the objects as a multi-document YAML stream that kubectl applies, headed by
// comments saying where they come from, what they enforce and what is left to the webhook.
func (r *Result) WriteYAML(w io.Writer) error {
	var b bytes.Buffer
	r.writeSummary(&b, "# ")
	for _, o := range r.Objects() {
		m, err := applied(o)
		if err != nil {
			return err
		}
		y, err := yaml.Marshal(m)
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
		m, err := applied(o)
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

// applied is o as it is applied: without the empty status the typed objects carry, which belongs
// to the apiserver.
func applied(o Object) (map[string]any, error) {
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
