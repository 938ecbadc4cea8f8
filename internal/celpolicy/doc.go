// Package celpolicy compiles the part of an encryption policy (package policy) that needs no outside
// data into Kubernetes admission policies, so that the kube-apiserver enforces it in-process with CEL:
// ValidatingAdmissionPolicies (admissionregistration.k8s.io/v1, Kubernetes 1.30+) for the rules,
// MutatingAdmissionPolicies (v1, Kubernetes 1.36+) for a single region-independent organisation
// default, and their bindings. The VM-size verdicts are constants in the policies that need them.
//
// It is pure, like package policy: no I/O, no clock, and the same policy and catalog always give the
// same objects with the same names, so that a controller can server-side-apply them and own exactly
// what it created (label app.kubernetes.io/managed-by=capz-encryption-webhook, see OwnedSelector).
//
// # Shape of the output
//
// One ValidatingAdmissionPolicy per rule and kind, each with one binding of the same name. Per rule,
// because validationActions (Deny, Warn, Audit) sit on the binding and apply to every validation of
// the bound policy, while the policy file sets an action per rule; changing a rule's action then only
// changes its binding. Per kind, because the machine settings sit at a different path in each kind
// (spec.template.spec, spec, spec.template), and a policy whose expressions name one kind's fields
// would not type-check against another kind's schema (the apiserver reports that in
// status.typeChecking).
//
// Every validation computes the rule's findings as a list of {key, field, msg} on the object and, on
// UPDATE, on the stored object, and denies only the findings whose key the stored object did not
// already have: the same ratcheting as the webhook (a finding is identified by rule and field, list
// items by nameSuffix, lun or name rather than index). matchConditions skip objects being deleted,
// metadata-only updates (spec unchanged) and CAPI topology dry-runs, as the webhook does.
//
// The messages read like the webhook's warnings: "capz-encryption-webhook [rule] field: message".
// The apiserver puts its own prefix in front (ValidatingAdmissionPolicy '...' with binding '...'
// denied request: ...). Where the webhook's message names the wrong segment of a DES ID in detail,
// the CEL message gives the expected form and points at `capz-encryption-webhook check`.
//
// # What CEL cannot see
//
// The apiserver gives an admission policy the object, the old object, the request, the namespace
// object and a parameter object; not the CAPI Cluster the object belongs to (hence not its region,
// nor whether it is an AKS cluster), and not Azure. Result.NotCompiled lists every rule, or part of a
// rule, left to the webhook, with the reason; Result.Inactive lists rules the policy switches off.
//
// # VM sizes
//
// The policies that need them hold a map from each size the catalog lists to what the webhook
// concludes about encryption at host on it without knowing the region, kept only as far as it holds in every region the machine
// may be in (policy.JudgeSizeAnywhere): supported (a default injects it), unsupported (current
// evidence says no everywhere: refused), doubtful (no region supports it, but somewhere the only
// evidence is more than policy.EvidenceMaxAgeYears old: a warning, as the webhook gives there) or
// mixed (the region decides: left to the webhook). Options.Now is the date the age is judged at;
// the verdicts change as captures age, so a controller recompiles them. They are constants rather
// than a parameter object: see sizeTable.
//
// # Where the compiled policies differ from the webhook
//
// Never stricter about VM sizes (a test checks every size in every region): a size the webhook
// refuses in some regions and only warns about in others is warned about; one with mixed support is
// left alone, and encryption at host is not injected on it. Narrower as well (the webhook still
// decides; see NotCompiled): the region rules, sku-unknown, default-not-applied and the repave
// warning; AzureManagedControlPlane patches whose key is written with JSON escapes, or that are not
// valid JSON. The compiled policies record nothing for exempt requests or ratcheted findings, which
// the webhook's audit trail records as audit.
//
// Stricter, where the webhook would know better from the Cluster: machines of AKS clusters are
// judged and defaulted like any other (the webhook injects nothing there, and reports aks-target for
// what the user set); encryption at host is injected on a supported size also in a region whose
// current complete listing lacks the size, where the webhook refuses the object as sku-unknown; and
// a size that is refused everywhere is refused as eah-sku-unsupported where the webhook, in such a
// region, says sku-unknown (which differs only if that rule is set to warn or audit). Data disks
// that are exact duplicates share one index in messages and keys. An object too large for the
// apiserver's CEL cost budget is refused (failurePolicy Fail).
//
// # Kubernetes versions
//
// The ValidatingAdmissionPolicies use only CEL libraries that a 1.30 apiserver accepts in new
// expressions (its compatibility version is 1.29): optional types, the strings extension, the
// Kubernetes lists library (indexOf) and regular expressions. The MutatingAdmissionPolicies need
// 1.36 anyway and also use two-variable comprehensions and the lists extension (sort, distinct).
package celpolicy
