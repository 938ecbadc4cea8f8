// Package policy is the heart of capz-encryption-webhook: given a CAPZ object as it arrived, the
// operation and what is known about its surroundings, it decides whether the object is allowed, which
// rules it hits and which organisation defaults to inject. It is pure: no Kubernetes client, no Azure
// call, no clock. Everything it needs comes in through Request and Environment, so the same code
// serves the admission webhook, the offline `check` command and the tests.
package policy

import (
	"time"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/capiref"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// RuleID is the stable identifier of a rule. IDs appear in messages, audit records and metrics and
// in the policy file, so they never change once released.
type RuleID string

const (
	RuleDESIDMalformed            RuleID = "des-id-malformed"
	RuleEAHSKUUnsupported         RuleID = "eah-sku-unsupported"
	RuleSKUUnknown                RuleID = "sku-unknown"
	RuleAKSTarget                 RuleID = "aks-target"
	RuleADEExtension              RuleID = "ade-extension"
	RuleDESRequired               RuleID = "des-required"
	RuleDESLocationMismatch       RuleID = "des-location-mismatch"
	RuleDESSubscriptionNotAllowed RuleID = "des-subscription-not-allowed"
	RuleDESNotFound               RuleID = "des-not-found"
	RuleDESKeyRotation            RuleID = "des-key-rotation"
	RuleDESEncryptionType         RuleID = "des-encryption-type"
	// RuleCatalogRegionMissing is hit when no VM-size catalog layer covers the object's region (or
	// the region's data is a selection of sizes without the object's): a gap in our data, not a
	// mistake of the user, so it warns unless a site wants nothing unverified.
	RuleCatalogRegionMissing RuleID = "catalog-region-missing"
	// RuleLocationAnnotationIgnored is hit when the object's location annotation names another
	// region than the cluster's (or the AzureMachinePool's own spec.location), which wins.
	RuleLocationAnnotationIgnored RuleID = "location-annotation-ignored"
	// RuleLocationMismatch is hit when an AzureMachinePool's spec.location differs from its
	// cluster's AzureCluster.spec.location.
	RuleLocationMismatch RuleID = "location-mismatch"
	// RuleDefaultNotApplied is hit when an organisation default could not be injected (the size
	// cannot do encryption at host, the OS disk is ephemeral, ...). Its action decides whether that
	// is a warning or a denial.
	RuleDefaultNotApplied RuleID = "default-not-applied"
	// RuleRepave warns that changing encryption settings of an existing object means a full repave.
	RuleRepave RuleID = "encryption-change-repave"
	// RuleDESKeyExpiry is hit when the active Key Vault key of a Disk Encryption Set is expired or
	// disabled (denies new machines), or expires within the policy's keyExpiryWarning and nothing will
	// replace it in time (warns).
	RuleDESKeyExpiry RuleID = "des-key-expiry"
	// RuleCreatedBeforeDefault is hit by the audit of stored objects: an organisation default applies
	// to the object but it lacks what the default would inject (it was created before the default
	// existed, or while the webhook was absent).
	RuleCreatedBeforeDefault RuleID = "created-before-default"
	// Rules on what Azure actually built for a machine (the audit's --azure reads; see ActualVM).
	RuleAzureDiskNotCustomerKey RuleID = "azure-disk-not-customer-key"
	RuleAzureDiskDESMismatch    RuleID = "azure-disk-des-mismatch"
	RuleAzureEAHDisabled        RuleID = "azure-eah-disabled"
)

// Action is what a hit of a rule does to the request.
type Action string

const (
	ActionDeny  Action = "deny"  // refuse the request
	ActionWarn  Action = "warn"  // allow, with an admission warning shown to the client
	ActionAudit Action = "audit" // allow silently; only the audit trail records it
)

// Severity orders actions: deny 2, warn 1, audit (and anything else) 0. Whoever combines actions
// (the stricter of two, a ceiling, a report's worst result) compares these.
func (a Action) Severity() int {
	switch a {
	case ActionDeny:
		return 2
	case ActionWarn:
		return 1
	default:
		return 0
	}
}

// Operation is the admission operation the object arrived with.
type Operation string

const (
	OperationCreate Operation = "CREATE"
	OperationUpdate Operation = "UPDATE"
	OperationDelete Operation = "DELETE"
)

// Stage says which part of admission asks for a decision.
type Stage string

const (
	// StageAdmit is the whole admission chain: inject the defaults (CREATE only), then judge the
	// object as it would be stored. The mutating webhook and `check` use it.
	StageAdmit Stage = ""
	// StageValidate judges the object exactly as received: the validating webhook runs after every
	// mutating webhook, and must not assume that ours ran, succeeded or was left alone by later ones.
	StageValidate Stage = "validate"
	// StageMutate only injects the defaults (CREATE only): the mutating webhook's part. Its findings
	// are those of the defaulting (default-not-applied); the judgement of the result is the
	// validating webhook's, which sees the object after every mutation.
	StageMutate Stage = "mutate"
)

// Request is one object to decide on.
type Request struct {
	Operation Operation
	Stage     Stage
	// Object is the object as it arrived, as JSON. It is never modified.
	Object []byte
	// Decoded, when set, is Object already decoded (DecodeObject); Evaluate takes it over.
	Decoded *Object
	// OldObject is the stored object on UPDATE (JSON), nil otherwise.
	OldObject []byte
	// Namespace of the object, and the labels of that namespace (for defaults' namespace selectors).
	// When the labels are unknown, kubernetes.io/metadata.name=<namespace> is assumed, as the
	// apiserver sets that label on every namespace.
	Namespace       string
	NamespaceLabels map[string]string
	// DryRun is true for server-side dry-run requests. The answer is the same; it only matters for
	// CAPI topology dry-runs, which must pass.
	DryRun bool
}

// LocationCandidate is one place the object's region may come from, as resolved by the caller
// (admission resolves the owning Cluster and the namespace; `check` takes --location).
type LocationCandidate struct {
	Location string
	// Source names where it came from: "cluster", "namespace-annotation", "flag", ...
	Source string
	// Cluster is true for the region of the object's own cluster (AzureCluster.spec.location). It
	// beats the object's location annotation; every other candidate only applies when no cluster
	// region is known.
	Cluster bool
}

// ClusterInfo is what the caller found out about the CAPI Cluster that owns the object.
type ClusterInfo struct {
	// Name of the Cluster; empty when unknown.
	Name string
	// BoundBy says how the object was tied to its cluster: "label" (cluster.x-k8s.io/cluster-name),
	// "spec.clusterName", "MachineDeployment md-0" (whoever references it), "owner MachineSet ms-1";
	// empty when nothing binds it. Decisions record it.
	BoundBy string
	// Class is the ClusterClass that references the object when no Cluster does: a class template,
	// which CAPI's topology controller copies for every Cluster of the class; the copies carry the
	// cluster's label and are judged, and defaulted, in its region.
	Class string
	// Found is true when the Cluster object exists.
	Found bool
	// AKS is true when the Cluster's infrastructure or control plane is a managed (AKS) kind.
	AKS bool
	// InfrastructureKind and ControlPlaneKind are the kinds of the Cluster's refs, for messages.
	InfrastructureKind string
	ControlPlaneKind   string
}

// DESState says what is known about a Disk Encryption Set from Azure.
type DESState int

const (
	DESUnknown  DESState = iota // no data (no live lookup, or the lookup failed)
	DESFound                    // the DES exists; Info is filled
	DESNotFound                 // Azure said 404
)

// DESInfo are the facts of an existing Disk Encryption Set that rules look at.
type DESInfo struct {
	Location                   string
	EncryptionType             string // EncryptionAtRestWithCustomerKey, ConfidentialVmEncryptedWithCustomerKey, ...
	RotationToLatestKeyVersion bool
	AutoKeyRotationError       string
	// Key are the facts of the set's active Key Vault key (activeKey.keyUrl).
	Key KeyInfo
	// Source and AsOf say where the facts came from, for the audit trail.
	Source string
}

// KeyInfo are the facts of a Disk Encryption Set's active Key Vault key that des-key-expiry judges.
// Times are zero when they do not apply.
type KeyInfo struct {
	// URL is the set's activeKey.keyUrl; empty when the set names none.
	URL string
	// Known is true when Key Vault answered; the other fields mean nothing otherwise.
	Known   bool
	Enabled bool
	// Expires is the key version's expiry (attributes.exp); zero: it never expires.
	Expires time.Time
	// NextRotation is when Key Vault's rotation policy for the key next creates a new version (a
	// Rotate lifetime action); zero when the policy has none.
	NextRotation time.Time
	// NewerVersion is true when the key has a newer enabled version than the active one, which the set
	// picks up by itself only with RotationToLatestKeyVersion; NewerExpires is that version's expiry.
	NewerVersion bool
	NewerExpires time.Time
}

// DESCatalog answers lookups of Disk Encryption Sets from data already at hand (a cache). It must not
// do I/O: the caller warms it.
type DESCatalog interface {
	LookupDES(id string) (DESInfo, DESState)
}

// Environment is everything around the object that the policy needs.
type Environment struct {
	// Locations are candidates for the object's region in the caller's order of precedence. The
	// policy takes an AzureMachinePool's own spec.location first, then the cluster's region (the
	// candidate marked Cluster), then the object's location annotation, then the other candidates,
	// then the policy's default location.
	Locations []LocationCandidate
	Cluster   ClusterInfo
	// Catalog answers VM-size questions; nil means no catalog (every size is unknown).
	Catalog skus.Catalog
	// DES answers Disk Encryption Set questions; nil means no live data (rules that need it skip).
	DES DESCatalog
	// Now is the time of the decision: the age of catalog evidence and the expiry of Disk Encryption
	// Set keys (des-key-expiry) are judged against it (the policy reads no clock). Zero means ages are
	// not judged (every capture counts as current) and key expiry is skipped.
	Now time.Time
	// Actual is what Azure built for this machine (its VM or scale-set model and managed disks); only
	// the audit reads it, and nil skips the rules on it.
	Actual *ActualVM
}

// Evidence is one fact of the VM-size catalog that a verdict used, with where it came from, so that
// a decision based on a years-old capture says so.
type Evidence struct {
	Region string `json:"region"`
	// Fact is what the catalog said: eah-supported, eah-unsupported, restricted (for the user's
	// subscription), or size-not-listed (a complete listing of the region lacks the size).
	Fact string `json:"fact"`
	// Source is the layer that answered: live, live-stale, file, embedded.
	Source string `json:"source"`
	// Origin names the capture (repository, path and commit) or the file or subscription.
	Origin string `json:"origin,omitempty"`
	// CapturedAt is when Azure produced the data (RFC 3339), empty when unknown.
	CapturedAt string `json:"capturedAt,omitempty"`
	// Stale is true when the capture is older than EvidenceMaxAgeYears at the time of the decision.
	Stale bool `json:"stale,omitempty"`
}

// ActualVM is what Azure reports for a machine object: the VM of an AzureMachine (with its managed
// disks), or the scale-set model of an AzureMachinePool.
type ActualVM struct {
	// Resource is the ARM ID of the VM or scale set, for messages.
	Resource string
	// ScaleSet is true for a scale-set model, whose disks have no encryption type of their own.
	ScaleSet         bool
	EncryptionAtHost bool
	OSDisk           ActualDisk
	DataDisks        []ActualDisk
}

// ActualDisk is one managed disk as Azure reports it.
type ActualDisk struct {
	// Name is the disk's name (or its ARM ID), for messages.
	Name string
	// Lun identifies a data disk; -1 for the OS disk.
	Lun int32
	// EncryptionType is the disk's encryption.type (EncryptionAtRestWithPlatformKey,
	// EncryptionAtRestWithCustomerKey, EncryptionAtRestWithPlatformAndCustomerKeys), or the confidential
	// disk's securityProfile.securityType when it encrypts with a customer key; empty when unknown
	// (scale-set models).
	EncryptionType string
	// DESID is the Disk Encryption Set the disk is encrypted with (encryption.diskEncryptionSetId, or
	// securityProfile.secureVMDiskEncryptionSetId of a confidential disk); empty for none.
	DESID string
}

// Finding is one hit of one rule.
type Finding struct {
	Rule RuleID `json:"rule"`
	// Action is the effective action (after the policy's warn-only switch and the exemptions for
	// deletions and metadata-only updates).
	Action Action `json:"action"`
	// Field is the JSON path of the offending field, e.g.
	// spec.template.spec.osDisk.managedDisk.diskEncryptionSet.id.
	Field string `json:"field"`
	// Message says what is wrong, where, and how to fix it.
	Message string `json:"message"`
	// Ratcheted is true when the finding was waived on UPDATE because the stored object produced the
	// same finding (its action is then audit).
	Ratcheted bool `json:"ratcheted,omitempty"`
	// key identifies the finding across the old and the new object: the rule and the field, with
	// list items named by identity (a data disk by nameSuffix or lun), not by index.
	key string
}

// Key identifies the finding across versions of an object: the rule and the field, with list items
// named by their identity (a data disk by nameSuffix or lun, an extension by name) instead of their
// index. Ratcheting matches findings by it.
func (f Finding) Key() string { return f.key }

// Decision is the outcome of evaluating one request.
type Decision struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Allowed is false when any finding's action is deny.
	Allowed  bool      `json:"allowed"`
	Findings []Finding `json:"findings"`
	// Patch is the RFC 6902 patch that injects the organisation defaults (CREATE only). It only adds
	// values at the encryption paths and one annotation; it never removes or replaces a field.
	Patch []jsonpatch.Operation `json:"patch"`
	// Injected lists the JSON paths (dotted) the patch fills.
	Injected []string `json:"injected,omitempty"`
	// Region and RegionSource say which region the rules used and where it came from; Region is empty
	// when unknown.
	Region       string `json:"region"`
	RegionSource string `json:"regionSource"`
	// Binding says how the object was tied to a cluster (ClusterInfo.BoundBy), "ClusterClass NAME"
	// for a class template, or "unbound" when nothing references it yet.
	Binding string `json:"binding"`
	// Catalog is the source of the VM-size data used for the region.
	Catalog skus.SourceInfo `json:"catalog"`
	// Evidence lists the catalog facts the VM-size verdicts used (empty when no verdict needed the
	// catalog: nothing asked for or injected encryption at host).
	Evidence []Evidence `json:"evidence,omitempty"`
	// DefaultName is the name of the policy default entry that applied, if any.
	DefaultName string `json:"default,omitempty"`
	// WarnOnly is true when the policy's warn-only switch turned denials into warnings.
	WarnOnly bool `json:"warnOnly,omitempty"`
	// Exempt names why findings were not enforced (deleting, metadata-only update, topology dry-run).
	Exempt string `json:"exempt,omitempty"`
	// MissingDefaults lists the paths (relative to the machine settings) that the organisation default
	// would inject on CREATE but the stored object lacks; only EvaluateStored fills it.
	MissingDefaults []string `json:"missingDefaults,omitempty"`
}

// Violations returns the findings whose action is deny.
func (d *Decision) Violations() []Finding { return d.filter(ActionDeny) }

// Warnings returns the findings whose action is warn.
func (d *Decision) Warnings() []Finding { return d.filter(ActionWarn) }

func (d *Decision) filter(a Action) []Finding {
	var out []Finding
	for _, f := range d.Findings {
		if f.Action == a {
			out = append(out, f)
		}
	}
	return out
}

// Annotations on CAPZ objects that the policy reads or writes.
const (
	// AnnotationLocation names the region of an object whose cluster (and so its region) cannot be
	// found; templates carry no location. It never beats the cluster's region.
	AnnotationLocation = "capz-encryption-webhook.io/location"
	// AnnotationInjected records what the mutation filled, as a comma-separated list of paths.
	AnnotationInjected = "capz-encryption-webhook.io/injected"
	// AnnotationTopologyDryRun is set by CAPI's topology controller on its dry-run requests.
	AnnotationTopologyDryRun = "topology.cluster.x-k8s.io/dry-run"
	// LabelClusterName is CAPI's label that names the owning Cluster.
	LabelClusterName = capiref.LabelClusterName
)
