// Package cache is SwitchFlow's micro-cache (SPEC 3.6): ready response bytes kept for a short time,
// keyed by host and request target, and the coalescing of concurrent misses into one backend request.
//
// # What cache owns
//
//   - Policy: which requests may use the cache (RequestCacheable) and how long a response may be kept
//     (ResponseTTL: status, Cache-Control, Set-Cookie, Vary, Age).
//   - Entry: a stored response, its head prebuilt without Date and Age and its body de-chunked, and
//     AppendServeHeaders, which writes the few bytes that differ per response (Date, Age, X-Cache,
//     Connection) into a caller's buffer. Serving a hit allocates nothing.
//   - Builder: collects a response while the proxy forwards it, and turns it into an Entry.
//   - Store: the one shared index, bounded by max_size with least-recently-used eviction, and the table
//     of fetches in flight. It holds a mutex, taken only on a loop's local miss, on an insert and once a
//     second for expiry; never on a hit.
//   - Shard: one event loop's view of the Store, a plain map the loop alone touches. A hit is a map
//     lookup and an atomic load; recency is a reference bit written only when it changes, so that loops
//     serving the same hot key read a shared cache line instead of bouncing it between cores.
//
// # Design
//
// Entries are immutable once built and shared by pointer between the Store and every Shard, so the
// bytes exist once however many loops serve them. Eviction marks an entry evicted (atomically) before
// unlinking it; a Shard drops such an entry at its next lookup or its once-a-second sweep, which keeps
// the memory held within max_size plus what was evicted during the last second.
//
// Least-recently-used is approximated as CLOCK does: a hit sets the entry's reference bit; the Store,
// when it must evict, gives an entry at the cold end whose bit is set a second chance at the hot end
// instead, clearing the bit.
//
// Coalescing: the first loop to miss a key becomes its leader and fetches it; any loop that misses the
// same key while the fetch is in flight registers a Waiter and keeps its clients until Finish tells it
// the outcome (an Entry, or nil: go to the backend). The engine decides how a waiter is woken on its
// own loop; cache knows no event loops.
//
// # What cache must not import
//
// Nothing of SwitchFlow's but codec (it reads parsed heads): not engine, upstream, bufpool, config or
// gnet. Times are int64 nanoseconds on a clock the caller chooses (the engine's monotonic clock), the
// same for every caller of one Store.
package cache
