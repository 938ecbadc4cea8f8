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
	defer s.mu.Unlock()
	e := s.entries[key]
	e.tried = now
	if err != nil {
		e.err = err
		s.log.Error(err, "refreshing "+s.what+" failed; keeping the last good data", "key", key, "lastGood", e.fetched)
	} else {
		e.value, e.loaded, e.fetched, e.err = v, true, now, nil
		s.log.V(1).Info(s.what+" refreshed", "key", key)
	}
	s.entries[key] = e
}
