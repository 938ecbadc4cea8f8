// Package skus answers the questions the policy asks about Azure VM sizes: does a size exist in a
// region, can it do encryption at host there, and is it restricted for the subscription. Several
// sources (live Azure, a catalog file, the embedded default) implement the same Catalog interface so
// that the policy never knows, or cares, where the facts came from; it only records the source.
package skus

import (
	"strings"
	"time"
)

// Capability names used by the policy, as Azure spells them in resource-SKU records.
const (
	CapabilityEncryptionAtHost = "EncryptionAtHostSupported"
	ReasonNotAvailableForSub   = "NotAvailableForSubscription"
	RestrictionTypeLocation    = "Location"
	RestrictionTypeZone        = "Zone"
)

// CapabilityPremiumIO says whether a size can attach Premium SSD disks.
const CapabilityPremiumIO = "PremiumIO"

// SKU is one virtual-machine resource-SKU record in one region.
type SKU struct {
	// Name as Azure spells it, e.g. Standard_D4s_v3.
	Name string
	// Region is the normalised (lower-case, no spaces) location the record belongs to.
	Region       string
	Family       string
	Capabilities map[string]string
	Restrictions []Restriction
	// Capture says which capture of Azure's data the record comes from, for sources that merge
	// several (the embedded catalog). Nil for live data and catalog files: their layer's
	// Source(region) describes every record of the region.
	Capture *Capture
}

// Capture is one capture of Azure's resource-SKU data: where it was taken from and when. Decisions
// quote it, so that a verdict based on a years-old capture says so.
type Capture struct {
	// Origin names the capture, e.g. "Azure/skewer testdata/eastus.json@ab19a3fa578b (MIT)".
	Origin string
	// At is when Azure produced the data (for a capture that does not record it, its commit date);
	// zero when unknown.
	At time.Time
	// OtherSubscription is true when the capture was made in a subscription other than the one
	// clusters are created in: its restrictions (NotAvailableForSubscription) describe that
	// subscription, not the user's, and the policy does not judge them.
	OtherSubscription bool
}

// Restriction is one entry of a resource-SKU record's restrictions list.
type Restriction struct {
	Type       string   // Location or Zone
	ReasonCode string   // NotAvailableForSubscription or QuotaId
	Zones      []string // for Zone restrictions, when Azure listed them
}

// Capability returns the named capability, compared case-insensitively as Azure's own tools do.
func (s SKU) Capability(name string) (string, bool) {
	if v, ok := s.Capabilities[name]; ok {
		return v, true
	}
	for k, v := range s.Capabilities {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// EncryptionAtHostSupported reports whether the record carries EncryptionAtHostSupported=True.
// A missing capability means unsupported: Azure only lists it for sizes that have it.
func (s SKU) EncryptionAtHostSupported() bool {
	v, _ := s.Capability(CapabilityEncryptionAtHost)
	return strings.EqualFold(v, "True")
}

// PremiumIOSupported reports whether the record carries PremiumIO=True: only then can the size
// attach Premium SSD (Premium_LRS, Premium_ZRS) disks.
func (s SKU) PremiumIOSupported() bool {
	v, _ := s.Capability(CapabilityPremiumIO)
	return strings.EqualFold(v, "True")
}

// SubscriptionRestriction returns the first NotAvailableForSubscription restriction, if any.
func (s SKU) SubscriptionRestriction() (Restriction, bool) {
	for _, r := range s.Restrictions {
		if strings.EqualFold(r.ReasonCode, ReasonNotAvailableForSub) {
			return r, true
		}
	}
	return Restriction{}, false
}

// SourceInfo says where a region's data came from and how fresh it is. The policy copies it into
// every decision so the audit trail shows what a verdict was based on.
type SourceInfo struct {
	// Name is one of "live", "live-stale", "file", "embedded" (or "none" for an unknown region).
	Name string
	// Detail is free text: a file path, an error that made live data stale, etc.
	Detail string
	// AsOf is when the data was fetched or generated; zero when unknown. For a region whose records
	// come from several captures it is the date of the data that says which sizes the region offers:
	// the complete listing's, or the oldest capture's when there is none.
	AsOf time.Time
	// Selection is true when the source holds only some of the region's sizes, so a size it lacks
	// may still be offered there. Live data and catalog files (`az vm list-skus` output) list every
	// size a region offers: false.
	Selection bool
	// OtherSubscription is true when the region's data was captured in a subscription other than the
	// one clusters are created in (see Capture.OtherSubscription).
	OtherSubscription bool
}

// Catalog is a read-only view of VM-size facts. Implementations must be safe for concurrent use and
// must not do I/O on these calls: the admission path calls them for every request.
type Catalog interface {
	// Lookup returns the record for size in region (both case-insensitive).
	Lookup(region, size string) (SKU, bool)
	// LookupAll returns the records for size in every region the catalog knows, sorted by region.
	LookupAll(size string) []SKU
	// HasRegion reports whether the catalog has any data for region.
	HasRegion(region string) bool
	// Regions lists the regions the catalog knows, sorted.
	Regions() []string
	// SKUs lists the records of one region, sorted by name (to suggest sizes that would work).
	SKUs(region string) []SKU
	// Source describes the data behind region (or the catalog as a whole when region is "").
	Source(region string) SourceInfo
}

// NormalizeRegion lower-cases a region and removes spaces, so "East US" and "eastus" are one key.
func NormalizeRegion(r string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(r), " ", ""))
}
