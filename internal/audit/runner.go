package audit

import (
	"context"
	"time"

	"github.com/go-logr/logr"
)

// Run is one finished scan.
type Run struct {
	Started, Finished time.Time
	Results           []Result
	Summary           Summary
}

// Sink publishes the results of a scan (Reports, Events, metrics).
type Sink interface {
	Publish(ctx context.Context, run *Run) error
}

// Runner runs the scan in the background: once at start, then every Interval, and again soon after
// Trigger (new VM-size or Disk Encryption Set data). It needs leader election: `serve` runs it on one
// replica only, while every replica serves admission.
type Runner struct {
	Scanner  *Scanner
	Sinks    []Sink
	Interval time.Duration
	// Settle is how long a trigger waits for others (refreshes come in bursts) before the scan runs;
	// it is also the least time between the end of a run and a triggered one. Zero means 30s.
	Settle  time.Duration
	Metrics *Metrics
	Log     logr.Logger

	trigger chan struct{}
}

// NewRunner returns a runner; it does nothing until started.
func NewRunner(s *Scanner, interval time.Duration, metrics *Metrics, log logr.Logger, sinks ...Sink) *Runner {
	return &Runner{Scanner: s, Sinks: sinks, Interval: interval, Metrics: metrics, Log: log, trigger: make(chan struct{}, 1)}
}

// NeedLeaderElection makes the manager run the audit on the elected replica only.
func (r *Runner) NeedLeaderElection() bool { return true }

// Trigger asks for a run soon. It never blocks: triggers before a run coalesce into it.
func (r *Runner) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

func (r *Runner) settle() time.Duration {
	if r.Settle > 0 {
		return r.Settle
	}
	return 30 * time.Second
}

// Start runs until ctx ends. A failed run is logged and counted; the next one comes as usual.
func (r *Runner) Start(ctx context.Context) error {
	r.Log.Info("background audit started on this replica (leader)", "interval", r.Interval.String())
	timer := time.NewTimer(0)
	defer timer.Stop()
	due := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.trigger:
			if soon := time.Now().Add(r.settle()); soon.Before(due) {
				due = soon
				timer.Reset(time.Until(due))
			}
			continue
		case <-timer.C:
		}
		_ = r.RunOnce(ctx)
		due = time.Now().Add(r.Interval)
		timer.Reset(r.Interval)
	}
}

// RunOnce scans and publishes to every sink.
func (r *Runner) RunOnce(ctx context.Context) error {
	run := &Run{Started: r.Scanner.now()}
	sum, err := r.Scanner.Run(ctx, func(res Result) error {
		if res.Decision != nil {
			res.Decision.Patch = nil // always empty for stored objects; keep the run small
		}
		run.Results = append(run.Results, res)
		return nil
	})
	run.Summary, run.Finished = sum, r.Scanner.now()
	if err != nil {
		r.Log.Error(err, "audit run failed", "objects", sum.Objects)
		r.Metrics.failed()
		return err
	}
	var failed error
	for _, s := range r.Sinks {
		if err := s.Publish(ctx, run); err != nil {
			r.Log.Error(err, "publishing the audit failed", "sink", sinkName(s))
			failed = err
		}
	}
	if failed != nil {
		r.Metrics.failed()
		return failed
	}
	r.Metrics.succeeded(run)
	r.Log.Info("audit run finished", "objects", sum.Objects, "denied", sum.Denied, "warned", sum.Warned,
		"errors", sum.Errors, "skippedKinds", sum.Skipped, "policy", sum.Policy, "durationMs", run.Finished.Sub(run.Started).Milliseconds())
	return nil
}

func sinkName(s Sink) string {
	if n, ok := s.(interface{ Name() string }); ok {
		return n.Name()
	}
	return "sink"
}
