package azure

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// store keeps one value per key fresh in the background: a key is loaded when first wanted, again
// once its value is older than ttl, and a failed load is retried after backoff while the last good
// value stays in place (an outage must not turn known facts into unknown ones). Requests read
// snapshots and add wanted keys — a map read, an atomic store, and for a new key a map write and a
// non-blocking send — and never wait on a load.
//
// Keys come from two places. Requests name them (a region, a Disk Encryption Set ID), and requests
// come from users: so a request's key is taken only if accept says so, at most maxKeys of them are
// kept (the least recently used goes first), and one not used for idle is dropped, value and all,
// so that nobody can make the webhook call Azure for ever about keys they named once. The
// background warmer pins keys (the policy's own, the regions of the cluster's AzureClusters): pinned
// keys are trusted, do not count against maxKeys and never expire while pinned.
type store[V any] struct {
	what         string // for logs: "VM sizes", "Disk Encryption Set"
	cache        string // for metrics: "skus", "des", "locations"
	ttl, backoff time.Duration
	timeout      time.Duration
	load         func(ctx context.Context, key string) (V, error)
	now          func() time.Time
	log          logr.Logger
	limits       Limits
	// accept says whether a request may add key; nil accepts every key.
	accept  func(key string) bool
	metrics *Metrics

	mu      sync.RWMutex
	entries map[string]entry[V]
	want    map[string]*wanted
	kick    chan struct{}
	// same tells two values of a key apart (nil: every refresh is a change); onChange is called,
	// outside the lock, after a refresh that loaded a key for the first time or changed its value.
	same     func(a, b V) bool
	onChange func()
}

// Limits bound what requests can make a cache hold.
type Limits struct {
	// MaxKeys is how many request-named keys are kept; the least recently used is dropped for a new
	// one. 0 means DefaultMaxKeys.
	MaxKeys int
	// Idle is how long a request-named key is kept (and refreshed) without being used. 0 means twice
	// the refresh interval.
	Idle time.Duration
}

// DefaultMaxKeys is the default bound on request-named keys of one cache: well above the number of
// Azure regions (about 60 per cloud) and of the Disk Encryption Sets a platform team keeps.
const DefaultMaxKeys = 256

// wanted is one key's demand: when a request last used it (Unix nanoseconds, written by readers
// without the write lock) and whether the warmer pins it.
type wanted struct {
	lastUsed atomic.Int64
	pinned   atomic.Bool
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

func newStore[V any](what, cache string, ttl, backoff, timeout time.Duration, load func(context.Context, string) (V, error), log logr.Logger) *store[V] {
	return &store[V]{what: what, cache: cache, ttl: ttl, backoff: backoff, timeout: timeout, load: load, now: time.Now, log: log,
		entries: map[string]entry[V]{}, want: map[string]*wanted{}, kick: make(chan struct{}, 1)}
}

func (s *store[V]) maxKeys() int {
	if s.limits.MaxKeys > 0 {
		return s.limits.MaxKeys
	}
	return DefaultMaxKeys
}

func (s *store[V]) idle() time.Duration {
	if s.limits.Idle > 0 {
		return s.limits.Idle
	}
	return 2 * s.ttl
}

// get returns the key's snapshot and marks it used; a key not held yet is wanted (if accepted) and
// reported as not loaded. A key that is no longer accepted (the policy changed) answers nothing,
// even while its value is still held.
func (s *store[V]) get(key string) entry[V] {
	s.mu.RLock()
	e, w := s.entries[key], s.want[key]
	s.mu.RUnlock()
	if w == nil {
		s.Want(key)
		return entry[V]{}
	}
	if !w.pinned.Load() && s.accept != nil && !s.accept(key) {
		return entry[V]{}
	}
	w.lastUsed.Store(s.now().UnixNano())
	return e
}

// peek returns the key's snapshot without using it (metrics, listings).
func (s *store[V]) peek(key string) entry[V] {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.entries[key]
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

// Want adds keys named by requests — those accept takes — evicting the least recently used
// unpinned key when the store is full, and wakes the loop.
func (s *store[V]) Want(keys ...string) {
	added := false
	s.mu.Lock()
	for _, k := range keys {
		if k == "" || s.want[k] != nil || s.accept != nil && !s.accept(k) {
			continue
		}
		added = s.add(k) || added
	}
	s.mu.Unlock()
	if added {
		s.wake()
	}
}

// Pin makes keys exactly the pinned set: they are wanted whatever accept and the bound say, and do
// not expire. Keys pinned before and not now are unpinned, as if just used: they expire after idle
// unless requests keep using them.
func (s *store[V]) Pin(keys ...string) {
	set := map[string]bool{}
	for _, k := range keys {
		if k != "" {
			set[k] = true
		}
	}
	added := false
	now := s.now().UnixNano()
	s.mu.Lock()
	for k, w := range s.want {
		if w.pinned.Load() && !set[k] {
			w.pinned.Store(false)
			w.lastUsed.Store(now)
		}
	}
	for k := range set {
		w := s.want[k]
		if w == nil {
			w = &wanted{}
			w.lastUsed.Store(now)
			s.want[k] = w
			added = true
		}
		w.pinned.Store(true)
	}
	// Unpinning may have put the store over its bound.
	for s.unpinned() > s.maxKeys() {
		s.evictOldest()
	}
	s.mu.Unlock()
	if added {
		s.wake()
	}
}

// add wants k as a request-named key, evicting the least recently used one when the store is full;
// it reports whether k is new. Callers hold mu.
func (s *store[V]) add(k string) bool {
	if s.want[k] != nil {
		return false
	}
	if s.unpinned() >= s.maxKeys() {
		s.evictOldest()
	}
	w := &wanted{}
	w.lastUsed.Store(s.now().UnixNano())
	s.want[k] = w
	return true
}

func (s *store[V]) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// unpinned counts the request-named keys. Callers hold mu.
func (s *store[V]) unpinned() int {
	n := 0
	for _, w := range s.want {
		if !w.pinned.Load() {
			n++
		}
	}
	return n
}

// evictOldest drops the least recently used unpinned key. A linear scan: it runs only when a new
// key arrives at a full store, over at most a few hundred keys, and it keeps the read path free of
// the list moves (and the write lock) an LRU list would need on every use. Keys used at the same
// instant (one Want naming several) go in key order, not in map order, so that eviction is
// deterministic. Callers hold mu.
func (s *store[V]) evictOldest() {
	oldest, at := "", int64(0)
	for k, w := range s.want {
		if t := w.lastUsed.Load(); !w.pinned.Load() && (oldest == "" || t < at || t == at && k < oldest) {
			oldest, at = k, t
		}
	}
	if oldest != "" {
		s.drop(oldest, "capacity")
	}
}

// drop forgets a key and its value. Callers hold mu.
func (s *store[V]) drop(key, reason string) {
	delete(s.want, key)
	delete(s.entries, key)
	s.metrics.evicted(s.cache, reason)
	s.log.V(1).Info("no longer keeping "+s.what+" fresh", "key", key, "reason", reason)
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

// expire drops the unpinned keys not used for idle, and those accept no longer takes.
func (s *store[V]) expire() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, w := range s.want {
		switch {
		case w.pinned.Load():
		case now.Sub(time.Unix(0, w.lastUsed.Load())) > s.idle():
			s.drop(k, "idle")
		case s.accept != nil && !s.accept(k):
			s.drop(k, "not-accepted")
		}
	}
	s.metrics.keys(s.cache, len(s.want))
}

func (s *store[V]) once(ctx context.Context) {
	s.expire()
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
	if s.want[key] == nil {
		// Dropped while loading: keep nothing of it.
		s.mu.Unlock()
		return
	}
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
// returns whether anything new was loaded. Keys accept refuses are skipped, as for requests: the
// audit publishes what it finds, and must not be an oracle either.
func (s *store[V]) Ensure(ctx context.Context, keys ...string) bool {
	loaded := false
	for _, k := range keys {
		if k == "" || ctx.Err() != nil || s.accept != nil && !s.accept(k) {
			continue
		}
		s.mu.Lock()
		s.add(k)
		e := s.entries[k]
		s.mu.Unlock()
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
