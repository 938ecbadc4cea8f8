// Package azure keeps live Azure data — VM-size records per region and Disk Encryption Sets — in
// caches that are refreshed in the background, so the admission path reads memory and never waits on
// Azure. An outage or throttling leaves the last good data in place, marked stale.
package azure

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/desid"
)

// Config says which Azure to talk to and how.
type Config struct {
	SubscriptionID string
	// Cloud is AzurePublicCloud, AzureChinaCloud or AzureUSGovernmentCloud.
	Cloud string
	// ARMEndpoint and AuthorityHost override the cloud's (sovereign or private clouds, tests).
	ARMEndpoint   string
	AuthorityHost string
	// DisableInstanceDiscovery skips Entra ID's instance discovery, for private authorities.
	DisableInstanceDiscovery bool
	// Timeout bounds each Azure call, retries included.
	Timeout time.Duration
	// Transport replaces the HTTP client (tests).
	Transport policy.Transporter
	// CredentialKind picks one azidentity credential instead of the default chain: "environment",
	// "workload-identity" or "managed-identity"; "" or "default" is the chain.
	CredentialKind string
	// Credential replaces azidentity altogether (unit tests).
	Credential azcore.TokenCredential
	// Metrics count and time every try of every call; nil counts nothing (tests).
	Metrics *Metrics
}

// CloudConfig resolves the cloud and its overrides.
func (c Config) CloudConfig() (cloud.Configuration, error) {
	var cc cloud.Configuration
	switch strings.ToLower(c.Cloud) {
	case "", "azurepubliccloud", "public":
		cc = cloud.AzurePublic
	case "azurechinacloud", "china":
		cc = cloud.AzureChina
	case "azureusgovernmentcloud", "usgovernment":
		cc = cloud.AzureGovernment
	default:
		return cc, fmt.Errorf("unknown Azure cloud %q (AzurePublicCloud, AzureChinaCloud, AzureUSGovernmentCloud)", c.Cloud)
	}
	// Copy the services map: the SDK's cloud values are shared globals.
	services := map[cloud.ServiceName]cloud.ServiceConfiguration{}
	for k, v := range cc.Services {
		services[k] = v
	}
	cc.Services = services
	if c.ARMEndpoint != "" {
		cc.Services[cloud.ResourceManager] = cloud.ServiceConfiguration{Endpoint: c.ARMEndpoint, Audience: c.ARMEndpoint}
	}
	if c.AuthorityHost != "" {
		cc.ActiveDirectoryAuthorityHost = c.AuthorityHost
	}
	return cc, nil
}

// tokenCredentialsName is the AZURE_TOKEN_CREDENTIALS spelling of each kind --azure-credential names.
var tokenCredentialsName = map[string]string{
	"environment":       "EnvironmentCredential",
	"workload-identity": "WorkloadIdentityCredential",
	"managed-identity":  "ManagedIdentityCredential",
}

// Clients builds the SDK clients the caches and the audit use.
type Clients struct {
	cfg  Config
	cred azcore.TokenCredential
	opts *arm.ClientOptions

	mu     sync.Mutex
	vaults map[string]*azkeys.Client // by vault URL
}

// NewClients resolves credentials: workload identity, managed identity or environment variables,
// through azidentity's default chain (which also honours AZURE_CLIENT_ID, AZURE_TENANT_ID and
// AZURE_FEDERATED_TOKEN_FILE as set by the workload identity webhook).
func NewClients(cfg Config) (*Clients, error) {
	cc, err := cfg.CloudConfig()
	if err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	base := policy.ClientOptions{Cloud: cc, Transport: cfg.Transport}
	cred := cfg.Credential
	if cred == nil {
		if cred, err = newCredential(cfg, base); err != nil {
			return nil, fmt.Errorf("azure credentials (%s): %w", cfg.CredentialKind, err)
		}
	}
	opts := &arm.ClientOptions{ClientOptions: base}
	opts.PerCallPolicies = append(opts.PerCallPolicies, instrument{m: cfg.Metrics})
	// The SDK retries 429 and 5xx with backoff; a few tries within the per-call timeout is enough.
	opts.Retry = policy.RetryOptions{MaxRetries: 3, RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 5 * time.Second}
	return &Clients{cfg: cfg, cred: cred, opts: opts}, nil
}

// newCredential builds the credential. Naming one kind keeps the webhook from probing the others
// (the default chain ends with managed identity, which calls the instance metadata endpoint).
//
// azidentity's own AZURE_TOKEN_CREDENTIALS ("prod", "dev", or one credential's type name) narrows
// the default chain, and azidentity applies it there. With a named kind it must agree: a variable
// that says one credential and a flag that says another is a mistake, refused at start rather than
// resolved silently one way.
func newCredential(cfg Config, base policy.ClientOptions) (azcore.TokenCredential, error) {
	kind := strings.ToLower(cfg.CredentialKind)
	if atc, ok := os.LookupEnv("AZURE_TOKEN_CREDENTIALS"); ok && kind != "" && kind != "default" {
		if want := tokenCredentialsName[kind]; !strings.EqualFold(atc, want) && !strings.EqualFold(atc, "prod") {
			return nil, fmt.Errorf("AZURE_TOKEN_CREDENTIALS=%s contradicts --azure-credential=%s: unset the variable, set it to %s or prod, or use --azure-credential=default", atc, kind, want)
		}
	}
	switch kind {
	case "", "default":
		return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: base, DisableInstanceDiscovery: cfg.DisableInstanceDiscovery})
	case "environment":
		return azidentity.NewEnvironmentCredential(&azidentity.EnvironmentCredentialOptions{ClientOptions: base, DisableInstanceDiscovery: cfg.DisableInstanceDiscovery})
	case "workload-identity":
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{ClientOptions: base, DisableInstanceDiscovery: cfg.DisableInstanceDiscovery})
	case "managed-identity":
		// On a node with several user-assigned identities, AZURE_CLIENT_ID picks one, as it does in
		// azidentity's default chain; without it, the system-assigned identity answers.
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: base}
		if id := os.Getenv("AZURE_CLIENT_ID"); id != "" {
			o.ID = azidentity.ClientID(id)
		}
		return azidentity.NewManagedIdentityCredential(o)
	default:
		return nil, fmt.Errorf("unknown credential kind %q (default, environment, workload-identity, managed-identity)", cfg.CredentialKind)
	}
}

func (c *Clients) skus(subscription string) (*armcompute.ResourceSKUsClient, error) {
	return armcompute.NewResourceSKUsClient(subscription, c.cred, c.opts)
}

func (c *Clients) diskEncryptionSets(subscription string) (*armcompute.DiskEncryptionSetsClient, error) {
	return armcompute.NewDiskEncryptionSetsClient(subscription, c.cred, c.opts)
}

func (c *Clients) virtualMachines(subscription string) (*armcompute.VirtualMachinesClient, error) {
	return armcompute.NewVirtualMachinesClient(subscription, c.cred, c.opts)
}

func (c *Clients) disks(subscription string) (*armcompute.DisksClient, error) {
	return armcompute.NewDisksClient(subscription, c.cred, c.opts)
}

func (c *Clients) scaleSets(subscription string) (*armcompute.VirtualMachineScaleSetsClient, error) {
	return armcompute.NewVirtualMachineScaleSetsClient(subscription, c.cred, c.opts)
}

// keyVault returns the data-plane client of one vault (https://NAME.vault.azure.net), made once. Key
// Vault names the token audience in its authentication challenge, and the client checks that the
// audience belongs to the vault's own domain, so a Disk Encryption Set cannot point the webhook's
// token at another service.
func (c *Clients) keyVault(vaultURL string) (*azkeys.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.vaults[vaultURL]; ok {
		return cl, nil
	}
	opts := &azkeys.ClientOptions{ClientOptions: c.opts.ClientOptions}
	cl, err := azkeys.NewClient(vaultURL, c.cred, opts)
	if err != nil {
		return nil, err
	}
	if c.vaults == nil {
		c.vaults = map[string]*azkeys.Client{}
	}
	c.vaults[vaultURL] = cl
	return cl, nil
}

// Metrics are the Azure calls' Prometheus metrics (see admission.NewMetrics for the style).
type Metrics struct {
	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	evictions *prometheus.CounterVec
	cacheKeys *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_azure_requests_total",
			Help: "Azure Resource Manager and Key Vault calls by API and outcome (HTTP status class or error).",
		}, []string{"api", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capz_encryption_webhook_azure_request_duration_seconds",
			Help:    "Azure Resource Manager call latency by API (each try, retries counted apart).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"api"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capz_encryption_webhook_azure_cache_evictions_total",
			Help: "Keys a live Azure cache stopped keeping fresh, by cache (skus, des) and reason (capacity, idle, not-accepted). A steady rate of capacity evictions means requests name more regions or Disk Encryption Sets than the cache keeps.",
		}, []string{"cache", "reason"}),
		cacheKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capz_encryption_webhook_azure_cache_keys",
			Help: "Keys a live Azure cache keeps fresh (pinned and request-named), by cache.",
		}, []string{"cache"}),
	}
	reg.MustRegister(m.calls, m.latency, m.evictions, m.cacheKeys)
	return m
}

func (m *Metrics) evicted(cache, reason string) {
	if m != nil {
		m.evictions.WithLabelValues(cache, reason).Inc()
	}
}

func (m *Metrics) keys(cache string, n int) {
	if m != nil {
		m.cacheKeys.WithLabelValues(cache).Set(float64(n))
	}
}

// instrument is an SDK pipeline policy: it sees every try, so throttling shows in the metrics even
// when a retry succeeds.
type instrument struct{ m *Metrics }

func (i instrument) Do(req *policy.Request) (*http.Response, error) {
	api := apiOf(req.Raw().URL.Path)
	start := time.Now()
	resp, err := req.Next()
	if i.m == nil {
		return resp, err
	}
	i.m.latency.WithLabelValues(api).Observe(time.Since(start).Seconds())
	outcome := "error"
	if err == nil {
		outcome = fmt.Sprintf("%dxx", resp.StatusCode/100)
		if resp.StatusCode == http.StatusTooManyRequests {
			outcome = "429"
		}
	}
	i.m.calls.WithLabelValues(api, outcome).Inc()
	return resp, err
}

func apiOf(path string) string {
	p := strings.ToLower(path)
	switch {
	case strings.Contains(p, "/diskencryptionsets/"):
		return "diskEncryptionSets.get"
	case strings.HasSuffix(p, "/providers/microsoft.compute/skus"):
		return "resourceSkus.list"
	case strings.Contains(p, "/virtualmachinescalesets/"):
		return "virtualMachineScaleSets.get"
	case strings.Contains(p, "/virtualmachines/"):
		return "virtualMachines.get"
	case strings.Contains(p, "/providers/microsoft.compute/disks/"):
		return "disks.get"
	case strings.HasPrefix(p, "/keys/") && strings.HasSuffix(p, "/rotationpolicy"):
		return "keyVault.getKeyRotationPolicy"
	case strings.HasPrefix(p, "/keys/"):
		return "keyVault.getKey"
	case strings.HasSuffix(p, "/locations"):
		return "subscriptions.listLocations"
	default:
		return "other"
	}
}

func (c *Clients) subscriptions() (*armsubscriptions.Client, error) {
	return armsubscriptions.NewClient(c.cred, c.opts)
}

// Option configures a cache.
type Option func(*cacheOptions)

type cacheOptions struct {
	limits   Limits
	desScope func(desid.ID) bool
}

func options(opts []Option) cacheOptions {
	var o cacheOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// WithLimits bounds the keys requests can make a cache keep.
func WithLimits(l Limits) Option { return func(o *cacheOptions) { o.limits = l } }

// WithDESScope says which Disk Encryption Sets requests may have looked up (see SubscriptionScope).
// Without it, only pinned ones are.
func WithDESScope(f func(desid.ID) bool) Option { return func(o *cacheOptions) { o.desScope = f } }
