package upstream

// Picker chooses servers of one Group for one event loop (loop only). Each loop keeps its own smooth
// weighted round-robin state, as nginx's ngx_http_upstream_round_robin does per worker: no lock and no
// shared cache line on the request path, and over many requests every loop honours the weights.
type Picker struct {
	g       *Group
	current []int // smooth weighted round-robin state, one entry per server
}

// NewPicker returns a Picker for g, to be used by one loop only.
func NewPicker(g *Group) *Picker {
	return &Picker{g: g, current: make([]int, len(g.Servers))}
}

// Pick returns the next server at now, skipping those in tried (bit i = server i) and those marked down.
// Backup servers are chosen only while no primary server is up. It returns nil when no server is left.
// Pick never allocates.
func (p *Picker) Pick(now int64, tried uint64) *Server {
	if s := p.pick(now, tried, false); s != nil {
		return s
	}
	if p.primaryUp(now) {
		// Primaries are up but all were tried: backups stay reserved for "no other server is up".
		return nil
	}
	return p.pick(now, tried, true)
}

func (p *Picker) primaryUp(now int64) bool {
	for _, s := range p.g.Servers {
		if !s.Backup && s.Up(now) {
			return true
		}
	}
	return false
}

// pick is nginx's smooth weighted round robin over the eligible servers: each gains its weight, the
// largest wins and pays back the total. A 5:1:1 group yields a,a,b,a,c,a,a rather than a burst of five.
func (p *Picker) pick(now int64, tried uint64, backup bool) *Server {
	var best *Server
	total := 0
	for i, s := range p.g.Servers {
		if s.Backup != backup || tried&(1<<uint(i)) != 0 || !s.Up(now) {
			continue
		}
		p.current[i] += s.Weight
		total += s.Weight
		if best == nil || p.current[i] > p.current[best.Index] {
			best = s
		}
	}
	if best != nil {
		p.current[best.Index] -= total
	}
	return best
}
