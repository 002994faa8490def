package upstream

// IdlePool keeps the idle keep-alive connections of one loop, a LIFO stack per server: the most recently
// used connection is the one least likely to have been closed by the backend's own idle timeout.
// Loop only. T is the engine's backend connection type.
type IdlePool[T comparable] struct {
	stacks [][]T
	limit  int
	count  int
}

// NewIdlePool makes a pool for servers servers, each holding at most keepalive idle connections.
// The stacks are allocated at their full size now, so Put never allocates.
func NewIdlePool[T comparable](servers, keepalive int) *IdlePool[T] {
	p := &IdlePool[T]{stacks: make([][]T, servers), limit: keepalive}
	for i := range p.stacks {
		p.stacks[i] = make([]T, 0, keepalive)
	}
	return p
}

// Get pops the most recently pooled connection of server, if any.
func (p *IdlePool[T]) Get(server int) (c T, ok bool) {
	st := p.stacks[server]
	if len(st) == 0 {
		return c, false
	}
	c = st[len(st)-1]
	var zero T
	st[len(st)-1] = zero
	p.stacks[server] = st[:len(st)-1]
	p.count--
	return c, true
}

// Put pools c as idle. It reports false when the server's stack is full; the caller then closes c.
func (p *IdlePool[T]) Put(server int, c T) bool {
	st := p.stacks[server]
	if len(st) >= p.limit {
		return false
	}
	p.stacks[server] = append(st, c)
	p.count++
	return true
}

// Remove takes c out of server's stack, when the backend closed it or sent bytes while it was idle.
// It reports whether c was pooled.
func (p *IdlePool[T]) Remove(server int, c T) bool {
	st := p.stacks[server]
	for i := len(st) - 1; i >= 0; i-- {
		if st[i] == c {
			copy(st[i:], st[i+1:])
			var zero T
			st[len(st)-1] = zero
			p.stacks[server] = st[:len(st)-1]
			p.count--
			return true
		}
	}
	return false
}

// ServerLen reports the idle connections of one server.
func (p *IdlePool[T]) ServerLen(server int) int { return len(p.stacks[server]) }

// Len reports the idle connections of every server together.
func (p *IdlePool[T]) Len() int { return p.count }

// Each calls fn for every idle connection (for shutdown); fn must not modify the pool.
func (p *IdlePool[T]) Each(fn func(server int, c T)) {
	for i, st := range p.stacks {
		for _, c := range st {
			fn(i, c)
		}
	}
}
