package cache

import (
	"sync"
	"sync/atomic"
)

// Waiter is told the outcome of a fetch it waited for: the new entry, or nil when the response was not
// stored (the waiter then goes to the backend itself). FlightDone is called on the goroutine that
// finished the fetch, outside the Store's lock; the waiter hands the news to its own loop.
type Waiter interface {
	FlightDone(key string, e *Entry)
}

// flight is a fetch in flight: the loops waiting on it.
type flight struct {
	waiters []Waiter
}

// Store is the shared index of entries and fetches. Safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	max      int64        // under mu
	maxEntry atomic.Int64 // max/8; read without mu when a fetch starts
	size     int64
	m        map[string]*Entry
	head     *Entry // most recently used
	tail     *Entry
	flights  map[string]*flight

	lastExpire atomic.Int64

	// Counters for metrics; written under mu or atomically.
	Evictions atomic.Uint64
	Stored    atomic.Uint64
}

// NewStore returns a store holding at most maxSize bytes (entries count their head, body, key and a
// fixed overhead). One entry may take at most an eighth of it: a micro-cache is for many small answers,
// and one huge one must not flush them all.
func NewStore(maxSize int64) *Store {
	s := &Store{
		max:     maxSize,
		m:       make(map[string]*Entry),
		flights: make(map[string]*flight),
	}
	s.maxEntry.Store(maxSize / 8)
	return s
}

// MaxEntry is the largest body a Builder for this store should accept.
func (s *Store) MaxEntry() int { return int(s.maxEntry.Load()) }

// Resize sets a new bound (a reload's [cache] max_size). Shrinking evicts from the cold end until what
// is held fits, and drops entries larger than the new per-entry bound; 0 empties the store and keeps
// nothing more. Fetches in flight finish against the new bound.
func (s *Store) Resize(maxSize int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.max = maxSize
	s.maxEntry.Store(maxSize / 8)
	for e := s.tail; e != nil; {
		prev := e.prev
		if int64(len(e.Body)) > maxSize/8 {
			s.remove(e)
			s.Evictions.Add(1)
		}
		e = prev
	}
	for s.size > s.max && s.tail != nil {
		s.remove(s.tail)
		s.Evictions.Add(1)
	}
}

// Bytes is what the store holds now.
func (s *Store) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// Len is the number of entries held.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Lookup finds a fresh entry for key, or else joins or starts the fetch of it.
//
//   - A fresh entry: returned.
//   - A fetch in flight: w is registered to hear how it ends (if w is not nil and not already
//     registered); joined is true.
//   - Neither, and lead: a fetch is registered and the caller is its leader; it must call Finish.
//   - Neither, and not lead (a HEAD, which cannot fill the cache): nothing; go to the backend.
func (s *Store) Lookup(key []byte, now int64, w Waiter, lead bool) (e *Entry, leader, joined bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[string(key)]; e != nil {
		if now < e.expires {
			e.ref.Store(true)
			return e, false, false
		}
		s.remove(e)
	}
	if f := s.flights[string(key)]; f != nil {
		if w != nil && !containsWaiter(f.waiters, w) {
			f.waiters = append(f.waiters, w)
		}
		return nil, false, true
	}
	if !lead {
		return nil, false, false
	}
	s.flights[string(key)] = &flight{}
	return nil, true, false
}

func containsWaiter(ws []Waiter, w Waiter) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// Finish ends the fetch of key: e (nil when the response is not to be kept) is stored, and the waiters
// are told. It returns e, or nil when e could not be stored (too large). The leader's loop serves its own
// local waiters itself.
func (s *Store) Finish(key string, e *Entry, now int64) *Entry {
	s.mu.Lock()
	f := s.flights[key]
	delete(s.flights, key)
	if e != nil && !s.insert(e, now) {
		e = nil
	}
	s.mu.Unlock()
	if f != nil {
		for _, w := range f.waiters {
			w.FlightDone(key, e)
		}
	}
	return e
}

// insert adds e, evicting from the cold end until it fits. Under mu.
func (s *Store) insert(e *Entry, now int64) bool {
	if e.size > s.max || int64(len(e.Body)) > s.maxEntry.Load() {
		return false
	}
	if old := s.m[e.Key]; old != nil {
		s.remove(old)
	}
	// CLOCK's second chance: an entry hit since it was last looked at goes back to the hot end, its bit
	// cleared, so each entry moves at most once per insert.
	for s.size+e.size > s.max && s.tail != nil {
		t := s.tail
		if t.ref.Load() && now < t.expires {
			t.ref.Store(false)
			s.unlink(t)
			s.pushFront(t)
			continue
		}
		s.remove(t)
		s.Evictions.Add(1)
	}
	s.m[e.Key] = e
	s.size += e.size
	s.pushFront(e)
	s.Stored.Add(1)
	return true
}

// remove drops e from the store and marks it evicted, so that every Shard lets go of it. Under mu.
func (s *Store) remove(e *Entry) {
	e.evicted.Store(true)
	s.unlink(e)
	delete(s.m, e.Key)
	s.size -= e.size
}

func (s *Store) pushFront(e *Entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *Store) unlink(e *Entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else if s.head == e {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else if s.tail == e {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// Expire drops every entry no longer fresh. Whichever loop calls it first in a second does the work;
// the others return at once.
func (s *Store) Expire(now int64) {
	last := s.lastExpire.Load()
	if now-last < 1e9 || !s.lastExpire.CompareAndSwap(last, now) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.m {
		if now >= e.expires {
			s.remove(e)
		}
	}
}

// Shard is one event loop's view of the store: the entries that loop has served, in a map only it
// touches. Not safe for concurrent use.
type Shard struct {
	st *Store
	m  map[string]*Entry

	// Written by the shard's loop only; atomic so that metrics may read them from another goroutine.
	Hits, Misses, Bypasses atomic.Uint64
}

// NewShard returns a view of st for one loop.
func NewShard(st *Store) *Shard { return &Shard{st: st, m: make(map[string]*Entry)} }

// Store returns the store behind sh.
func (sh *Shard) Store() *Store { return sh.st }

// Get returns a fresh entry for key from the loop's own map, without a lock or an allocation, or nil.
func (sh *Shard) Get(key []byte, now int64) *Entry {
	e := sh.m[string(key)]
	if e == nil {
		return nil
	}
	if !e.Fresh(now) {
		delete(sh.m, string(key))
		return nil
	}
	if !e.ref.Load() { // a store only when the bit changes: loops sharing a hot entry only read it
		e.ref.Store(true)
	}
	return e
}

// Lookup is Get, then the store: a fresh entry found there is remembered in the loop's map.
func (sh *Shard) Lookup(key []byte, now int64, w Waiter, lead bool) (e *Entry, leader, joined bool) {
	if e := sh.Get(key, now); e != nil {
		return e, false, false
	}
	e, leader, joined = sh.st.Lookup(key, now, w, lead)
	if e != nil {
		sh.m[e.Key] = e
	}
	return e, leader, joined
}

// Put remembers e in the loop's map (after a fetch this loop led or waited for).
func (sh *Shard) Put(e *Entry) {
	if e != nil && !e.evicted.Load() {
		sh.m[e.Key] = e
	}
}

// Sweep lets go of entries that expired or were evicted, so that evicted bytes are not held for long,
// and runs the store's expiry when it is due. Call it about once a second.
func (sh *Shard) Sweep(now int64) {
	for k, e := range sh.m {
		if !e.Fresh(now) {
			delete(sh.m, k)
		}
	}
	sh.st.Expire(now)
}
