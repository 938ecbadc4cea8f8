package main

import (
	"context"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/azure"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policyfile"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// azureOptions configure live Azure data (VM sizes and Disk Encryption Sets).
type azureOptions struct {
	subscription, cloud, armEndpoint, authorityHost, credential string
	disableInstanceDiscovery                                    bool
	refresh, backoff, timeout, cacheIdle                        time.Duration
	cacheMaxKeys                                                int
}

func (a *azureOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&a.credential, "azure-credential", "default", "default (azidentity's chain), environment, workload-identity or managed-identity")
	f.StringVar(&a.subscription, "azure-subscription-id", os.Getenv("AZURE_SUBSCRIPTION_ID"), "subscription whose VM sizes are read live; empty disables live Azure data (env AZURE_SUBSCRIPTION_ID)")
	f.StringVar(&a.cloud, "azure-cloud", "AzurePublicCloud", "AzurePublicCloud, AzureChinaCloud or AzureUSGovernmentCloud")
	f.StringVar(&a.armEndpoint, "azure-arm-endpoint", "", "Azure Resource Manager endpoint override (private clouds, tests)")
	f.StringVar(&a.authorityHost, "azure-authority-host", os.Getenv("AZURE_AUTHORITY_HOST"), "Entra ID authority override (env AZURE_AUTHORITY_HOST)")
	f.BoolVar(&a.disableInstanceDiscovery, "azure-disable-instance-discovery", false, "skip Entra ID instance discovery (private authorities)")
	f.DurationVar(&a.refresh, "sku-refresh-interval", 6*time.Hour, "how old live VM-size and Disk Encryption Set data may get before it is refreshed")
	f.DurationVar(&a.backoff, "azure-retry-backoff", time.Minute, "wait before retrying a failed refresh")
	f.DurationVar(&a.timeout, "azure-timeout", 15*time.Second, "bound on one refresh call to Azure, retries included")
	f.IntVar(&a.cacheMaxKeys, "azure-cache-max-keys", azure.DefaultMaxKeys, "most regions, and most Disk Encryption Sets, that requests can have kept fresh; the least recently used goes first (the policy's own and the AzureClusters' regions do not count)")
	f.DurationVar(&a.cacheIdle, "azure-cache-idle", 0, "a region or Disk Encryption Set no request used for this long is no longer refreshed, and forgotten (0: twice --sku-refresh-interval)")
}

// liveData is what a configured subscription gives: the VM-size and Disk Encryption Set caches and
// the reader of what Azure built for machines (the audit's).
type liveData struct {
	skus     *azure.SKUCache
	des      *azure.DESCache
	machines *azure.Machines
}

// catalogs returns the VM-size layer to put first and the DES catalog; both nil without live data.
func (l *liveData) catalogs() (skus.Catalog, policy.DESCatalog) {
	if l == nil {
		return nil, nil
	}
	return l.skus, l.des
}

// newLiveData builds the caches (not started) when a subscription is configured; nil otherwise. reg
// may be nil (the one-shot audit exports no metrics). allowedDESSubscriptions returns the policy's
// allowedDESSubscriptions, read at each lookup.
func (a *azureOptions) newLiveData(reg prometheus.Registerer, log logr.Logger, allowedDESSubscriptions func() []string) (*liveData, error) {
	if a.subscription == "" {
		return nil, nil
	}
	var m *azure.Metrics
	if reg != nil {
		m = azure.NewMetrics(reg)
	}
	clients, err := azure.NewClients(azure.Config{
		SubscriptionID: a.subscription, Cloud: a.cloud, ARMEndpoint: a.armEndpoint,
		AuthorityHost: a.authorityHost, DisableInstanceDiscovery: a.disableInstanceDiscovery, Timeout: a.timeout,
		CredentialKind: a.credential, Metrics: m,
	})
	if err != nil {
		return nil, err
	}
	limits := azure.WithLimits(azure.Limits{MaxKeys: a.cacheMaxKeys, Idle: a.cacheIdle})
	return &liveData{
		skus: azure.NewSKUCache(clients, a.refresh, a.backoff, log.WithName("skus"), limits),
		// Disk Encryption Sets are looked up only in the subscriptions the policy allows, or in the
		// webhook's own when it allows any (see azure.SubscriptionScope).
		des: azure.NewDESCache(clients, a.refresh, a.backoff, log.WithName("des"), limits,
			azure.WithDESScope(azure.SubscriptionScope(a.subscription, allowedDESSubscriptions))),
		machines: azure.NewMachines(clients),
	}, nil
}

// liveAzure starts the live caches when a subscription is configured; nil without one.
func (a *azureOptions) liveAzure(mgr manager.Manager, policies *policyfile.Store, log logr.Logger) (*liveData, error) {
	live, err := a.newLiveData(metrics.Registry, log, func() []string { return policies.Get().AllowedDESSubscriptions })
	if live == nil || err != nil {
		if err == nil {
			log.Info("no Azure subscription configured; VM-size data comes from the catalog file and the embedded catalog, and the Disk Encryption Set rules that need Azure are skipped")
		}
		return nil, err
	}
	skuCache, desCache := live.skus, live.des
	for _, c := range []prometheus.Collector{skuCache, desCache} {
		if err := metrics.Registry.Register(c); err != nil {
			return nil, err
		}
	}
	runnables := []manager.Runnable{
		everyReplica(func(ctx context.Context) error { skuCache.Run(ctx); return nil }),
		everyReplica(func(ctx context.Context) error { desCache.Run(ctx); return nil }),
		everyReplica(func(ctx context.Context) error {
			if mgr.GetCache().WaitForCacheSync(ctx) {
				warm(ctx, mgr.GetCache(), policies, skuCache, desCache, log)
			}
			return nil
		}),
	}
	for _, r := range runnables {
		if err := mgr.Add(r); err != nil {
			return nil, err
		}
	}
	return live, nil
}

// Warm loads, for the one-shot audit, the regions and Disk Encryption Sets (with their keys) not
// loaded yet; the background loops of `serve` do this by themselves.
func (l *liveData) Warm(ctx context.Context, regions, desIDs []string) bool {
	a := l.skus.Ensure(ctx, regions...)
	b := l.des.Ensure(ctx, desIDs...)
	return a || b
}

// everyReplica is a runnable that runs on every replica. With leader election on (for the
// background audit), controller-runtime starts a plain RunnableFunc only on the leader; the caches
// and the policy reload must run wherever admission is served.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }

func (everyReplica) NeedLeaderElection() bool { return false }

// warm pins, every minute, the regions and Disk Encryption Sets the policy names and the regions of
// the AzureClusters in the cluster, so that the first request for them finds live data and no flood
// of other keys can push them out. Keys that leave the policy are unpinned and expire like any
// other. It runs after the caches have synced and never blocks readiness.
func warm(ctx context.Context, reader client.Reader, policies *policyfile.Store, skuCache *azure.SKUCache, desCache *azure.DESCache, log logr.Logger) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		p := policies.Get()
		regions := []string{skus.NormalizeRegion(p.DefaultLocation)}
		ids := make([]string, 0, 2*len(p.Defaults))
		for _, d := range p.Defaults {
			for _, r := range d.Regions {
				regions = append(regions, skus.NormalizeRegion(r))
			}
			ids = append(ids, d.DiskEncryptionSetID, d.DataDiskEncryptionSetID)
		}
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(clusterinfo.AzureCluster.GroupVersion().WithKind("AzureClusterList"))
		if err := reader.List(ctx, list); err == nil {
			for _, item := range list.Items {
				// Whoever can create an AzureCluster names its location: pin it only once Azure has
				// confirmed it is one of the subscription's.
				loc, _, _ := unstructured.NestedString(item.Object, "spec", "location")
				if loc = skus.NormalizeRegion(loc); skuCache.KnownRegion(loc) {
					regions = append(regions, loc)
				}
			}
		} else {
			log.V(1).Info("listing AzureClusters to warm their regions failed", "error", err.Error())
		}
		skuCache.Pin(regions...)
		desCache.Pin(ids...)
	}, time.Minute)
}
