package azure

import (
	"context"
	"sync"
	"time"
)

// refresher keeps a set of keys fresh: each key is fetched when first wanted and again once its data
// is older than ttl; a failed fetch is retried after backoff. Keys are wanted from the request path
// (a map write and a non-blocking send), fetched only here.
type refresher struct {
	ttl, backoff time.Duration
	fetch        func(ctx context.Context, key string)
	age          func(key string) (fetched, tried time.Time, ok bool)
	now          func() time.Time

	mu   sync.Mutex
	want map[string]bool
	kick chan struct{}
}

func newRefresher(ttl, backoff time.Duration, fetch func(context.Context, string), age func(string) (time.Time, time.Time, bool)) *refresher {
	return &refresher{ttl: ttl, backoff: backoff, fetch: fetch, age: age, now: time.Now, want: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// Want adds keys and wakes the loop; cheap enough for the admission path.
func (r *refresher) Want(keys ...string) {
	added := false
	r.mu.Lock()
	for _, k := range keys {
		if k != "" && !r.want[k] {
			r.want[k] = true
			added = true
		}
	}
	r.mu.Unlock()
	if added {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Run refreshes until ctx ends. It checks every tick (a tenth of ttl, at most a minute) so a
// failed region is retried after backoff, not after a whole ttl.
func (r *refresher) Run(ctx context.Context) {
	tick := min(r.ttl/10, time.Minute)
	if tick <= 0 {
		tick = time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		r.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-t.C:
		}
	}
}

func (r *refresher) once(ctx context.Context) {
	r.mu.Lock()
	keys := make([]string, 0, len(r.want))
	for k := range r.want {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	now := r.now()
	for _, k := range keys {
		if ctx.Err() != nil {
			return
		}
		fetched, tried, ok := r.age(k)
		due := !ok || now.Sub(fetched) >= r.ttl
		// A try after the last success that failed less than backoff ago is not repeated yet.
		failedRecently := tried.After(fetched) && now.Sub(tried) < r.backoff
		if due && !failedRecently {
			r.fetch(ctx, k)
		}
	}
}
