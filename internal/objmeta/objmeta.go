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

// FromMapStrict reads the identity of an already decoded object as Decode reads it from JSON: a
// field of the wrong type (metadata that is not an object, a label that is not a string) is an
// error, as the apiserver would make it.
func FromMapStrict(obj map[string]any) (Meta, error) {
	if err := checkTypes(obj); err != nil {
		return Meta{}, fmt.Errorf("cannot read the object's apiVersion, kind and metadata: %w", err)
	}
	return FromMap(obj), nil
}

func checkTypes(obj map[string]any) error {
	for _, k := range []string{"apiVersion", "kind"} {
		if v, ok := obj[k]; ok && v != nil {
			if _, isString := v.(string); !isString {
				return fmt.Errorf("%s is not a string", k)
			}
		}
	}
	raw, ok := obj["metadata"]
	if !ok || raw == nil {
		return nil
	}
	md, isMap := raw.(map[string]any)
	if !isMap {
		return errors.New("metadata is not an object")
	}
	for _, k := range []string{"name", "generateName", "namespace"} {
		if v, ok := md[k]; ok && v != nil {
			if _, isString := v.(string); !isString {
				return fmt.Errorf("metadata.%s is not a string", k)
			}
		}
	}
	for _, k := range []string{"labels", "annotations"} {
		v, ok := md[k]
		if !ok || v == nil {
			continue
		}
		m, isMap := v.(map[string]any)
		if !isMap {
			return fmt.Errorf("metadata.%s is not an object", k)
		}
		for key, val := range m {
			if _, isString := val.(string); !isString && val != nil {
				return fmt.Errorf("metadata.%s[%q] is not a string", k, key)
			}
		}
	}
	if v, ok := md["ownerReferences"]; ok && v != nil {
		if _, isList := v.([]any); !isList {
			return errors.New("metadata.ownerReferences is not a list")
		}
	}
	return nil
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
