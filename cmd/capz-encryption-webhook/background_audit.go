package main

import (
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	openreportsv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/audit"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/audit/report"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/clusterinfo"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policyfile"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// backgroundAuditOptions configure the audit `serve` runs on the elected replica.
type backgroundAuditOptions struct {
	interval, settle, eventRepeat time.Duration
	reports, events               bool
	pageSize                      int64
	leaseNamespace, leaseName     string
}

func (b *backgroundAuditOptions) addFlags(f *pflag.FlagSet) {
	f.DurationVar(&b.interval, "audit-interval", 0, "run the audit of stored objects (and, with a subscription, of their VMs, disks and Key Vault keys) this often on the elected replica; 0 turns the background audit and leader election off")
	f.BoolVar(&b.reports, "audit-reports", true, "publish the background audit as openreports.io Reports, one per namespace (skipped, with a log line, when the Report CRD is not installed)")
	f.BoolVar(&b.events, "audit-events", true, "put Warning events on the objects the background audit finds denied or warned")
	f.DurationVar(&b.eventRepeat, "audit-event-repeat", 6*time.Hour, "announce unchanged findings of an object again only after this long")
	f.DurationVar(&b.settle, "audit-settle", 30*time.Second, "after new VM-size or Disk Encryption Set data, wait this long for more before auditing again")
	f.Int64Var(&b.pageSize, "audit-page-size", audit.DefaultPageSize, "objects per list call of the audit")
	f.StringVar(&b.leaseNamespace, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease of the elected replica, which runs the background audit and the CEL sync (default: env POD_NAMESPACE, else the pod's own namespace)")
	f.StringVar(&b.leaseName, "leader-election-id", "capz-encryption-webhook-audit", "name of that Lease")
}

// managerOptions turns leader election on when the background audit is: the audit runs on the
// Lease holder only, while admission (the webhook server does not need leader election), the caches
// and the policy reload run on every replica (everyReplica).
func (b *backgroundAuditOptions) managerOptions(o *manager.Options) {
	if b.interval <= 0 {
		return
	}
	b.leaderElection(o)
}

// leaderElection turns leader election on, with the Lease of these flags; the CEL sync (--cel-sync)
// shares it.
func (b *backgroundAuditOptions) leaderElection(o *manager.Options) {
	o.LeaderElection = true
	o.LeaderElectionID = b.leaseName
	o.LeaderElectionNamespace = b.leaseNamespace
	// A replica that stops (rollout, drain) hands the Lease over at once instead of after its expiry.
	o.LeaderElectionReleaseOnCancel = true
}

// start adds the background audit to the manager, when an interval is set.
func (b *backgroundAuditOptions) start(mgr manager.Manager, scheme *runtime.Scheme, served clusterinfo.Served, policies *policyfile.Store,
	catalog skus.Catalog, des policy.DESCatalog, live *liveData, log logr.Logger) error {
	if b.interval <= 0 {
		return nil
	}
	if b.interval < time.Minute {
		log.Info("the audit interval is under a minute: every run lists every guarded object", "interval", b.interval.String())
	}
	scanner := &audit.Scanner{Reader: mgr.GetAPIReader(), ClusterGVK: served.ClusterGVK(), Served: served, Policy: policies.Get,
		Catalog: catalog, DES: des, Now: time.Now, PageSize: b.pageSize, Log: log}
	if live != nil {
		scanner.Machines, scanner.DefaultSubscription = live.machines, live.skus.Subscription()
	}
	m := audit.NewMetrics(metrics.Registry)
	sinks := []audit.Sink{m}
	if b.reports {
		if _, err := mgr.GetRESTMapper().RESTMapping(openreportsv1alpha1.SchemeGroupVersion.WithKind("Report").GroupKind(), "v1alpha1"); err != nil {
			log.Info("the openreports.io Report CRD is not installed: the audit publishes no Reports (install it, e.g. with the chart's audit.reports.installCRD)", "error", err.Error())
		} else {
			// Reads and writes straight to the apiserver: a cached client would watch every Report.
			c, err := client.New(mgr.GetConfig(), client.Options{Scheme: scheme, Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient()})
			if err != nil {
				return fmt.Errorf("the Reports client: %w", err)
			}
			sinks = append(sinks, &report.Writer{Client: c})
		}
	}
	if b.events {
		sinks = append(sinks, &audit.Events{Recorder: mgr.GetEventRecorder("capz-encryption-webhook-audit"), Repeat: b.eventRepeat})
	}
	runner := audit.NewRunner(scanner, b.interval, m, log, sinks...)
	runner.Settle = b.settle
	if live != nil {
		live.skus.OnChange(runner.Trigger)
		live.des.OnChange(runner.Trigger)
	}
	return mgr.Add(runner)
}
