package webhookserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/admission"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

const webhookTimeout = 10 * time.Second

type eastus struct{}

func (eastus) Resolve(context.Context, clusterinfo.Subject) clusterinfo.Result {
	return clusterinfo.Result{Locations: []policy.LocationCandidate{{Location: "eastus", Source: "cluster"}}}
}

type builtin struct{}

func (builtin) Get() *policy.Policy { return policy.DefaultPolicy() }

// serve starts the server as `serve` wires it — the admission chain with its limiter behind
// controller-runtime's webhook.Admission, on this package's server — and returns its address.
func serve(t *testing.T, pki *testsupport.CA, timeouts Timeouts) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	srv := New(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: pki.Dir}, timeouts, logr.Discard())
	m := admission.NewMetrics(prometheus.NewRegistry())
	lim := &admission.Limiter{Max: 32, MaxLarge: 2, LargeBytes: 256 << 10, Wait: webhookTimeout / 10}
	srv.Register("/validate", &webhook.Admission{Handler: admission.New(admission.Config{
		Mode: admission.Validate, Policies: builtin{}, Resolver: eastus{}, Catalog: skucatalog.Embedded(),
		Recorder: decisionlog.NewRecorder(logr.Discard()), Metrics: m, Limiter: lim,
	})})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if srv.StartedChecker()(nil) == nil {
			return addr
		}
		if i > 100 {
			t.Fatal("server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func machine(name string, padding int) map[string]any {
	meta := map[string]any{"name": name, "namespace": "team"}
	if padding > 0 {
		meta["annotations"] = map[string]any{"padding": strings.Repeat("x", padding)}
	}
	return map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachineTemplate", "metadata": meta,
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"vmSize": "Standard_D2s_v3",
			"osDisk": map[string]any{"osType": "Linux", "managedDisk": map[string]any{"storageAccountType": "Premium_LRS"}}}}}}
}

func body(t *testing.T, r testsupport.Review) []byte {
	t.Helper()
	b, err := r.Body()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOversizedAndSlowRequestsDoNotStarveNormalOnes is the load test of the serving path. While
// clients trickle headers and bodies (slow loris) and others keep posting UPDATE reviews of nearly
// 7 MiB (controller-runtime's body limit), normal reviews must all be decided, each within the
// webhook timeout; the slow connections must be cut by the server's timeouts. It asserts no speed
// beyond that generous bound and logs what it saw.
func TestOversizedAndSlowRequestsDoNotStarveNormalOnes(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	pki, err := testsupport.NewCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	timeouts := TimeoutsFor(webhookTimeout)
	addr := serve(t, pki, timeouts)
	url := "https://" + addr + "/validate"
	const loadFor = 6 * time.Second
	stop := time.Now().Add(loadFor)
	var wg sync.WaitGroup

	// Slow loris: headers trickled a byte at a time, or headers then a body trickled.
	const slowHeaders, slowBodies = 16, 16
	cut := make(chan time.Duration, slowHeaders+slowBodies)
	loris := func(prefix []byte, trickle bool) {
		defer wg.Done()
		conn, err := tls.Dial("tcp", addr, pki.ClientTLS())
		if err != nil {
			t.Errorf("slow client dial: %v", err)
			return
		}
		defer conn.Close()
		start := time.Now()
		if !trickle {
			_, _ = conn.Write(prefix)
		}
		for i := 0; time.Since(start) < 3*webhookTimeout; i++ {
			b := []byte{'x'}
			if trickle && i < len(prefix) {
				b = prefix[i : i+1]
			}
			if _, err := conn.Write(b); err != nil {
				cut <- time.Since(start)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		cut <- -1
	}
	header := fmt.Appendf(nil, "POST /validate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 7000000\r\n\r\n{", addr)
	for range slowHeaders {
		wg.Add(1)
		go loris(header, true)
	}
	for range slowBodies {
		wg.Add(1)
		go loris(header, false)
	}

	// Oversized: UPDATE reviews whose object and old object are ~3.4 MiB each, back to back.
	huge := body(t, testsupport.Review{UID: "huge", Operation: "UPDATE", Kind: "AzureMachineTemplate", Resource: "azuremachinetemplates",
		Namespace: "team", Name: "huge", Object: machine("huge", 3400<<10), OldObject: machine("huge", 3400<<10)})
	if len(huge) < 6800<<10 || len(huge) > 7<<20 {
		t.Fatalf("oversized review is %d bytes", len(huge))
	}
	client := &http.Client{Timeout: 3 * webhookTimeout, Transport: &http.Transport{TLSClientConfig: pki.ClientTLS(), MaxIdleConnsPerHost: 64}}
	var hugeAnswered, hugeRefused atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				resp, err := client.Post(url, "application/json", bytes.NewReader(huge))
				if err != nil {
					continue
				}
				out, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if bytes.Contains(out, []byte(`"code":429`)) {
					hugeRefused.Add(1)
				} else {
					hugeAnswered.Add(1)
				}
			}
		}()
	}

	// Heap, sampled while the load runs.
	var peak atomic.Uint64
	sampling := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-sampling:
				return
			case <-time.After(50 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()

	// Normal requests: every one must be decided (not refused, not failed) within the webhook timeout.
	time.Sleep(500 * time.Millisecond) // let the slow and oversized clients take their places first
	var mu sync.Mutex
	var latencies []time.Duration
	var failures []string
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				r := testsupport.Review{UID: fmt.Sprintf("normal-%d-%d", w, i), Kind: "AzureMachineTemplate", Resource: "azuremachinetemplates",
					Namespace: "team", Name: "m", Object: machine("m", 0)}
				start := time.Now()
				resp, err := r.Post(client, url)
				took := time.Since(start)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case string(resp.UID) != r.UID || !resp.Allowed:
					failures = append(failures, fmt.Sprintf("%s: allowed=%v %v", resp.UID, resp.Allowed, resp.Result))
				case took > webhookTimeout:
					failures = append(failures, fmt.Sprintf("%s took %s, beyond the webhook timeout", r.UID, took))
				}
				latencies = append(latencies, took)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(sampling)
	close(cut)

	if len(failures) > 0 {
		t.Errorf("%d of %d normal requests failed; first: %s", len(failures), len(latencies), failures[0])
	}
	if len(latencies) < 50 {
		t.Errorf("only %d normal requests completed in %s", len(latencies), loadFor)
	}
	var cuts []time.Duration
	for d := range cut {
		if d < 0 {
			t.Errorf("a slow client kept its connection for %s", 3*webhookTimeout)
			continue
		}
		cuts = append(cuts, d)
	}
	slices.Sort(cuts)
	slices.Sort(latencies)
	if len(cuts) > 0 && cuts[len(cuts)-1] > webhookTimeout {
		t.Errorf("slow clients were cut after up to %s, beyond the webhook timeout", cuts[len(cuts)-1])
	}
	if hugeAnswered.Load() == 0 {
		t.Error("no oversized review was answered: the large lane must serve them one after the other")
	}
	if len(latencies) == 0 || len(cuts) == 0 {
		return
	}
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	t.Logf("normal: %d requests, p50 %s, p99 %s, max %s; oversized (%.1f MiB): %d answered, %d refused; slow clients: %d cut after %s..%s; peak heap in use %d MiB (test process, client included)",
		len(latencies), pct(0.5), pct(0.99), latencies[len(latencies)-1], float64(len(huge))/(1<<20), hugeAnswered.Load(), hugeRefused.Load(),
		len(cuts), cuts[0].Round(time.Millisecond), cuts[len(cuts)-1].Round(time.Millisecond), peak.Load()>>20)
}

// TestTimeoutsEndBeforeTheWebhookTimeout: for every timeoutSeconds the chart allows, the server cuts a
// slow client before the apiserver gives up on the call, and keeps idle connections longer than the
// apiserver does.
func TestTimeoutsEndBeforeTheWebhookTimeout(t *testing.T) {
	for s := 1; s <= 30; s++ {
		wt := time.Duration(s) * time.Second
		to := TimeoutsFor(wt)
		if err := to.Validate(wt); err != nil {
			t.Errorf("timeoutSeconds %d: %v", s, err)
		}
		if to.ReadHeader >= to.Read || to.Read >= to.Write || to.Idle <= 90*time.Second {
			t.Errorf("timeoutSeconds %d: %+v", s, to)
		}
	}
	if err := (Timeouts{ReadHeader: time.Second, Read: 10 * time.Second, Write: time.Second, Idle: time.Minute}).Validate(10 * time.Second); err == nil {
		t.Error("a read timeout as long as the webhook timeout was accepted")
	}
}
