package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celpolicy"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/celsync"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/policyfile"
	"github.com/capz-encryption-webhook/capz-encryption-webhook/internal/skus"
)

// celSyncOptions are serve's flags for the compiled admission policies (package celsync).
type celSyncOptions struct {
	enabled           bool
	namespace         string
	excludeNamespaces []string
	namespaceSelector string
	interval          time.Duration
	resync            time.Duration
}

func (o *celSyncOptions) addFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.enabled, "cel-sync", false, "keep the admission policies that `cel` compiles from the policy in force in the cluster (server-side apply; on the replica elected with --leader-election-id; the webhook serves on every replica)")
	f.StringVar(&o.namespace, "cel-namespace", "", "the webhook's namespace, which the compiled policies leave out (default: $POD_NAMESPACE, else "+celpolicy.DefaultNamespace+")")
	f.StringSliceVar(&o.excludeNamespaces, "cel-exclude-namespaces", nil, "namespaces the compiled policies leave out, besides kube-system and --cel-namespace (as the webhook configurations do)")
	f.StringVar(&o.namespaceSelector, "cel-namespace-selector", "", "label selector (JSON: matchLabels, matchExpressions) that narrows the compiled policies' namespaces, as the webhook configurations' namespaceSelector does")
	f.DurationVar(&o.interval, "cel-sync-interval", 10*time.Second, "how often the policy in force and the catalog are compiled and compared with what was applied")
	f.DurationVar(&o.resync, "cel-resync-interval", 10*time.Minute, "how often everything is applied again even if unchanged, repairing compiled objects that someone edited or deleted")
}

func (o *celSyncOptions) celNamespace() string {
	switch {
	case o.namespace != "":
		return o.namespace
	case os.Getenv("POD_NAMESPACE") != "":
		return os.Getenv("POD_NAMESPACE")
	}
	return celpolicy.DefaultNamespace
}

// compileOptions checks the flags even when the sync is off, so that a typo fails the start.
func (o *celSyncOptions) compileOptions() (celpolicy.Options, error) {
	opts := celpolicy.Options{Namespace: o.celNamespace()}
	if len(o.excludeNamespaces) > 0 {
		opts.ExcludedNamespaces = append([]string{"kube-system", opts.Namespace}, o.excludeNamespaces...)
	}
	if o.namespaceSelector != "" {
		sel := &metav1.LabelSelector{}
		dec := json.NewDecoder(strings.NewReader(o.namespaceSelector))
		dec.DisallowUnknownFields()
		if err := dec.Decode(sel); err != nil {
			return opts, fmt.Errorf("--cel-namespace-selector: %w", err)
		}
		opts.NamespaceSelector = sel
	}
	if o.interval <= 0 || o.resync <= 0 {
		return opts, fmt.Errorf("--cel-sync-interval and --cel-resync-interval must be positive")
	}
	// Compile checks the namespaces and the selector.
	if _, err := celpolicy.Compile(nil, nil, opts); err != nil {
		return opts, fmt.Errorf("--cel-*: %w", err)
	}
	return opts, nil
}

// managerOptions turns leader election on (with leaderElection, the Lease the background audit
// shares) when the sync is: the syncer runs on the elected replica only.
func (o *celSyncOptions) managerOptions(mo *manager.Options, leaderElection func(*manager.Options)) {
	if o.enabled {
		leaderElection(mo)
	}
}

// start adds the syncer to the manager, when the sync is on.
func (o *celSyncOptions) start(mgr manager.Manager, policies *policyfile.Store, catalog skus.Catalog, opts celpolicy.Options, log logr.Logger) error {
	if !o.enabled {
		return nil
	}
	return mgr.Add(o.syncer(mgr, policies, catalog, opts, log))
}

func (o *celSyncOptions) syncer(mgr manager.Manager, policies *policyfile.Store, catalog skus.Catalog, opts celpolicy.Options, log logr.Logger) *celsync.Syncer {
	return &celsync.Syncer{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
		Policy: policies.Get, Catalog: catalog, Options: opts,
		Interval: o.interval, Resync: o.resync, Clock: time.Now,
		Log: log, Metrics: celsync.NewMetrics(metrics.Registry),
	}
}
