package admission

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

// gateResolver holds every request in Resolve until the gate opens, so that the test controls how
// many are in flight.
type gateResolver struct {
	entered chan struct{}
	gate    chan struct{}
}

func (g gateResolver) Resolve(context.Context, clusterinfo.Subject) clusterinfo.Result {
	g.entered <- struct{}{}
	<-g.gate
	return clusterinfo.Result(eastus)
}

// TestInFlightLimit: beyond the bound a request waits briefly, then gets an errored answer (a
// rejection whatever the failurePolicy), recorded and counted; large requests have a lane of their
// own and never take a normal request's turn.
func TestInFlightLimit(t *testing.T) {
	g := gateResolver{entered: make(chan struct{}, 10), gate: make(chan struct{})}
	logs := &testsupport.LogLines{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	lim := &Limiter{Max: 2, MaxLarge: 1, LargeBytes: 64 << 10, Wait: 100 * time.Millisecond}
	h := New(Config{Mode: Validate, Policies: testPolicy(t), Resolver: g, Catalog: skucatalog.Embedded(),
		Recorder: decisionlog.NewRecorder(logs.Logger()), Metrics: m, Limiter: lim})
	large := request(admissionv1.Create, "Standard_D2s_v3", false)
	large.Object.Raw = bytes.Replace(large.Object.Raw, []byte(`"namespace":"team"`),
		[]byte(`"namespace":"team","annotations":{"padding":"`+strings.Repeat("x", 100<<10)+`"}`), 1)

	var wg sync.WaitGroup
	answers := make(chan admission.Response, 10)
	send := func(req admission.Request) {
		wg.Add(1)
		go func() { defer wg.Done(); answers <- h.Handle(context.Background(), req) }()
	}
	// One large request in flight: a second large one finds the lane taken and is refused...
	send(large)
	<-g.entered
	if resp := h.Handle(context.Background(), large); resp.Allowed || resp.Result.Code != http.StatusTooManyRequests {
		t.Fatalf("second large request: %+v", resp.Result)
	}
	// ...while a normal one still gets the other slot.
	send(request(admissionv1.Create, "Standard_D2s_v3", false))
	<-g.entered
	// Both slots taken: a third request waits, then is refused.
	start := time.Now()
	resp := h.Handle(context.Background(), request(admissionv1.Create, "Standard_D2s_v3", false))
	if resp.Allowed || resp.Result.Code != http.StatusTooManyRequests || !strings.Contains(resp.Result.Message, "retry") {
		t.Fatalf("request over the bound: %+v", resp.Result)
	}
	if waited := time.Since(start); waited < lim.Wait {
		t.Errorf("refused after %s, before the wait of %s", waited, lim.Wait)
	}
	if resp.AuditAnnotations["decision"] != "error" {
		t.Errorf("audit annotations of the refusal: %v", resp.AuditAnnotations)
	}
	// A request that arrives while slots are full and one frees up within the wait is served.
	go func() { time.Sleep(20 * time.Millisecond); g.gate <- struct{}{} }()
	send(request(admissionv1.Create, "Standard_D2s_v3", false))
	<-g.entered
	close(g.gate)
	wg.Wait()
	close(answers)
	for a := range answers {
		if !a.Allowed {
			t.Errorf("a request that got a slot was refused: %+v", a.Result)
		}
	}
	if v := testutil.ToFloat64(m.overload.WithLabelValues("validate")); v != 2 {
		t.Errorf("overloaded_total = %v, want 2", v)
	}
	if n := len(logs.Lines()); n != 5 {
		t.Errorf("%d audit lines for 5 requests", n)
	}
	// With every slot back, the next request goes through at once.
	if resp := h.Handle(context.Background(), request(admissionv1.Create, "Standard_D2s_v3", false)); !resp.Allowed {
		t.Errorf("after the burst: %+v", resp.Result)
	}
}
