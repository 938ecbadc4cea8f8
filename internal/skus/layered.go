package skus

import (
	"slices"
	"strings"
)

// Layered answers each region from the first layer that has it: live data over a catalog file over
// the embedded default. Precedence is per region, not per size: a region's data comes whole from
// one source, so a size missing from a newer source is reported missing rather than silently
// answered from an older one that may predate its retirement or a new restriction.
//
// Layered holds no data of its own; it is as safe for concurrent use as its layers.
type Layered struct{ layers []Catalog }

var _ Catalog = (*Layered)(nil)

// NewLayered stacks catalogs, highest precedence first. Nil layers are dropped so callers can pass
// optional sources (no catalog file, live data disabled) without branching.
func NewLayered(layers ...Catalog) *Layered {
	l := &Layered{}
	for _, c := range layers {
		if c != nil {
			l.layers = append(l.layers, c)
		}
	}
	return l
}

func (l *Layered) layerFor(region string) Catalog {
	for _, c := range l.layers {
		if c.HasRegion(region) {
			return c
		}
	}
	return nil
}

func (l *Layered) Lookup(region, size string) (SKU, bool) {
	if c := l.layerFor(region); c != nil {
		return c.Lookup(region, size)
	}
	return SKU{}, false
}

// LookupAll asks, region by region, the layer that answers that region, so it agrees with Lookup.
func (l *Layered) LookupAll(size string) []SKU {
	var out []SKU
	for _, r := range l.Regions() {
		if k, ok := l.Lookup(r, size); ok {
			out = append(out, k)
		}
	}
	return out
}

func (l *Layered) HasRegion(region string) bool { return l.layerFor(region) != nil }

// Regions is the union of the layers' regions, sorted.
func (l *Layered) Regions() []string {
	var out []string
	for _, c := range l.layers {
		out = append(out, c.Regions()...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (l *Layered) SKUs(region string) []SKU {
	if c := l.layerFor(region); c != nil {
		return c.SKUs(region)
	}
	return nil
}

// Source describes the layer that answers region; for "" it names the layers in precedence order
// (e.g. "live+file+embedded"), since no single date describes a mix.
func (l *Layered) Source(region string) SourceInfo {
	if region != "" {
		if c := l.layerFor(region); c != nil {
			return c.Source(region)
		}
		return SourceInfo{Name: "none"}
	}
	var names []string
	for _, c := range l.layers {
		names = append(names, c.Source("").Name)
	}
	return SourceInfo{Name: strings.Join(names, "+")}
}
