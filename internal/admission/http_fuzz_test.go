package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/testsupport"
)

// reached records the requests that got past controller-runtime's decoding to our chain.
type reached struct {
	next admission.Handler
	mu   sync.Mutex
	uids []string
}

func (r *reached) Handle(ctx context.Context, req admission.Request) admission.Response {
	r.mu.Lock()
	r.uids = append(r.uids, string(req.UID))
	r.mu.Unlock()
	return r.next.Handle(ctx, req)
}

// httpStack is the serving path as `serve` registers it: the chain (with its limiter) behind
// controller-runtime's webhook.Admission, which reads, limits and decodes the body.
type httpStack struct {
	handler http.Handler
	reached *reached
	logs    *testsupport.LogLines
}

func newHTTPStack(t testing.TB, mode Mode) *httpStack {
	logs := &testsupport.LogLines{}
	r := &reached{next: New(Config{Mode: mode, Policies: testPolicy(t), Resolver: eastus, Catalog: skucatalog.Embedded(),
		Recorder: decisionlog.NewRecorder(logs.Logger()), Metrics: NewMetrics(prometheus.NewRegistry()), Limiter: &Limiter{Max: 4, MaxLarge: 1, LargeBytes: 256 << 10, Wait: 0}})}
	return &httpStack{handler: &webhook.Admission{Handler: r}, reached: r, logs: logs}
}

// answer is what the stack said to one request.
type answer struct {
	status  int
	review  map[string]any
	resp    *admissionv1.AdmissionResponse
	reached bool
	uid     string // the UID the chain saw, when reached
	records int    // audit lines written for this request
}

func (s *httpStack) post(t testing.TB, contentType string, body []byte) answer {
	t.Helper()
	beforeReached, beforeLines := len(s.reached.uids), len(s.logs.Lines())
	req := httptest.NewRequest(http.MethodPost, "/validate", bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	a := answer{status: rec.Code, records: len(s.logs.Lines()) - beforeLines}
	if len(s.reached.uids) > beforeReached {
		a.reached, a.uid = true, s.reached.uids[len(s.reached.uids)-1]
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &a.review)
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err == nil {
		a.resp = review.Response
	}
	return a
}

// wellFormed checks what every answer must be: HTTP 200 with an AdmissionReview holding a response,
// the request's UID when the request reached the chain, and exactly one audit record for such a
// request (none for one controller-runtime refused before decoding it).
func (a answer) wellFormed(t testing.TB) {
	t.Helper()
	if a.status != http.StatusOK || a.resp == nil {
		t.Fatalf("answer: HTTP %d, review %v", a.status, a.review)
	}
	if a.reached && string(a.resp.UID) != a.uid {
		t.Errorf("answer UID %q, request UID %q", a.resp.UID, a.uid)
	}
	want := 0
	if a.reached {
		want = 1
	}
	if a.records != want {
		t.Errorf("%d audit records (reached the chain: %v)", a.records, a.reached)
	}
	if !a.resp.Allowed && (a.resp.Result == nil || a.resp.Result.Message == "") {
		t.Errorf("a refusal without a message: %+v", a.resp)
	}
}

func validReview(t testing.TB, uid string, obj map[string]any) []byte {
	t.Helper()
	b, err := testsupport.Review{UID: uid, Kind: "AzureMachineTemplate", Resource: "azuremachinetemplates", Namespace: "team", Name: "m", Object: obj}.Body()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func amt(spec map[string]any) map[string]any {
	return map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "AzureMachineTemplate",
		"metadata": map[string]any{"name": "m", "namespace": "team"}, "spec": map[string]any{"template": map[string]any{"spec": spec}}}
}

// FuzzServeHTTP: AdmissionReview bytes in, a well-formed answer out — never a panic, the request's
// UID, one audit record per request that reached the chain. Run with `make fuzz`; `make test` runs
// the seeds.
func FuzzServeHTTP(f *testing.F) {
	f.Add(validReview(f, "seed-ok", amt(map[string]any{"vmSize": "Standard_D2s_v3"})))
	f.Add(validReview(f, "seed-deny", amt(map[string]any{"vmSize": "Standard_D2_v3", "securityProfile": map[string]any{"encryptionAtHost": true}})))
	f.Add(validReview(f, "seed-des", amt(map[string]any{"vmSize": "Standard_D2s_v3", "osDisk": map[string]any{"managedDisk": map[string]any{"diskEncryptionSet": map[string]any{"id": "/subscriptions/x"}}}})))
	for _, c := range hostileInputs(f) {
		// The multi-megabyte ones stay in TestHostileInputs: as seeds they would slow every mutation.
		if len(c.body) < 64<<10 {
			f.Add(c.body)
		}
	}
	s := newHTTPStack(f, Validate)
	f.Fuzz(func(t *testing.T, body []byte) {
		s.post(t, "application/json", body).wellFormed(t)
	})
}

type hostile struct {
	name, contentType string
	body              []byte
	// reached: the request gets to the chain (and its audit record); allowed: the answer.
	reached, allowed bool
	code             int32 // the answer's status code, 0 for a decision without one
	want             string
}

func hostileInputs(t testing.TB) []hostile {
	good := validReview(t, "hostile", amt(map[string]any{"vmSize": "Standard_D2s_v3"}))
	replace := func(from, to string) []byte { return bytes.Replace(good, []byte(from), []byte(to), 1) }
	deep := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	tooDeep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	return []hostile{
		{name: "not JSON", body: []byte("this is not JSON"), code: 400},
		{name: "wrong content type", contentType: "application/yaml", body: good, code: 400, want: "contentType"},
		// An empty chunked body (not http.NoBody) decodes as a review without a request.
		{name: "empty body", body: []byte{}, reached: true, allowed: true, want: "not a kind"},
		{name: "truncated", body: good[:len(good)/2], code: 400},
		{name: "over the body limit", body: append(append([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"big","object":{"pad":"`),
			bytes.Repeat([]byte("x"), 7<<20)...), []byte(`"}}}`)...), code: http.StatusRequestEntityTooLarge, want: "too large"},
		{name: "nested beyond the JSON decoder's depth", body: replace(`"spec":{`, `"deep":`+tooDeep+`,"spec":{`), code: 400},
		{name: "deeply nested object", body: replace(`"spec":{`, `"deep":`+deep+`,"spec":{`), reached: true, allowed: true},
		{name: "admission v1beta1", body: replace(`"admission.k8s.io/v1"`, `"admission.k8s.io/v1beta1"`), reached: true, allowed: true},
		{name: "no request", body: []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), reached: true, allowed: true, want: "not a kind"},
		{name: "no uid", body: replace(`"uid":"hostile",`, ``), reached: true, allowed: true},
		{name: "a kind we do not serve", body: replace(`"kind":"AzureMachineTemplate"}`, `"kind":"AzureCluster"}`), reached: true, allowed: true, want: "not a kind"},
		{name: "object that does not decode", body: validReview(t, "bad-meta", map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
			"kind": "AzureMachineTemplate", "metadata": 7, "spec": map[string]any{}}), reached: true, code: 400},
		{name: "spec of the wrong type", body: validReview(t, "bad-spec", map[string]any{"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
			"kind": "AzureMachineTemplate", "metadata": map[string]any{"name": "m"}, "spec": "a string"}), reached: true, code: 403, want: "spec.template.spec is missing"},
		{name: "object not an object", body: replace(`"object":{`, `"object":["not an object"],"x":{`), reached: true, code: 400},
		{name: "no object", body: replace(`"object":{`, `"x":{`), reached: true, code: 400},
	}
}

// TestHostileInputs: each hostile request gets a well-formed answer; what controller-runtime cannot
// decode is refused before it reaches the chain, what it can is decided (or refused as an error) and
// recorded once. An error is never an admission.
func TestHostileInputs(t *testing.T) {
	s := newHTTPStack(t, Validate)
	for _, c := range hostileInputs(t) {
		t.Run(c.name, func(t *testing.T) {
			ct := c.contentType
			if ct == "" {
				ct = "application/json"
			}
			a := s.post(t, ct, c.body)
			a.wellFormed(t)
			if a.reached != c.reached {
				t.Errorf("reached the chain: %v, want %v", a.reached, c.reached)
			}
			if a.resp.Allowed != c.allowed {
				t.Errorf("allowed = %v, want %v: %+v", a.resp.Allowed, c.allowed, a.resp.Result)
			}
			if c.code != 0 && (a.resp.Result == nil || a.resp.Result.Code != c.code) {
				t.Errorf("answer %+v, want code %d", a.resp.Result, c.code)
			}
			if c.want != "" && (a.resp.Result == nil || !strings.Contains(a.resp.Result.Message, c.want)) {
				t.Errorf("answer %+v lacks %q", a.resp.Result, c.want)
			}
		})
	}
	// A v1beta1 review is answered as v1beta1 (the apiserver that sent it reads that version).
	b := bytes.Replace(validReview(t, "beta", amt(map[string]any{"vmSize": "Standard_D2s_v3"})), []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1)
	if a := s.post(t, "application/json", b); a.review["apiVersion"] != "admission.k8s.io/v1beta1" || a.resp.UID != "beta" {
		t.Errorf("v1beta1 answer: %v", a.review)
	}
}
