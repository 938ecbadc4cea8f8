// Package objmeta reads the identity of a Kubernetes object — apiVersion, kind, name, namespace,
// labels, annotations, owners — from its JSON, without decoding the rest. The admission handler, the
// policy and the manifest reader all need it, and must agree on details such as an object that has
// only a generateName.
package objmeta

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Meta is an object's identity.
type Meta struct {
	APIVersion      string
	Kind            string
	Name            string
	GenerateName    string
	Namespace       string
	Labels          map[string]string
	Annotations     map[string]string
	OwnerReferences []OwnerReference
}

// OwnerReference is the part of metav1.OwnerReference that tells who owns an object.
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Controller *bool  `json:"controller,omitempty"`
}

// DisplayName is the name, or the generateName prefix of an object that has no name yet: what
// messages and logs call the object.
func (m Meta) DisplayName() string {
	if m.Name != "" {
		return m.Name
	}
	return m.GenerateName
}

type wire struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string            `json:"name"`
		GenerateName    string            `json:"generateName"`
		Namespace       string            `json:"namespace"`
		Labels          map[string]string `json:"labels"`
		Annotations     map[string]string `json:"annotations"`
		OwnerReferences []OwnerReference  `json:"ownerReferences"`
	} `json:"metadata"`
}

// Decode reads the identity of the object in raw. Fields of the wrong type are an error, as the
// apiserver would make them.
func Decode(raw []byte) (Meta, error) {
	if len(raw) == 0 {
		return Meta{}, errors.New("the request carries no object")
	}
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil {
		return Meta{}, fmt.Errorf("cannot read the object's apiVersion, kind and metadata: %w", err)
	}
	m := w.Metadata
	return Meta{
		APIVersion: w.APIVersion, Kind: w.Kind, Name: m.Name, GenerateName: m.GenerateName, Namespace: m.Namespace,
		Labels: m.Labels, Annotations: m.Annotations, OwnerReferences: m.OwnerReferences,
	}, nil
}

// FromMap reads the identity of an already decoded object, leniently: a field of the wrong type
// reads as absent (the policy reports such fields itself, where they matter).
func FromMap(obj map[string]any) Meta {
	md, _ := obj["metadata"].(map[string]any)
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	strMap := func(k string) map[string]string {
		in, _ := md[k].(map[string]any)
		if in == nil {
			return nil
		}
		out := make(map[string]string, len(in))
		for key, v := range in {
			if s, ok := v.(string); ok {
				out[key] = s
			}
		}
		return out
	}
	m := Meta{
		APIVersion: str(obj, "apiVersion"), Kind: str(obj, "kind"),
		Name: str(md, "name"), GenerateName: str(md, "generateName"), Namespace: str(md, "namespace"),
		Labels: strMap("labels"), Annotations: strMap("annotations"),
	}
	refs, _ := md["ownerReferences"].([]any)
	for _, r := range refs {
		rm, _ := r.(map[string]any)
		if rm == nil {
			continue
		}
		ref := OwnerReference{APIVersion: str(rm, "apiVersion"), Kind: str(rm, "kind"), Name: str(rm, "name")}
		if c, ok := rm["controller"].(bool); ok {
			ref.Controller = &c
		}
		m.OwnerReferences = append(m.OwnerReferences, ref)
	}
	return m
}
