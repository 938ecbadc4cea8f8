package audit

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
)

// Event reasons on offending objects.
const (
	ReasonViolation = "EncryptionPolicyViolation"
	ReasonWarning   = "EncryptionPolicyWarning"
	eventAction     = "Audit"
	// maxNote is the events.k8s.io limit on an event's note.
	maxNote = 1024
)

// Events puts a Warning event on every object the audit finds denied or warned. One object gets at
// most one event per run, and the same findings are announced again only after Repeat: the events
// API merges repeats into a series, but an audit every few minutes over a large fleet would still
// be one write per object per run without this limit.
type Events struct {
	Recorder events.EventRecorder
	Repeat   time.Duration
	Now      func() time.Time

	last map[types.UID]sentEvent
}

type sentEvent struct {
	note string
	at   time.Time
}

// Name names the sink in logs.
func (e *Events) Name() string { return "events" }

// Publish emits the run's events.
func (e *Events) Publish(_ context.Context, run *Run) error {
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	if e.last == nil {
		e.last = map[types.UID]sentEvent{}
	}
	seen := map[types.UID]bool{}
	for _, r := range run.Results {
		if r.Decision == nil || r.UID == "" {
			continue
		}
		deny, warn := r.Decision.Violations(), r.Decision.Warnings()
		if len(deny)+len(warn) == 0 {
			continue
		}
		seen[r.UID] = true
		reason, note := ReasonViolation, eventNote(deny, warn)
		if len(deny) == 0 {
			reason = ReasonWarning
		}
		if prev, ok := e.last[r.UID]; ok && prev.note == note && now().Sub(prev.at) < e.Repeat {
			continue
		}
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion(r.APIVersion)
		obj.SetKind(r.Kind)
		obj.SetNamespace(r.Namespace)
		obj.SetName(r.Name)
		obj.SetUID(r.UID)
		e.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, reason, eventAction, "%s", note)
		e.last[r.UID] = sentEvent{note: note, at: now()}
	}
	for uid := range e.last {
		if !seen[uid] {
			delete(e.last, uid)
		}
	}
	return nil
}

// eventNote says which rules the stored object breaks, where, in at most 1024 bytes.
func eventNote(deny, warn []policy.Finding) string {
	var b strings.Builder
	b.WriteString("capz-encryption-webhook audit:")
	for _, f := range append(deny, warn...) {
		fmt.Fprintf(&b, " [%s:%s] %s: %s;", f.Rule, f.Action, f.Field, f.Message)
	}
	s := strings.TrimSuffix(b.String(), ";")
	if len(s) > maxNote {
		s = strings.ToValidUTF8(s[:maxNote-3], "") + "..."
	}
	return s
}
