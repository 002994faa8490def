// Header slabs: one per connection, laid out at start for max_connections, and the large ones a head
// that outgrows its slab borrows (SPEC 3.3).

package engine

import (
	"fmt"
	"switchflow/bufpool"
	"switchflow/config"
	"syscall"
)

// buf is cc's header slab: the large one while it has borrowed one, else its own.
func (cc *clientConn) buf() []byte {
	if cc.large != nil {
		return cc.large.Buf
	}
	if cc.slab == nil {
		return nil // closed
	}
	return cc.slab.Buf
}

// borrowLarge moves cc's head, which filled its slab, into a large slab (SPEC 3.3), and reports whether
// one was free. Loop only.
func (ls *loopState) borrowLarge(cc *clientConn) bool {
	if cc.large != nil || ls.s.largeSlabs == nil {
		return false
	}
	l, err := ls.s.largeSlabs.Get()
	if err != nil {
		return false // every large slab is lent: 431
	}
	copy(l.Buf, cc.slab.Buf[:cc.filled])
	cc.large = l
	return true
}

// returnLarge gives a borrowed large slab back, moving what it still holds (the start of the next
// pipelined request) into cc's own slab; it keeps the slab while that does not fit. Its pages go back
// to the kernel, so the large slabs cost memory only while they are lent. Loop only.
func (ls *loopState) returnLarge(cc *clientConn) {
	l := cc.large
	if l == nil || (cc.slab != nil && cc.filled > len(cc.slab.Buf)) {
		return
	}
	if cc.slab != nil {
		copy(cc.slab.Buf, l.Buf[:cc.filled])
	}
	cc.large = nil
	ls.s.largeSlabs.Release(l)
	ls.s.largeSlabs.Put(l)
}

// checkSlabMemory refuses a max_connections × header_buffer that this machine's memory cannot hold: the
// header slabs are laid out at start, and a start that cannot have them should say so, not stall
// allocating or be killed later. Half of the RAM is the bound (the slabs are only the heads; bodies,
// buffers and the cache come on top).
func checkSlabMemory(cfg *config.Config) error {
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) != nil || si.Totalram == 0 {
		return nil // unknown: no bound
	}
	ram := uint64(si.Totalram) * uint64(si.Unit)
	need := uint64(cfg.Server.MaxConnections) * uint64(cfg.Server.HeaderBuffer+slabOverhead)
	if need > ram/2 {
		return fmt.Errorf("server.max_connections: %d connections × header_buffer %s = %.1f GiB of header slabs, more than half of this machine's memory (%.1f GiB)",
			cfg.Server.MaxConnections, config.FormatSize(int64(cfg.Server.HeaderBuffer)),
			float64(need)/(1<<30), float64(ram)/(1<<30))
	}
	return nil
}

// slabOverhead is the bookkeeping per slab beside its bytes (bufpool.Slab and its free-list entry).
const slabOverhead = 40

// LargeSlabCount is how many large header slabs a [server] section preallocates: large_header_buffers,
// or max_connections / 16 (at least one) when it is 0; none when large_header_buffer is no larger than
// header_buffer.
func LargeSlabCount(s config.Server) int {
	if s.LargeHeaderBuffer <= s.HeaderBuffer {
		return 0
	}
	if s.LargeHeaderBufs > 0 {
		return s.LargeHeaderBufs
	}
	return max(s.MaxConnections/16, 1)
}

// newLargeSlabs allocates the large header slabs (SPEC 3.3): a head that outgrows its connection's
// header_buffer slab borrows one until its exchange ends. nil when there are none.
func newLargeSlabs(s config.Server) *bufpool.SlabPool {
	n := LargeSlabCount(s)
	if n == 0 {
		return nil
	}
	return bufpool.NewSlabPool(n, s.LargeHeaderBuffer)
}

// SlabsInUse reports the header slabs handed out, for tests and metrics.
func (s *Server) SlabsInUse() int { return s.slabs.InUse() }

// LargeSlabsInUse reports the large header slabs lent to heads that outgrew their slab.
func (s *Server) LargeSlabsInUse() int {
	if s.largeSlabs == nil {
		return 0
	}
	return s.largeSlabs.InUse()
}
