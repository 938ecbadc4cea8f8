// Package policycheck refuses a bad policy when it is written, not when a replica next restarts: an
// admission handler for the chart's policy ConfigMap that runs the very parser the webhook loads the
// file with (policy.Parse), so that kubectl shows exactly the error the webhook would log.
//
// Why a webhook rather than a ValidatingAdmissionPolicy: the policy is YAML inside a ConfigMap
// string, and CEL cannot parse YAML; a CEL check could only match patterns, and would drift from
// the parser. The chart registers it with failurePolicy Ignore, so that a webhook that is down can
// never keep anyone from fixing its own policy.
package policycheck

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Key is the ConfigMap key that holds the policy file (the chart mounts it as policy.yaml).
const Key = "policy.yaml"

// LabelVersion is the label the chart puts on the ConfigMap with its appVersion.
const LabelVersion = "app.kubernetes.io/version"

// Handler checks policy ConfigMaps.
type Handler struct {
	// Version of this binary. A ConfigMap labelled for another version is written by an upgrade (or a
	// downgrade) in progress: this replica's parser may not know the new file's keys, and refusing it
	// would fail the upgrade, so it is let through with a warning; the replicas of that version parse
	// it when they load it (and the chart's values schema checked it at install).
	Version string
	Log     logr.Logger
}

var _ admission.Handler = (*Handler)(nil)

// Handle admits the ConfigMap when its policy parses, and refuses it with the parser's error
// otherwise.
func (h *Handler) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != "" || req.Kind.Kind != "ConfigMap" {
		return admission.Allowed("not a ConfigMap")
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(req.Object.Raw, &cm); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("capz-encryption-webhook: decoding the ConfigMap: %w", err))
	}
	log := h.Log.WithValues("uid", req.UID, "user", req.UserInfo.Username, "namespace", req.Namespace, "name", cm.Name)
	if v := cm.Labels[LabelVersion]; v != "" && !sameVersion(v, h.Version) {
		log.Info("policy ConfigMap for another version let through unchecked", "labelled", v, "running", h.Version)
		return admission.Allowed("").WithWarnings(fmt.Sprintf(
			"capz-encryption-webhook %s did not check this policy: it is labelled %s=%s (an upgrade in progress?); the replicas of that version check it when they load it",
			h.Version, LabelVersion, v))
	}
	data, ok := cm.Data[Key]
	if !ok {
		log.Info("policy ConfigMap refused: no policy key")
		return denied(fmt.Sprintf("ConfigMap %s/%s has no key %q: the webhook reads its policy from that key", req.Namespace, cm.Name, Key))
	}
	p, err := policy.Parse(Key, []byte(data))
	if err != nil {
		log.Info("policy ConfigMap refused", "error", err.Error())
		return denied(fmt.Sprintf("ConfigMap %s/%s: the policy in %q does not parse, and the webhook would not load it: %v", req.Namespace, cm.Name, Key, err))
	}
	resp := admission.Allowed("")
	for _, w := range p.Warnings {
		resp.Warnings = append(resp.Warnings, "capz-encryption-webhook policy: "+w)
	}
	return resp
}

func denied(msg string) admission.Response {
	resp := admission.Denied(msg)
	resp.Result.Code = http.StatusUnprocessableEntity
	return resp
}

// sameVersion compares release versions as git tags and chart appVersions spell them (v0.1.0, 0.1.0).
func sameVersion(a, b string) bool {
	return strings.TrimPrefix(a, "v") == strings.TrimPrefix(b, "v")
}
