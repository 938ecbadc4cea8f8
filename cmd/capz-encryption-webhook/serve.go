package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/admission"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/catalogfile"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/decisionlog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policycheck"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policyfile"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skucatalog"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/version"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/webhookserver"
)

type serveOptions struct {
	kubeconfig      string
	certDir         string
	webhookHost     string
	webhookPort     int
	metricsAddr     string
	metricsSecure   bool
	metricsCertDir  string
	probeAddr       string
	pprofAddr       string
	policyFile      string
	policyInterval  time.Duration
	onBadPolicy     string
	policyLastGood  string
	skuCatalog      string
	enableHTTP2     bool
	logLevel        string
	shutdownTimeout time.Duration
	shutdownDelay   time.Duration
	webhookTimeout  time.Duration
	maxInFlight     int
	maxInFlightBig  int
	largeRequest    int
	memoryRatio     float64
	liveTimeout     time.Duration
	azure           azureOptions
	audit           backgroundAuditOptions
	cel             celSyncOptions
}

func newServeCmd() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the validating and mutating admission webhook",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(ctrl.SetupSignalHandler())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
	f.StringVar(&o.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key; reloaded on change")
	f.StringVar(&o.webhookHost, "webhook-host", "", "address the webhook server binds (default all)")
	f.IntVar(&o.webhookPort, "webhook-port", 9443, "webhook server port")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "metrics address (\"0\" disables)")
	f.BoolVar(&o.metricsSecure, "metrics-secure", true, "serve metrics over HTTPS to clients whose bearer token may get /metrics (TokenReview and SubjectAccessReview, as kubebuilder does); false: plain HTTP to anyone")
	f.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for the metrics server; empty or missing files: a self-signed certificate")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	f.StringVar(&o.pprofAddr, "pprof-bind-address", "", "address of Go's /debug/pprof endpoints, for profiling (empty or \"0\": off)")
	f.StringVar(&o.policyFile, "policy", "", "policy file (EncryptionPolicy or Palette pack values), hot-reloaded; default: built-in policy")
	f.DurationVar(&o.policyInterval, "policy-reload-interval", 5*time.Second, "how often the policy file is checked for changes")
	f.StringVar(&o.onBadPolicy, "on-bad-policy", "warn-only", "what a start with a policy file that does not parse does: warn-only (serve the last good copy from --policy-last-good, else the built-in policy with every deny turned into a warning; metric capz_encryption_webhook_policy_stale is 1) or exit (exit code 2)")
	f.StringVar(&o.policyLastGood, "policy-last-good", "", "file where the last policy that parsed is kept, for a restart that finds a bad file (put it on a volume that outlives the container); empty keeps none")
	f.StringVar(&o.skuCatalog, "sku-catalog", "", "VM-size catalog file (the JSON of az vm list-skus --all -o json), layered over the embedded catalog; reloaded when it changes (checked every --policy-reload-interval)")
	f.BoolVar(&o.enableHTTP2, "enable-http2", false, "serve HTTP/2 (off by default: CVE-2023-44487 and CVE-2023-39325)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info or error")
	// Delay + timeout stay under the chart's terminationGracePeriodSeconds (30s), so the kubelet's
	// SIGKILL never cuts a request short.
	f.DurationVar(&o.shutdownDelay, "shutdown-delay", 5*time.Second, "after SIGTERM, time the webhook keeps serving (readiness failing) before it stops accepting connections")
	f.DurationVar(&o.shutdownTimeout, "graceful-shutdown-timeout", 20*time.Second, "after --shutdown-delay, time in-flight requests get to finish")
	f.DurationVar(&o.webhookTimeout, "webhook-timeout", 10*time.Second, "the webhook configurations' timeoutSeconds: the server's read and write timeouts, and the longest wait for a free slot, are derived from it so that they end first")
	f.IntVar(&o.maxInFlight, "max-in-flight", 32, "admission requests decided at once; more wait briefly, then are refused with a message to retry")
	f.IntVar(&o.maxInFlightBig, "max-in-flight-large", 2, "of those, requests larger than --large-request-bytes decided at once")
	f.IntVar(&o.largeRequest, "large-request-bytes", 256<<10, "object and old object together above this size make a request large (real CAPZ machine objects are a few KiB)")
	f.Float64Var(&o.memoryRatio, "memory-limit-ratio", 0.9, "GOMEMLIMIT as a fraction of the container's memory limit (env MEMORY_LIMIT, else the cgroup's); 0 leaves it alone; a GOMEMLIMIT variable wins")
	f.DurationVar(&o.liveTimeout, "live-lookup-timeout", 2*time.Second, "bound of the apiserver lookups made when the informer cache cannot bind an object to its cluster yet (a template created right after the MachineDeployment that references it)")
	o.azure.addFlags(f)
	o.audit.addFlags(f)
	o.cel.addFlags(f)
	return cmd
}

func newLogger(level string) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	// One line per decision must never be sampled away.
	cfg.Sampling = nil
	return cfg.Build()
}

// metricsOptions serves metrics as kubebuilder v4 does by default: HTTPS, and only to a client whose
// bearer token the apiserver authenticates and authorises for GET /metrics.
func (o *serveOptions) metricsOptions(tlsOpts []func(*tls.Config)) metricsserver.Options {
	opts := metricsserver.Options{BindAddress: o.metricsAddr, TLSOpts: tlsOpts, SecureServing: o.metricsSecure}
	if o.metricsSecure {
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
		opts.CertDir = o.metricsCertDir
	}
	return opts
}

func (o *serveOptions) restConfig() (*rest.Config, error) {
	if o.kubeconfig == "" {
		return ctrl.GetConfig()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return nil, err
	}
	if cfg.QPS == 0 {
		// As ctrl.GetConfig does: no client-side rate limit (client-go's default is 5 requests a
		// second), the apiserver's priority and fairness applies. The webhook calls the apiserver
		// on the request path when its cache has not caught up; a client-side queue there adds
		// hundreds of milliseconds to admission during a burst of creates.
		cfg.QPS = -1
	}
	return cfg, nil
}

// plainLogger is the logger controller-runtime gives each admission request: its own, unchanged.
// The default builds a logger with six request fields for every request, which cost more
// allocations than the policy's decision; our audit line already records those fields, once.
func plainLogger(base logr.Logger, _ *ctrladmission.Request) logr.Logger { return base }

// drainOnSignal returns the context the manager runs under: it ends delay after signal does, and
// draining is set as soon as signal ends. A terminating pod's removal from the Service endpoints
// reaches kube-proxy asynchronously, so for a moment after SIGTERM the apiserver still opens new
// connections to it; closing the listener at once would make those calls fail, and failurePolicy
// Fail would refuse CAPZ objects during every rollout. A second signal still exits at once
// (ctrl.SetupSignalHandler).
func drainOnSignal(signal context.Context, delay time.Duration, draining *atomic.Bool, log logr.Logger) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-signal.Done()
		draining.Store(true)
		log.Info("shutdown requested: readiness now fails; serving until the delay ends", "delay", delay.String())
		time.Sleep(delay)
		log.Info("shutdown delay over: closing the listeners; in-flight requests finish")
		cancel()
	}()
	return ctx
}

// watchPlan decides what the informer cache watches, before the manager exists: which versions of
// the CAPI and CAPZ kinds the apiserver serves decides what the cache watches and how it trims each
// kind, which the manager takes at creation. The RESTMapper it asks is the manager's too.
func watchPlan(cfg *rest.Config) (meta.RESTMapper, clusterinfo.Served, []clusterinfo.WatchedKind, map[client.Object]cache.ByObject, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	served := clusterinfo.ServedVersions(mapper)
	watched := clusterinfo.WatchedKinds(served)
	byObject := map[client.Object]cache.ByObject{}
	for _, w := range watched {
		if w.Transform != nil {
			byObject[w.Object()] = cache.ByObject{Transform: w.Transform}
		}
	}
	return mapper, served, watched, byObject, nil
}

// watch registers the informers (and the reference index of the CAPI kinds) before the manager
// starts, so that readiness waits for them to sync.
func watch(ctx context.Context, mgr manager.Manager, watched []clusterinfo.WatchedKind, log logr.Logger) error {
	for _, w := range watched {
		if w.Refs != nil {
			// Who references AzureMachineTemplate md-0: one indexed List instead of a scan.
			if err := mgr.GetFieldIndexer().IndexField(ctx, w.Object(), clusterinfo.IndexRef, clusterinfo.IndexRefs(*w.Refs)); err != nil {
				return err
			}
		}
		if _, err := mgr.GetCache().GetInformer(ctx, w.Object()); err != nil {
			log.Info("not watching a kind the apiserver does not serve", "kind", w.GVK.String(), "error", err.Error())
		}
	}
	log.Info("watching", "kinds", len(watched))
	return nil
}

func (o *serveOptions) run(signal context.Context) error {
	zl, err := newLogger(o.logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer func() { _ = zl.Sync() }()
	log := zapr.NewLogger(zl)
	ctrl.SetLogger(log.WithName("controller-runtime"))
	log.Info("starting", "version", version.String())
	setMemoryLimit(o.memoryRatio, log.WithName("memory"))
	timeouts := webhookserver.TimeoutsFor(o.webhookTimeout)
	if err := timeouts.Validate(o.webhookTimeout); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--webhook-timeout: %w", err)}
	}
	var draining atomic.Bool
	ctx := drainOnSignal(signal, o.shutdownDelay, &draining, log)

	cfg, err := o.restConfig()
	if err != nil {
		return err
	}
	var policyOpts []policyfile.Option
	switch o.onBadPolicy {
	case "warn-only":
		policyOpts = append(policyOpts, policyfile.WithFallback(o.policyLastGood))
	case "exit":
	default:
		return &exitError{code: 2, err: fmt.Errorf("--on-bad-policy=%q: want warn-only or exit", o.onBadPolicy)}
	}
	policies, err := policyfile.New(o.policyFile, policyfile.NewMetrics(metrics.Registry), log.WithName("policy"), policyOpts...)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	// Read the catalog file now, so that a bad one stops the start with exit code 2; it is reloaded
	// when it changes, like the policy.
	var catalogFile skus.Catalog
	var catalogStore *catalogfile.Store
	if o.skuCatalog != "" {
		if catalogStore, err = catalogfile.New(o.skuCatalog, catalogfile.NewMetrics(metrics.Registry), log.WithName("sku-catalog")); err != nil {
			return &exitError{code: 2, err: err}
		}
		catalogFile = catalogStore
	}

	tlsOpts := []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }}
	if !o.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return err
	}
	if err := openreportsv1alpha1.Install(scheme); err != nil {
		return err
	}
	celOpts, err := o.cel.compileOptions()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	mapper, served, watched, byObject, err := watchPlan(cfg)
	if err != nil {
		return err
	}
	shutdown := o.shutdownTimeout
	mgrOpts := manager.Options{
		Scheme:         scheme,
		MapperProvider: func(*rest.Config, *http.Client) (meta.RESTMapper, error) { return mapper, nil },
		Logger:         log.WithName("manager"),
		WebhookServer: webhookserver.New(webhook.Options{
			Host: o.webhookHost, Port: o.webhookPort, CertDir: o.certDir, TLSOpts: tlsOpts,
		}, timeouts, log.WithName("webhook-server")),
		Metrics:                 o.metricsOptions(tlsOpts),
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		GracefulShutdownTimeout: &shutdown,
		Cache: cache.Options{
			// Every watched kind has its own transform (clusterinfo.WatchedKinds), which keeps only
			// what the resolver reads; anything else drops at least its managed fields.
			DefaultTransform: clusterinfo.StripManagedFields,
			ByObject:         byObject,
			// A read of a kind nobody registered fails instead of quietly starting an informer: what
			// the webhook caches is exactly clusterinfo.WatchedKinds, so its memory cannot grow with
			// kinds read by accident (the templates are read on demand, with the API reader).
			ReaderFailOnMissingInformer: true,
		},
	}
	o.audit.managerOptions(&mgrOpts)
	o.cel.managerOptions(&mgrOpts, o.audit.leaderElection)
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return err
	}

	if _, haveCAPI := served[clusterinfo.ClusterV1Beta2.GroupKind()]; !haveCAPI {
		log.Info("the CAPI Cluster CRD is not installed; regions come from annotations, spec.location and the policy only")
	}
	if err := watch(ctx, mgr, watched, log); err != nil {
		return err
	}

	live, err := o.azure.liveAzure(mgr, policies, log.WithName("azure"))
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	liveSKUs, des := live.catalogs()
	catalog := skucatalog.Layer(liveSKUs, catalogFile)

	var _ admission.PolicySource = policies
	recorder := decisionlog.NewRecorder(log.WithName("audit"))
	store := clusterinfo.NewCacheStore(mgr.GetCache(), mgr.GetAPIReader(), served, o.liveTimeout,
		clusterinfo.NewMetrics(metrics.Registry), log.WithName("clusterinfo"))
	resolver := clusterinfo.New(mgr.GetCache(), store, log.WithName("clusterinfo"))
	admissionMetrics := admission.NewMetrics(metrics.Registry)
	// One budget for both webhooks: they share the process's CPU and memory.
	limiter := &admission.Limiter{Max: o.maxInFlight, MaxLarge: o.maxInFlightBig, LargeBytes: o.largeRequest, Wait: o.webhookTimeout / 10}
	server := mgr.GetWebhookServer()
	// /mutate and /validate for CAPZ objects, /validate-binding for the CAPI objects that bind them.
	for _, mode := range []admission.Mode{admission.Mutate, admission.Validate, admission.Binding} {
		server.Register("/"+string(mode), &webhook.Admission{Handler: admission.New(admission.Config{
			Mode: mode, Policies: policies, Resolver: resolver, Objects: resolver, Catalog: catalog, DES: des,
			Recorder: recorder, Metrics: admissionMetrics, Limiter: limiter,
		}), LogConstructor: plainLogger})
	}
	// The chart's policy ConfigMap is checked when it is written, by the parser that loads it.
	server.Register("/validate-policy", &webhook.Admission{Handler: &policycheck.Handler{Version: version.Version, Log: log.WithName("policycheck")},
		LogConstructor: plainLogger})

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready only when the webhook server answers TLS and the caches are synced: before that, a
	// request would be decided without its Cluster's region.
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
		c, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(c) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("shutdown", func(*http.Request) error {
		if draining.Load() {
			return errors.New("shutting down")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		policies.Watch(ctx, o.policyInterval)
		return nil
	})); err != nil {
		return err
	}
	if catalogStore != nil {
		if err := mgr.Add(everyReplica(func(ctx context.Context) error {
			catalogStore.Watch(ctx, o.policyInterval)
			return nil
		})); err != nil {
			return err
		}
	}
	if err := o.audit.start(mgr, scheme, served, policies, catalog, des, live, log.WithName("background-audit")); err != nil {
		return &exitError{code: 2, err: err}
	}
	if err := o.cel.start(mgr, policies, catalog, celOpts, log.WithName("cel")); err != nil {
		return err
	}
	log.Info("serving", "webhookPort", o.webhookPort, "certDir", o.certDir, "policy", policies.Get().Source, "catalog", catalog.Source("").Name)
	return mgr.Start(ctx)
}
