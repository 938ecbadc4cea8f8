// Package webhookserver serves the admission webhooks over TLS with the timeouts a server in the
// apiserver's request path needs. controller-runtime's webhook.DefaultServer builds its http.Server
// internally (ReadHeaderTimeout 32s, no read or write timeout, v0.25) and webhook.Options has no
// hook for it; what the manager does accept is any webhook.Server. So this Server keeps the
// DefaultServer for what it does well — registration, the mux, controller-runtime's webhook metrics
// — and replaces only Start, which serves that same mux with the timeouts below. Start follows
// DefaultServer.Start (certificate watcher, TLS options, graceful shutdown); if controller-runtime
// ever exposes the http.Server, this package should go.
package webhookserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Timeouts of the HTTP server.
type Timeouts struct {
	// ReadHeader bounds the TLS handshake and the request headers.
	ReadHeader time.Duration
	// Read bounds the whole request, body included: a client that trickles its body (slow loris)
	// is cut off, and its memory freed, after this.
	Read time.Duration
	// Write bounds the time from the end of the headers to the end of the response: reading the
	// body, waiting for a slot, deciding, writing.
	Write time.Duration
	// Idle is how long a kept-alive connection may wait for its next request.
	Idle time.Duration
}

// TimeoutsFor derives the server's timeouts from the webhook configurations' timeoutSeconds, so
// that every one of them ends before the apiserver gives up on the call: a slow client is cut off
// while there is still time to answer the requests behind it. The exception is Idle, deliberately
// longer: the apiserver keeps connections to webhooks alive for 90s (Go's http.DefaultTransport,
// which client-go uses), and a server that closes an idle connection first races the apiserver
// reusing it; the apiserver does not retry a POST whose connection was closed under it, so that race
// would be a failed call, refused under failurePolicy Fail.
func TimeoutsFor(webhookTimeout time.Duration) Timeouts {
	return Timeouts{
		ReadHeader: webhookTimeout / 5,
		Read:       webhookTimeout / 2,
		Write:      webhookTimeout - webhookTimeout/10,
		Idle:       120 * time.Second,
	}
}

// Validate says what is wrong with t for a webhook whose calls time out after webhookTimeout.
func (t Timeouts) Validate(webhookTimeout time.Duration) error {
	switch {
	case t.ReadHeader <= 0 || t.Read <= 0 || t.Write <= 0 || t.Idle <= 0:
		return fmt.Errorf("every server timeout must be positive: %+v", t)
	case t.Read >= webhookTimeout || t.Write >= webhookTimeout:
		return fmt.Errorf("the server's read (%s) and write (%s) timeouts must end before the webhook timeout (%s)", t.Read, t.Write, webhookTimeout)
	}
	return nil
}

// Server is a webhook.Server: DefaultServer's registration and mux, served by Start with Timeouts.
type Server struct {
	webhook.Server
	opts     webhook.Options
	timeouts Timeouts
	log      logr.Logger

	mu      sync.Mutex
	started bool
}

var _ webhook.Server = (*Server)(nil)

// New returns a server for opts (Host, Port, CertDir, CertName, KeyName, TLSOpts; ClientCAName is
// not supported) with the given timeouts.
func New(opts webhook.Options, t Timeouts, log logr.Logger) *Server {
	if opts.WebhookMux == nil {
		opts.WebhookMux = http.NewServeMux()
	}
	if opts.Port == 0 {
		opts.Port = webhook.DefaultPort
	}
	if opts.CertName == "" {
		opts.CertName = "tls.crt"
	}
	if opts.KeyName == "" {
		opts.KeyName = "tls.key"
	}
	return &Server{Server: webhook.NewServer(opts), opts: opts, timeouts: t, log: log}
}

// Start serves the registered webhooks until ctx ends, then shuts down gracefully.
func (s *Server) Start(ctx context.Context) error {
	cfg := &tls.Config{NextProtos: []string{"h2"}}
	for _, op := range s.opts.TLSOpts {
		op(cfg)
	}
	if cfg.GetCertificate == nil {
		watcher, err := certwatcher.New(filepath.Join(s.opts.CertDir, s.opts.CertName), filepath.Join(s.opts.CertDir, s.opts.KeyName))
		if err != nil {
			return err
		}
		cfg.GetCertificate = watcher.GetCertificate
		go func() {
			if err := watcher.Start(ctx); err != nil {
				s.log.Error(err, "certificate watcher error")
			}
		}()
	}
	listener, err := tls.Listen("tcp", net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)), cfg)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           s.opts.WebhookMux,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		MaxHeaderBytes:    1 << 20,
		ReadHeaderTimeout: s.timeouts.ReadHeader,
		ReadTimeout:       s.timeouts.Read,
		WriteTimeout:      s.timeouts.Write,
		IdleTimeout:       s.timeouts.Idle,
	}
	s.log.Info("serving webhooks", "host", s.opts.Host, "port", s.opts.Port,
		"readHeaderTimeout", s.timeouts.ReadHeader.String(), "readTimeout", s.timeouts.Read.String(),
		"writeTimeout", s.timeouts.Write.String(), "idleTimeout", s.timeouts.Idle.String())

	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-ctx.Done()
		// The manager bounds the whole shutdown (GracefulShutdownTimeout); this is a backstop.
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			s.log.Error(err, "shutting down the webhook server")
		}
	}()
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	if err := srv.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-closed
	return nil
}

// StartedChecker is healthy once the server accepts TLS connections.
func (s *Server) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if !started {
			return errors.New("webhook server has not been started yet")
		}
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a liveness dial, not a client of the data
		if err != nil {
			return fmt.Errorf("webhook server is not reachable: %w", err)
		}
		return conn.Close()
	}
}
