package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// EvidenceMaxAgeYears is how old a capture of Azure's data may be and still deny. An older "this
// size lacks encryption at host" or "this region does not offer this size" only warns: Azure has
// added the capability to sizes and added sizes to regions since (the embedded catalog's eastus
// listing is from 2020, before the v5 sizes), so old negative evidence is "not at that date", not
// a fact about today. Old positive evidence still counts: Azure does not take the capability away
// from a size, so a default may inject encryption at host on it.
const EvidenceMaxAgeYears = 3

type eahSupport int

const (
	eahSupported eahSupport = iota
	eahUnsupported
	// eahMixed: judged across regions (the object's is unknown or not in the catalog), the size
	// supports EAH in some catalog regions only.
	eahMixed
	// eahNoEvidence: nothing in the catalog says whether the size can do EAH.
	eahNoEvidence
)

// sizeVerdict is what the catalog says about the object's VM size in its region. It is computed
// only when the decision needs it: when the object asks for encryption at host, or a default would
// inject it.
type sizeVerdict struct {
	eah eahSupport
	// eahCeiling caps eah-sku-unsupported: warn when the only negative evidence is stale.
	eahCeiling Action
	// eahMsg says why the size cannot take encryption at host (every value but eahSupported).
	eahMsg string

	// unknown: a complete listing of the region lacks the size (sku-unknown), or the region is
	// unknown and no catalog region lists it.
	unknown        bool
	unknownCeiling Action
	unknownMsg     string

	// gap is set when the object's region is known but its catalog data cannot answer for the size:
	// no layer covers the region, or the region's data is a selection of sizes without this one
	// (catalog-region-missing). It says what is missing.
	gap string
	// basis says which evidence a judgement across regions used, for the catalog-region-missing
	// message (the evidence of a negative verdict is in eahMsg instead).
	basis string

	evidence []Evidence
}

func (e *evaluation) verdictFor(size string) sizeVerdict {
	if e.verdict == nil {
		cat := e.env.Catalog
		if cat == nil {
			cat = skus.NewLayered()
		}
		j := judge{cat: cat, now: e.env.Now}
		v := j.verdict(e.decision.Region, size)
		e.verdict = &v
		e.decision.Evidence = append(e.decision.Evidence, v.evidence...)
	}
	return *e.verdict
}

// judge turns catalog records into verdicts, weighing each by its capture.
type judge struct {
	cat skus.Catalog
	now time.Time
}

func (j judge) verdict(region, size string) sizeVerdict {
	switch {
	case strings.TrimSpace(size) == "":
		msg := "vmSize is empty; set it to an Azure VM size such as Standard_D4s_v3"
		return sizeVerdict{eah: eahNoEvidence, eahMsg: msg, unknown: true, unknownCeiling: ActionDeny, unknownMsg: msg}
	case region == "":
		v := j.acrossRegions(size, "", true)
		if v.eah == eahNoEvidence {
			// Without a region we cannot say the size is not offered where the object will run.
			v.unknown, v.unknownCeiling = true, ActionWarn
			v.unknownMsg = fmt.Sprintf("VM size %q is in no region of the VM-size catalog (%s); check the spelling, or give the object a region (its cluster's AzureCluster.spec.location) so that a regional catalog can answer",
				size, coverage(j.cat))
		}
		return v
	}
	if rec, ok := j.cat.Lookup(region, size); ok {
		return j.inRegion(rec)
	}
	src := j.cat.Source(region)
	switch {
	case !j.cat.HasRegion(region):
		v := j.acrossRegions(size, region, false)
		v.gap = fmt.Sprintf("region %s is not covered by the VM-size catalog (%s)", region, coverage(j.cat))
		return v
	case src.Selection:
		v := j.acrossRegions(size, region, false)
		v.gap = fmt.Sprintf("the VM-size catalog's data for %s is a selection of sizes without %s (%s)", region, size, describeSource(src))
		return v
	}
	// A complete listing of the region lacks the size: a typo, or a size newer than the listing.
	ev := j.sourceEvidence(region, "size-not-listed", src)
	msg := fmt.Sprintf("VM size %q is not offered in region %q (catalog: %s)", size, region, describeSource(src))
	if others := regionsOf(j.cat.LookupAll(size)); len(others) > 0 {
		msg += fmt.Sprintf("; it is offered in %s", strings.Join(others, ", "))
	} else {
		msg += "; check the spelling (e.g. Standard_D4s_v3) against `az vm list-skus --location " + region + " --resource-type virtualMachines`"
	}
	if !ev.Stale {
		return sizeVerdict{eah: eahNoEvidence, eahMsg: msg, unknown: true, unknownCeiling: ActionDeny, unknownMsg: msg, evidence: []Evidence{ev}}
	}
	// The listing predates sizes introduced since: say so, and judge encryption at host from the
	// regions that do list the size.
	v := j.acrossRegions(size, region, false)
	v.unknown, v.unknownCeiling = true, ActionWarn
	v.unknownMsg = msg + fmt.Sprintf("; but that listing is more than %d years old and lacks every size introduced since: if the name is right, ignore this or give a current catalog (live Azure data, or --sku-catalog)", EvidenceMaxAgeYears)
	if v.basis != "" {
		v.unknownMsg += "; encryption at host was judged from the other regions: " + v.basis
	}
	v.evidence = append([]Evidence{ev}, v.evidence...)
	return v
}

// inRegion judges the record of the size in the object's own region.
func (j judge) inRegion(rec skus.SKU) sizeVerdict {
	ev := j.classify(rec, true)
	switch ev.Fact {
	case factUnsupported:
		v := sizeVerdict{eah: eahUnsupported, eahCeiling: staleCeiling(ev), evidence: []Evidence{ev},
			eahMsg: fmt.Sprintf("VM size %s does not support encryption at host in %s (capability %s is not True; %s)",
				rec.Name, rec.Region, skus.CapabilityEncryptionAtHost, describeEvidence(ev))}
		if ev.Stale {
			v.eahMsg += "; Azure may have added the capability since, so this old evidence only warns: a current catalog (live Azure data, or --sku-catalog) decides"
		}
		v.eahMsg += j.suggest(rec)
		return v
	case factRestricted:
		r, _ := rec.SubscriptionRestriction()
		return sizeVerdict{eah: eahUnsupported, eahCeiling: staleCeiling(ev), evidence: []Evidence{ev},
			eahMsg: fmt.Sprintf("VM size %s is restricted for this subscription in %s (%s, %s restriction%s; %s)%s",
				rec.Name, rec.Region, r.ReasonCode, r.Type, zones(r), describeEvidence(ev), j.suggest(rec))}
	}
	// A restriction in a capture made in another subscription (the embedded catalog's) says
	// nothing about the user's subscription: it is not judged.
	return sizeVerdict{eah: eahSupported, evidence: []Evidence{ev}}
}

// Facts a record states about encryption at host (Evidence.Fact).
const (
	factSupported   = "eah-supported"
	factUnsupported = "eah-unsupported"
	factRestricted  = "restricted"
)

// classify says what one record states about encryption at host, with its evidence: the capability
// is missing (factUnsupported), the user's subscription may not use the size there (factRestricted;
// counted only when countRestrictions, and never for a capture made in another subscription), or
// factSupported.
func (j judge) classify(s skus.SKU, countRestrictions bool) Evidence {
	return j.recordEvidence(s, j.fact(s, countRestrictions))
}

func (j judge) fact(s skus.SKU, countRestrictions bool) string {
	if !s.EncryptionAtHostSupported() {
		return factUnsupported
	}
	if _, restricted := s.SubscriptionRestriction(); restricted && countRestrictions && !j.otherSubscription(s) {
		return factRestricted
	}
	return factSupported
}

// staleCeiling caps a negative verdict: evidence older than EvidenceMaxAgeYears only warns.
func staleCeiling(ev Evidence) Action {
	if ev.Stale {
		return ActionWarn
	}
	return ActionDeny
}

// tally counts what the records of a size say across regions.
type tally struct {
	yes, no  int
	freshNo  bool // some negative evidence is current
	evidence []Evidence
}

func (j judge) tally(all []skus.SKU, countRestrictions bool) tally {
	var t tally
	for _, s := range all {
		ev := j.classify(s, countRestrictions)
		t.evidence = append(t.evidence, ev)
		if ev.Fact == factSupported {
			t.yes++
		} else {
			t.no++
			t.freshNo = t.freshNo || !ev.Stale
		}
	}
	return t
}

// support is the verdict of a tally, and the ceiling of eah-sku-unsupported for it.
func (t tally) support() (eahSupport, Action) {
	switch {
	case t.yes+t.no == 0:
		return eahNoEvidence, ""
	case t.no == 0:
		return eahSupported, ""
	case t.yes == 0 && t.freshNo:
		return eahUnsupported, ActionDeny
	case t.yes == 0:
		return eahUnsupported, ActionWarn
	}
	return eahMixed, ActionWarn
}

// acrossRegions judges the size from every catalog region that lists it, for an object whose region
// is unknown (region "") or has no data for the size. Encryption at host is a property of the size,
// so other regions are evidence for this one; a restriction is the subscription's in one region, so
// it counts only when the object could be in that region (region unknown).
func (j judge) acrossRegions(size, region string, countRestrictions bool) sizeVerdict {
	all := j.cat.LookupAll(size)
	if len(all) == 0 {
		return sizeVerdict{eah: eahNoEvidence, basis: "no catalog region lists it",
			eahMsg: fmt.Sprintf("no region of the VM-size catalog lists VM size %s (%s), so whether it supports encryption at host cannot be vouched for", size, coverage(j.cat))}
	}
	t := j.tally(all, countRestrictions)
	var yes, no []string
	for i, ev := range t.evidence {
		desc := all[i].Region + " (" + describeEvidence(ev) + ")"
		if ev.Fact == factSupported {
			yes = append(yes, desc)
		} else {
			no = append(no, desc)
		}
	}
	v := sizeVerdict{evidence: t.evidence}
	v.eah, v.eahCeiling = t.support()
	name := all[0].Name
	where := "the object's region is unknown (label it with " + LabelClusterName + " so that its cluster's region is used)"
	if region != "" {
		where = "region " + region + " itself has no data for it"
	}
	switch v.eah {
	case eahSupported:
		v.basis = "it supports encryption at host in every catalog region that lists it: " + list(yes)
	case eahUnsupported:
		v.eahMsg = fmt.Sprintf("VM size %s supports encryption at host in none of the catalog regions that list it (%s; %s)", name, list(no), where)
		if !t.freshNo {
			v.eahMsg += fmt.Sprintf("; every capture saying so is more than %d years old, and Azure may have added the capability since", EvidenceMaxAgeYears)
		}
	default:
		v.eahMsg = fmt.Sprintf("VM size %s supports encryption at host only in %s, not in %s; %s, so it cannot be vouched for", name, list(yes), list(no), where)
	}
	return v
}

// suggest names up to three sizes of the same family (else any) in the region that do support
// encryption at host and are not restricted: the fix, not just the fault.
func (j judge) suggest(bad skus.SKU) string {
	var same, other []string
	for _, s := range j.cat.SKUs(bad.Region) {
		if j.fact(s, true) != factSupported {
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

// otherSubscription: the record was captured in another subscription than the user's.
func (j judge) otherSubscription(s skus.SKU) bool {
	if s.Capture != nil {
		return s.Capture.OtherSubscription
	}
	return j.cat.Source(s.Region).OtherSubscription
}

// recordEvidence describes a record by its capture, or by its layer's source for the region.
func (j judge) recordEvidence(s skus.SKU, fact string) Evidence {
	src := j.cat.Source(s.Region)
	if s.Capture == nil {
		return j.sourceEvidence(s.Region, fact, src)
	}
	return j.evidence(s.Region, fact, src.Name, s.Capture.Origin, s.Capture.At)
}

func (j judge) sourceEvidence(region, fact string, src skus.SourceInfo) Evidence {
	return j.evidence(region, fact, src.Name, src.Detail, src.AsOf)
}

func (j judge) evidence(region, fact, source, origin string, at time.Time) Evidence {
	ev := Evidence{Region: region, Fact: fact, Source: source, Origin: origin}
	if !at.IsZero() {
		ev.CapturedAt = at.UTC().Format(time.RFC3339)
		ev.Stale = !j.now.IsZero() && at.Before(j.now.AddDate(-EvidenceMaxAgeYears, 0, 0))
	}
	return ev
}

// describeEvidence is the evidence as messages quote it: "embedded: Azure/skewer
// testdata/eastus.json@ab19a3fa578b (MIT), captured 2020-08-25, more than 3 years ago".
func describeEvidence(ev Evidence) string {
	out := ev.Source
	if ev.Origin != "" {
		out += ": " + ev.Origin
	}
	if t, err := time.Parse(time.RFC3339, ev.CapturedAt); err == nil {
		out += ", captured " + t.Format(time.DateOnly)
	}
	if ev.Stale {
		out += fmt.Sprintf(", more than %d years ago", EvidenceMaxAgeYears)
	}
	return out
}

// coverage names the regions the catalog knows, for messages about a region it does not.
func coverage(cat skus.Catalog) string {
	regions := cat.Regions()
	if len(regions) == 0 {
		return "no VM-size catalog is configured"
	}
	return cat.Source("").Name + " catalog of " + strings.Join(regions, ", ")
}

// list joins up to six items and counts the rest, so a live catalog of many regions cannot make a
// message unreadable.
func list(items []string) string {
	const most = 6
	if len(items) <= most {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:most], ", ") + fmt.Sprintf(" and %d more", len(items)-most)
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

// NeedsPremiumIO says whether a storage account type needs a size with PremiumIO (Premium_LRS,
// PremiumV2_LRS, Premium_ZRS): the webhook injects such a type only where the catalog vouches for it.
func NeedsPremiumIO(storageAccountType string) bool {
	return strings.HasPrefix(storageAccountType, "Premium")
}

// premiumIO says whether the VM size can attach Premium SSD disks in the region (PremiumIO=True in
// the catalog); with no region known, in every catalog region that offers the size. why explains a
// false answer.
func premiumIO(cat skus.Catalog, region, size string) (ok bool, why string) {
	switch {
	case strings.TrimSpace(size) == "":
		return false, "the object has no vmSize"
	case cat == nil:
		return false, "no VM-size catalog is configured"
	case region != "":
		sku, found := cat.Lookup(region, size)
		if !found {
			return false, fmt.Sprintf("VM size %q is not in the catalog for %s", size, region)
		}
		if !sku.PremiumIOSupported() {
			return false, fmt.Sprintf("VM size %s cannot attach Premium SSD disks in %s (capability %s is not True)", sku.Name, region, skus.CapabilityPremiumIO)
		}
		return true, ""
	}
	all := cat.LookupAll(size)
	if len(all) == 0 {
		return false, fmt.Sprintf("VM size %q is in no region of the catalog", size)
	}
	var no []string
	for _, s := range all {
		if !s.PremiumIOSupported() {
			no = append(no, s.Region)
		}
	}
	if len(no) > 0 {
		return false, fmt.Sprintf("the region is unknown and VM size %s cannot attach Premium SSD disks in %s", all[0].Name, strings.Join(no, ", "))
	}
	return true, ""
}
