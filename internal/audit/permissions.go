package audit

import (
	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Permission is one thing the background audit asks of the apiserver beyond what admission reads
// (clusterinfo.WatchedKinds). test/chart holds the chart's RBAC for audit.enabled to this table.
type Permission struct {
	Group, Resource string
	Verbs           []string
	// ReleaseNamespace is true for what is only needed in the webhook's own namespace (its Lease).
	ReleaseNamespace bool
}

// Permissions lists what the background audit does: list every guarded kind (in pages; it watches
// nothing), keep its Reports, record Events (both APIs: controller-runtime's recorder writes
// events.k8s.io, leader election core events), and hold its Lease.
func Permissions() []Permission {
	var out []Permission
	for _, k := range policy.Kinds() {
		out = append(out, Permission{Group: k.Group, Resource: k.Resource, Verbs: []string{"list"}})
	}
	return append(out,
		Permission{Group: openreportsv1alpha1.GroupName, Resource: "reports", Verbs: []string{"get", "list", "create", "update", "delete"}},
		Permission{Group: "", Resource: "events", Verbs: []string{"create", "patch"}},
		Permission{Group: "events.k8s.io", Resource: "events", Verbs: []string{"create", "patch"}},
		Permission{Group: "coordination.k8s.io", Resource: "leases", Verbs: []string{"get", "create", "update"}, ReleaseNamespace: true},
	)
}
