package celpolicy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// sizeTable is what the catalog says about encryption at host, size by size, for an object whose
// region the apiserver cannot tell (policy.JudgeSizeAnywhere). The list is a ConfigMap (the parameter
// object) rather than a literal in the expressions: a full catalog holds hundreds of sizes, ConfigMap
// keys are looked up in constant time, and a controller can refresh the verdicts with the catalog
// (and as captures age) without touching the policies.
type sizeTable struct {
	data map[string]string // lower-case size → SizeSupported, SizeUnsupported, SizeDoubtful or SizeMixed
	// mixed lists the sizes whose verdict needs the region, as the catalog spells them.
	mixed []string
	// regionless lists the sizes the webhook refuses with the region unknown, but that some region's
	// own evidence only warns about: compiled as doubtful.
	regionless []string
	// skipped lists sizes whose name cannot be a ConfigMap key (Azure's names always can).
	skipped []string
	desc    string
}

// buildSizes judges every size of every catalog region as the webhook would wherever the object is.
func buildSizes(cat skus.Catalog, now time.Time) *sizeTable {
	t := &sizeTable{data: map[string]string{}, desc: describeCatalog(cat, now)}
	names := map[string]string{}
	for _, r := range cat.Regions() {
		for _, s := range cat.SKUs(r) {
			key := strings.ToLower(strings.TrimSpace(s.Name))
			if _, seen := names[key]; !seen {
				names[key] = s.Name
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(names)) {
		// The catalog's own lookup decides which records the key reaches, so that the ConfigMap key
		// means what the webhook's lookup of the same spelling means.
		v := policy.JudgeSizeAnywhere(cat, now, key)
		if !v.Listed || len(validation.IsConfigMapKey(key)) > 0 {
			t.skipped = append(t.skipped, names[key])
			continue
		}
		switch {
		case v.Inject:
			t.data[key] = SizeSupported
		case v.Everywhere == policy.ActionDeny:
			t.data[key] = SizeUnsupported
		case v.Everywhere == policy.ActionWarn:
			t.data[key] = SizeDoubtful
			if v.Regionless == policy.ActionDeny {
				t.regionless = append(t.regionless, names[key])
			}
		default:
			t.data[key] = SizeMixed
			t.mixed = append(t.mixed, names[key])
		}
	}
	return t
}

func describeCatalog(cat skus.Catalog, now time.Time) string {
	src := cat.Source("")
	out := src.Name
	if src.Detail != "" {
		out += " " + src.Detail
	}
	if !src.AsOf.IsZero() {
		out += " as of " + src.AsOf.UTC().Format("2006-01-02")
	}
	out += "; regions " + strings.Join(cat.Regions(), ", ")
	if !now.IsZero() {
		out += fmt.Sprintf("; evidence more than %d years older than %s only warns", policy.EvidenceMaxAgeYears, now.UTC().Format(time.DateOnly))
	}
	return out
}

func (c *compiler) paramsConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        ParamsName,
			Namespace:   c.opts.Namespace,
			Labels:      map[string]string{LabelManagedBy: ManagedBy},
			Annotations: map[string]string{AnnotationCatalog: c.sizes.desc},
		},
		Data: c.sizes.data,
	}
}

// ensureParams adds the ConfigMap once.
func (c *compiler) ensureParams() {
	if len(c.res.Params) == 0 {
		c.res.Params = append(c.res.Params, c.paramsConfigMap())
	}
}
