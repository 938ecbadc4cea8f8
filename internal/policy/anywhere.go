package policy

import (
	"strings"
	"time"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// SizeAnywhere is what the policy concludes about encryption at host on one VM size for someone who
// does not know the object's region: the admission policies that package celpolicy compiles, which
// cannot see the CAPI Cluster. It weighs the same catalog records by the same rules as a decision
// (old evidence, restrictions of other subscriptions, complete listings and selections).
type SizeAnywhere struct {
	// Listed is true when some catalog region lists the size.
	Listed bool
	// Inject is true when a default injects encryption at host on the size with the region unknown:
	// every catalog region that lists it supports it. A decision that knows the region then injects
	// it too, except in a region whose current complete listing lacks the size (sku-unknown denies
	// the object there).
	Inject bool
	// Regionless is the strongest action that eah-sku-unsupported (for a size no region lists:
	// sku-unknown) takes on an object that asks for encryption at host, with its region unknown:
	// "", ActionWarn or ActionDeny, before the policy's own action for the rule caps it.
	Regionless Action
	// Everywhere is the strongest such action that holds wherever the object is: with its region
	// unknown, in each catalog region (listing the size or not), and in a region no catalog layer
	// covers. A region whose complete listing lacks the size counts with sku-unknown's ceiling.
	Everywhere Action
}

// JudgeSizeAnywhere judges size as Evaluate would in every place the object may be, as of now (the
// age of the evidence; zero: no evidence is old).
func JudgeSizeAnywhere(cat skus.Catalog, now time.Time, size string) SizeAnywhere {
	if cat == nil {
		cat = skus.NewLayered()
	}
	if strings.TrimSpace(size) == "" {
		// Evaluate refuses an empty size wherever the object is (sku-unknown).
		return SizeAnywhere{Regionless: ActionDeny, Everywhere: ActionDeny}
	}
	j := judge{cat: cat, now: now}
	all := cat.LookupAll(size)
	support, regionless := j.tally(all, true).support()
	if support == eahNoEvidence {
		regionless = ActionWarn // sku-unknown, which only warns without a region
	}
	out := SizeAnywhere{Listed: len(all) > 0, Inject: support == eahSupported, Regionless: regionless}
	// In a region no layer covers, or whose data is a selection without the size, the other regions
	// are the evidence, restrictions aside (they bind the subscription in their own region only).
	_, elsewhere := j.tally(all, false).support()
	every := weaker(regionless, elsewhere)
	// In a region that lists the size, its own record decides. A region whose complete listing lacks
	// the size is never more lenient than "elsewhere": sku-unknown denies, or (an old listing) warns
	// on top of what the other regions say.
	for _, rec := range all {
		var here Action
		if ev := j.classify(rec, true); ev.Fact != factSupported {
			here = staleCeiling(ev)
		}
		every = weaker(every, here)
	}
	out.Everywhere = every
	return out
}

func weaker(a, b Action) Action {
	if a.Severity() <= b.Severity() {
		return a
	}
	return b
}

func stronger(a, b Action) Action {
	if a.Severity() >= b.Severity() {
		return a
	}
	return b
}
