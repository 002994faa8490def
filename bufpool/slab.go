package bufpool

import (
	"errors"
	"os"
	"sync"
	"syscall"
)

// ErrExhausted is returned by Get when every slab is handed out.
var ErrExhausted = errors.New("bufpool: all slabs in use")

// Slab is one fixed-size buffer of a SlabPool. Buf is valid from Get until Put; after Put the caller must
// not touch it again, because the next Get hands the same memory to another connection.
type Slab struct {
	Buf []byte
	id  int32
}

// SlabPool is a fixed set of equally sized slabs allocated once, at construction. Get and Put are safe for
// concurrent use by all event loops; they are called once per client connection, never per request, so a
// short uncontended mutex costs less than the per-loop partitioning that would strand free slabs on an
// idle loop while a busy one refuses connections.
type SlabPool struct {
	mu    sync.Mutex
	free  []int32 // stack of free slab ids; capacity fixed at construction
	slabs []Slab
	size  int
}

// NewSlabPool allocates count slabs of size bytes in one anonymous mapping, outside the Go heap so the
// garbage collector never scans or moves it. The block is reserved address space: the kernel backs a page
// with memory only once a connection writes into it, and Release hands pages back.
func NewSlabPool(count, size int) *SlabPool {
	if count < 1 || size < 1 {
		panic("bufpool: NewSlabPool needs count >= 1 and size >= 1")
	}
	block, err := syscall.Mmap(-1, 0, count*size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		block = make([]byte, count*size) // no mmap: the heap still gives one block, without Release
	}
	p := &SlabPool{
		free:  make([]int32, count),
		slabs: make([]Slab, count),
		size:  size,
	}
	for i := range p.slabs {
		// Full slice expression: an append through one slab can never spill into its neighbour.
		p.slabs[i] = Slab{Buf: block[i*size : (i+1)*size : (i+1)*size], id: int32(i)}
		p.free[i] = int32(count - 1 - i) // hand out low ids first
	}
	return p
}

// Get hands out a free slab, or returns ErrExhausted. It never allocates.
func (p *SlabPool) Get() (*Slab, error) {
	p.mu.Lock()
	n := len(p.free)
	if n == 0 {
		p.mu.Unlock()
		return nil, ErrExhausted
	}
	id := p.free[n-1]
	p.free = p.free[:n-1]
	p.mu.Unlock()
	return &p.slabs[id], nil
}

// Put returns a slab taken with Get. Putting a slab twice corrupts the pool, so it panics instead.
func (p *SlabPool) Put(s *Slab) {
	p.mu.Lock()
	if len(p.free) == cap(p.free) {
		p.mu.Unlock()
		panic("bufpool: Put of a slab that was not handed out")
	}
	p.free = append(p.free, s.id)
	p.mu.Unlock()
}

// Release gives the memory pages of s back to the kernel while its connection is idle; its bytes read
// as zero afterwards, and the next write faults a fresh page in. Only whole pages inside the slab are
// released. It costs one madvise system call, so callers release slabs idle for a while, not after every
// request.
func (p *SlabPool) Release(s *Slab) {
	page := os.Getpagesize()
	b := s.Buf[:cap(s.Buf)]
	if len(b) < page {
		return
	}
	addr := uintptrOf(b)
	start := (page - int(addr%uintptr(page))) % page
	end := start + (len(b)-start)/page*page
	if end > start {
		_ = syscall.Madvise(b[start:end], madvDontNeed)
	}
}

// InUse reports how many slabs are handed out.
func (p *SlabPool) InUse() int {
	p.mu.Lock()
	n := len(p.slabs) - len(p.free)
	p.mu.Unlock()
	return n
}

// Cap reports the number of slabs in the pool.
func (p *SlabPool) Cap() int { return len(p.slabs) }

// Size reports the size of each slab in bytes.
func (p *SlabPool) Size() int { return p.size }
