package celpolicy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// sizeTable is what the catalog says about encryption at host, size by size, for an object whose
// region the apiserver cannot tell (policy.JudgeSizeAnywhere). The verdicts are constants in the
// expressions that need them (a map literal each), not a parameter object: the apiserver converts a
// parameter object into a CEL value on every request (about a millisecond per policy for a ConfigMap
// of 400 sizes, measured with the apiserver's own evaluator), while a constant literal is built once;
// a missing parameter object would switch the checks off; and a policy with a ConfigMap paramKind may
// only be created by whoever may get every ConfigMap in the cluster. A controller refreshes the
// verdicts by applying the policies again.
type sizeTable struct {
	data map[string]string // lower-case size → SizeSupported, SizeUnsupported, SizeDoubtful or SizeMixed
	// mixed lists the sizes whose verdict needs the region, as the catalog spells them.
	mixed []string
	// regionless lists the sizes the webhook refuses with the region unknown, but that some region's
	// own evidence only warns about: compiled as doubtful.
	regionless []string
	desc       string
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
		// The catalog's own lookup decides which records the key reaches, so that the key means what
		// the webhook's lookup of the same spelling means.
		v := policy.JudgeSizeAnywhere(cat, now, key)
		if !v.Listed {
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

// verdicts renders, as a CEL map literal from lower-case size to verdict, the sizes whose verdict is
// one of classes. The literal is a constant: the apiserver builds it once, when it compiles the
// policy (cel.OptOptimize), and looks sizes up by hash.
func (t *sizeTable) verdicts(classes ...string) string {
	var b strings.Builder
	b.WriteString("{")
	first := true
	for _, key := range slices.Sorted(maps.Keys(t.data)) {
		if !slices.Contains(classes, t.data[key]) {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		b.WriteString(str(key) + ": " + str(t.data[key]))
	}
	b.WriteString("}")
	return b.String()
}
