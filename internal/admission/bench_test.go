package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// noop is the baseline: a controller-runtime webhook that allows everything, on the same TLS stack.
type noop struct{}

func (noop) Handle(context.Context, admission.Request) admission.Response {
	return admission.Allowed("")
}

// serveTLS runs h as controller-runtime serves it (webhook.Admission over HTTPS) and returns a
// function that posts one review and fails the benchmark on a transport error.
func serveTLS(b *testing.B, h admission.Handler, review []byte) func() {
	srv := httptest.NewTLSServer(&webhook.Admission{Handler: h})
	b.Cleanup(srv.Close)
	client := srv.Client()
	return func() {
		resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(review))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}

func reviewBytes(b *testing.B, req admission.Request) []byte {
	out, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  &req.AdmissionRequest,
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkAdmission measures a full admission round trip (TLS, AdmissionReview decode, policy,
// audit line, encode) for both webhooks. The first sub-benchmark is the baseline, a no-op
// controller-runtime webhook on the same TLS stack; the others report their time as a multiple of
// it (x-noop), measured in the same run, so the figure means the same on another machine.
func BenchmarkAdmission(b *testing.B) {
	review := reviewBytes(b, request(admissionv1.Create, "Standard_D2s_v3", false))
	var base float64
	b.Run("noop", func(b *testing.B) {
		post := serveTLS(b, noop{}, review)
		b.ReportAllocs()
		for b.Loop() {
			post()
		}
		base = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	for _, mode := range []Mode{Mutate, Validate} {
		b.Run(string(mode), func(b *testing.B) {
			// The audit line is part of the cost, but not the test's log buffer.
			h, _ := newHandlerWithRegistry(b, mode, eastus, logr.Discard())
			post := serveTLS(b, h, review)
			b.ReportAllocs()
			for b.Loop() {
				post()
			}
			if base > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/base, "x-noop")
			}
		})
	}
}

// BenchmarkAdmissionParallel is the load side: concurrent clients over keep-alive TLS connections
// (GOMAXPROCS goroutines, as during a burst of cluster creations), same baseline and ratio.
func BenchmarkAdmissionParallel(b *testing.B) {
	review := reviewBytes(b, request(admissionv1.Create, "Standard_D2s_v3", false))
	var base float64
	run := func(b *testing.B, h admission.Handler) float64 {
		post := serveTLS(b, h, review)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				post()
			}
		})
		return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	}
	b.Run("noop", func(b *testing.B) { base = run(b, noop{}) })
	for _, mode := range []Mode{Mutate, Validate} {
		b.Run(string(mode), func(b *testing.B) {
			h, _ := newHandlerWithRegistry(b, mode, eastus, logr.Discard())
			if ns := run(b, h); base > 0 {
				b.ReportMetric(ns/base, "x-noop")
			}
		})
	}
}

var _ http.Handler = &webhook.Admission{}
