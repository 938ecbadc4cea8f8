package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

type eahSupport int

const (
	eahSupported eahSupport = iota
	eahUnsupported
	// eahMixed: the region is unknown and the size supports EAH in some catalog regions only.
	eahMixed
)

// sizeVerdict is what the catalog says about the object's VM size in its region.
type sizeVerdict struct {
	known      bool
	unknownMsg string
	eah        eahSupport
	eahMsg     string
}

func (e *evaluation) verdictFor(size string) sizeVerdict {
	if e.verdict == nil {
		v := computeSizeVerdict(e.env.Catalog, e.decision.Region, size)
		e.verdict = &v
	}
	return *e.verdict
}

func computeSizeVerdict(cat skus.Catalog, region, size string) sizeVerdict {
	switch {
	case strings.TrimSpace(size) == "":
		return sizeVerdict{unknownMsg: "vmSize is empty; set it to an Azure VM size such as Standard_D4s_v3"}
	case cat == nil:
		return sizeVerdict{unknownMsg: fmt.Sprintf("no VM-size catalog is configured, so VM size %q cannot be checked", size)}
	case region != "":
		return verdictInRegion(cat, region, size)
	default:
		return verdictAcrossRegions(cat, size)
	}
}

func verdictInRegion(cat skus.Catalog, region, size string) sizeVerdict {
	src := cat.Source(region)
	if !cat.HasRegion(region) {
		return sizeVerdict{unknownMsg: fmt.Sprintf(
			"region %q is not in the VM-size catalog (%s; it knows %s), so VM size %q cannot be checked; give a catalog that covers the region (--sku-catalog, or live Azure data) or set rule %s to warn",
			region, describeSource(cat.Source("")), strings.Join(cat.Regions(), ", "), size, RuleSKUUnknown)}
	}
	sku, ok := cat.Lookup(region, size)
	if !ok {
		msg := fmt.Sprintf("VM size %q is not offered in region %q (catalog: %s)", size, region, describeSource(src))
		if others := regionsOf(cat.LookupAll(size)); len(others) > 0 {
			msg += fmt.Sprintf("; it is offered in %s", strings.Join(others, ", "))
		} else {
			msg += "; check the spelling (e.g. Standard_D4s_v3) against `az vm list-skus --location " + region + " --resource-type virtualMachines`"
		}
		return sizeVerdict{unknownMsg: msg}
	}
	v := sizeVerdict{known: true, eah: eahSupported}
	if !sku.EncryptionAtHostSupported() {
		v.eah = eahUnsupported
		v.eahMsg = fmt.Sprintf("VM size %s does not support encryption at host in %s (capability %s is not True)%s",
			sku.Name, region, skus.CapabilityEncryptionAtHost, suggest(cat, region, sku))
	} else if r, restricted := sku.SubscriptionRestriction(); restricted {
		v.eah = eahUnsupported
		v.eahMsg = fmt.Sprintf("VM size %s is restricted for this subscription in %s (%s, %s restriction%s)%s",
			sku.Name, region, r.ReasonCode, r.Type, zones(r), suggest(cat, region, sku))
	}
	return v
}

func verdictAcrossRegions(cat skus.Catalog, size string) sizeVerdict {
	all := cat.LookupAll(size)
	if len(all) == 0 {
		return sizeVerdict{unknownMsg: fmt.Sprintf("VM size %q is in no region of the VM-size catalog (%s); check the spelling, or give the object a region so that a regional catalog can answer", size, describeSource(cat.Source("")))}
	}
	var yes, no []string
	for _, s := range all {
		_, restricted := s.SubscriptionRestriction()
		if s.EncryptionAtHostSupported() && !restricted {
			yes = append(yes, s.Region)
		} else {
			no = append(no, s.Region)
		}
	}
	v := sizeVerdict{known: true}
	switch {
	case len(no) == 0:
		v.eah = eahSupported
	case len(yes) == 0:
		v.eah = eahUnsupported
		v.eahMsg = fmt.Sprintf("VM size %s supports encryption at host in none of the regions that offer it (%s; region unknown: label the object with %s or annotate it with %s)",
			all[0].Name, strings.Join(no, ", "), LabelClusterName, AnnotationLocation)
	default:
		v.eah = eahMixed
		v.eahMsg = fmt.Sprintf("the region is unknown and VM size %s supports encryption at host only in %s, not in %s; set the region (annotation %s, or the cluster's AzureCluster.spec.location) so it can be checked",
			all[0].Name, strings.Join(yes, ", "), strings.Join(no, ", "), AnnotationLocation)
	}
	return v
}

// suggest names up to three sizes of the same family (else any) in the region that do support
// encryption at host and are not restricted: the fix, not just the fault.
func suggest(cat skus.Catalog, region string, bad skus.SKU) string {
	var same, other []string
	for _, s := range cat.SKUs(region) {
		if _, restricted := s.SubscriptionRestriction(); restricted || !s.EncryptionAtHostSupported() {
			continue
		}
		if strings.EqualFold(s.Family, bad.Family) {
			same = append(same, s.Name)
		} else {
			other = append(other, s.Name)
		}
	}
	pick := slices.Concat(same, other)
	if len(pick) == 0 {
		return ""
	}
	return "; sizes that can, e.g.: " + strings.Join(pick[:min(3, len(pick))], ", ")
}

func regionsOf(ss []skus.SKU) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, s.Region)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func zones(r skus.Restriction) string {
	if len(r.Zones) == 0 {
		return ""
	}
	return " in zones " + strings.Join(r.Zones, ",")
}

func describeSource(s skus.SourceInfo) string {
	out := s.Name
	if s.Detail != "" {
		out += " " + s.Detail
	}
	if !s.AsOf.IsZero() {
		out += " as of " + s.AsOf.UTC().Format("2006-01-02")
	}
	return out
}
