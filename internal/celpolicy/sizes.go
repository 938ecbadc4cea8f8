package celpolicy

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// sizeTable is what the catalog says about encryption at host, size by size, across its regions.
// The list is a ConfigMap (the parameter object) rather than a literal in the expressions: a full
// catalog holds hundreds of sizes, ConfigMap keys are looked up in constant time, and a controller
// can refresh the verdicts with the catalog without touching the policies.
type sizeTable struct {
	data map[string]string // lower-case size → SizeSupported, SizeUnsupported or SizeMixed
	// mixed lists the sizes whose verdict needs the region, as the catalog spells them.
	mixed []string
	// skipped lists sizes whose name cannot be a ConfigMap key (Azure's names always can).
	skipped []string
	desc    string
}

// buildSizes judges every size of every catalog region as policy does when the region is unknown
// (judgeAnyRegion): supported where every region that offers it has EncryptionAtHostSupported=True
// and no NotAvailableForSubscription restriction, unsupported where none has, mixed otherwise.
func buildSizes(cat skus.Catalog) *sizeTable {
	t := &sizeTable{data: map[string]string{}, desc: describeCatalog(cat)}
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
		all := cat.LookupAll(key)
		if len(all) == 0 || len(validation.IsConfigMapKey(key)) > 0 {
			t.skipped = append(t.skipped, names[key])
			continue
		}
		yes, no := 0, 0
		for _, s := range all {
			if _, restricted := s.SubscriptionRestriction(); s.EncryptionAtHostSupported() && !restricted {
				yes++
			} else {
				no++
			}
		}
		switch {
		case no == 0:
			t.data[key] = SizeSupported
		case yes == 0:
			t.data[key] = SizeUnsupported
		default:
			t.data[key] = SizeMixed
			t.mixed = append(t.mixed, names[key])
		}
	}
	return t
}

func describeCatalog(cat skus.Catalog) string {
	src := cat.Source("")
	out := src.Name
	if src.Detail != "" {
		out += " " + src.Detail
	}
	if !src.AsOf.IsZero() {
		out += " as of " + src.AsOf.UTC().Format("2006-01-02")
	}
	return out + "; regions " + strings.Join(cat.Regions(), ", ")
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
