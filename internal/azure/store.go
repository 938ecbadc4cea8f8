package azure

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// store keeps one value per key fresh in the background: a key is loaded when first wanted, again
// once its value is older than ttl, and a failed load is retried after backoff while the last good
// value stays in place (an outage must not turn known facts into unknown ones). Requests read
// snapshots and add wanted keys — a map read, a map write and a non-blocking send — and never wait
// on a load.
type store[V any] struct {
	what         string // for logs: "VM sizes", "Disk Encryption Set"
	ttl, backoff time.Duration
	timeout      time.Duration
	load         func(ctx context.Context, key string) (V, error)
	now          func() time.Time
	log          logr.Logger

	mu      sync.RWMutex
	entries map[string]entry[V]
	want    map[string]bool
	kick    chan struct{}
	// same tells two values of a key apart (nil: every refresh is a change); onChange is called,
	// outside the lock, after a refresh that loaded a key for the first time or changed its value.
	same     func(a, b V) bool
	onChange func()
}

// entry is a snapshot of one key: the last good value, when it was loaded, and the error of the
// last try if that try failed.
type entry[V any] struct {
	value   V
	loaded  bool
	fetched time.Time
	tried   time.Time
	err     error
}

func newStore[V any](what string, ttl, backoff, timeout time.Duration, load func(context.Context, string) (V, error), log logr.Logger) *store[V] {
	return &store[V]{what: what, ttl: ttl, backoff: backoff, timeout: timeout, load: load, now: time.Now, log: log,
		entries: map[string]entry[V]{}, want: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// get returns the key's snapshot; a key never loaded is wanted, and reported as not loaded.
func (s *store[V]) get(key string) entry[V] {
	s.mu.RLock()
	e := s.entries[key]
	s.mu.RUnlock()
	if !e.loaded {
		s.Want(key)
	}
	return e
}

// loadedKeys lists the keys that have a value, sorted.
func (s *store[V]) loadedKeys() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for k, e := range s.entries {
		if e.loaded {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Want adds keys and wakes the loop.
func (s *store[V]) Want(keys ...string) {
	added := false
	s.mu.Lock()
	for _, k := range keys {
		if k != "" && !s.want[k] {
			s.want[k] = true
			added = true
		}
	}
	s.mu.Unlock()
	if added {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Run refreshes until ctx ends. It looks every tick (a tenth of ttl, at most a minute), so a failed
// key is retried after backoff, not after a whole ttl.
func (s *store[V]) Run(ctx context.Context) {
	tick := min(s.ttl/10, time.Minute)
	if tick <= 0 {
		tick = time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		s.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
	}
}

func (s *store[V]) once(ctx context.Context) {
	s.mu.RLock()
	var due []string
	now := s.now()
	for k := range s.want {
		e := s.entries[k]
		stale := !e.loaded || now.Sub(e.fetched) >= s.ttl
		// A try after the last success that failed less than backoff ago is not repeated yet.
		failedRecently := e.tried.After(e.fetched) && now.Sub(e.tried) < s.backoff
		if stale && !failedRecently {
			due = append(due, k)
		}
	}
	s.mu.RUnlock()
	slices.Sort(due)
	for _, k := range due {
		if ctx.Err() != nil {
			return
		}
		s.refresh(ctx, k)
	}
}

func (s *store[V]) refresh(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	now := s.now()
	v, err := s.load(ctx, key)
	s.mu.Lock()
	e := s.entries[key]
	e.tried = now
	changed := false
	if err != nil {
		e.err = err
		s.log.Error(err, "refreshing "+s.what+" failed; keeping the last good data", "key", key, "lastGood", e.fetched)
	} else {
		changed = !e.loaded || s.same == nil || !s.same(e.value, v)
		e.value, e.loaded, e.fetched, e.err = v, true, now, nil
		s.log.V(1).Info(s.what+" refreshed", "key", key, "changed", changed)
	}
	s.entries[key] = e
	onChange := s.onChange
	s.mu.Unlock()
	if changed && onChange != nil {
		onChange()
	}
}

// OnChange registers f to be called whenever a refresh brings new data: a key loaded for the first
// time, or a value that differs from the last. f runs on the refresh loop and must not block.
func (s *store[V]) OnChange(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = f
}

// Ensure loads, now and in the caller's goroutine, every key given that has no value yet (one try
// each, bounded by the store's timeout), for one-shot commands that have no background loop. It
// returns whether anything new was loaded.
func (s *store[V]) Ensure(ctx context.Context, keys ...string) bool {
	loaded := false
	for _, k := range keys {
		if k == "" || ctx.Err() != nil {
			continue
		}
		s.Want(k)
		s.mu.RLock()
		e := s.entries[k]
		s.mu.RUnlock()
		if e.loaded || !e.tried.IsZero() {
			continue
		}
		s.refresh(ctx, k)
		s.mu.RLock()
		loaded = loaded || s.entries[k].loaded
		s.mu.RUnlock()
	}
	return loaded
}
