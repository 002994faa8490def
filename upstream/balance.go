package upstream

// Balancing policies (SPEC 3.5).
const (
	RoundRobin = "round_robin"
	LeastConn  = "least_conn"
	IPHash     = "ip_hash"
	P2C        = "p2c"
)

// Picker chooses servers of one Group for one event loop (loop only). Each loop keeps its own smooth
// weighted round-robin state and random source, as nginx's ngx_http_upstream_round_robin does per worker:
// no lock and no shared cache line on the request path, and over many requests every loop honours the
// weights. least_conn and p2c read the servers' shared in-flight counters.
type Picker struct {
	g       *Group
	current []int  // smooth weighted round-robin state, one entry per server
	rng     uint64 // xorshift state for p2c
}

// NewPicker returns a Picker for g, to be used by one loop only.
func NewPicker(g *Group) *Picker {
	return &Picker{g: g, current: make([]int, len(g.Servers)), rng: 0x9E3779B97F4A7C15}
}

// Pick returns the server for a request at now, skipping those in tried (bit i = server i) and those
// marked down. key is a hash of the client address, used by ip_hash. Backup servers are chosen only while
// no primary server is up. It returns nil when no server is left. Pick never allocates, but for the
// "no server up" line it writes at most once a second when nothing was tried and nothing is up.
func (p *Picker) Pick(now int64, tried uint64, key uint32) *Server {
	return p.PickKey(now, tried, key, uint64(key))
}

// PickKey is Pick with the 64-bit hash of the request's hash_key too, for balance = "hash" (the other
// policies ignore it).
func (p *Picker) PickKey(now int64, tried uint64, key uint32, keyHash uint64) *Server {
	if len(p.g.Servers) == 1 {
		// A group of one (nginx's peers->single): every policy picks it while it is up and untried.
		if s := p.g.Servers[0]; tried&1 == 0 && s.Up(now) {
			return s
		}
	}
	if s := p.pickPolicy(now, tried, key, keyHash, false); s != nil {
		return s
	}
	if p.primaryUp(now) {
		// Primaries are up but all were tried: backups stay reserved for "no other server is up".
		return nil
	}
	s := p.pickPolicy(now, tried, key, keyHash, true)
	if s == nil && tried == 0 {
		p.g.NoneUp(now) // nothing tried and nothing up: the request gets 503
	}
	return s
}

func (p *Picker) pickPolicy(now int64, tried uint64, key uint32, keyHash uint64, backup bool) *Server {
	switch p.g.Balance {
	case Hash:
		return p.hash(now, tried, Mix64(keyHash), backup)
	case LeastConn:
		return p.leastConn(now, tried, backup)
	case IPHash:
		if s := p.ipHash(now, tried, key, backup); s != nil {
			return s
		}
	case P2C:
		return p.p2c(now, tried, backup)
	}
	return p.pick(now, tried, backup)
}

func (p *Picker) eligible(s *Server, now int64, tried uint64, backup bool) bool {
	return s.Backup == backup && tried&(1<<uint(s.Index)) == 0 && s.Up(now)
}

// leastConn picks the server with the fewest requests in flight per unit of weight; ties go to smooth
// round robin order so that an idle group still spreads requests.
func (p *Picker) leastConn(now int64, tried uint64, backup bool) *Server {
	var best *Server
	var bestLoad, bestW int64
	ties := false
	for _, s := range p.g.Servers {
		if !p.eligible(s, now, tried, backup) {
			continue
		}
		// Compare inFlight/weight without division: a/wa < b/wb  <=>  a*wb < b*wa.
		load, w := s.InFlight(), p.weight(s, now)
		switch {
		case best == nil || load*bestW < bestLoad*w:
			best, bestLoad, bestW, ties = s, load, w, false
		case load*bestW == bestLoad*w:
			ties = true
		}
	}
	if best == nil || !ties {
		return best
	}
	// Among the least loaded, let round robin choose.
	var mask uint64
	for _, s := range p.g.Servers {
		if p.eligible(s, now, tried, backup) && s.InFlight()*bestW != bestLoad*p.weight(s, now) {
			mask |= 1 << uint(s.Index)
		}
	}
	if s := p.pick(now, tried|mask, backup); s != nil {
		return s
	}
	return best
}

// ipHash keeps a client address on one server while it is up: the server is chosen from the address hash
// over the full server list (weights repeat a server), so the mapping does not move when another server
// goes down; only clients of a down or already tried server are rehashed, as nginx does, up to 20 times,
// before falling back to round robin.
func (p *Picker) ipHash(now int64, tried uint64, key uint32, backup bool) *Server {
	total := 0
	for _, s := range p.g.Servers {
		if s.Backup == backup {
			total += s.Weight
		}
	}
	if total == 0 {
		return nil
	}
	h := key
	for i := 0; i < 20; i++ {
		w := int(h % uint32(total))
		for _, s := range p.g.Servers {
			if s.Backup != backup {
				continue
			}
			if w < s.Weight {
				if p.eligible(s, now, tried, backup) {
					return s
				}
				break
			}
			w -= s.Weight
		}
		h = h*113 + 6271 // nginx's rehash step
	}
	return nil
}

// p2c is the power of two choices: two random eligible servers, the less loaded (per weight) wins.
func (p *Picker) p2c(now int64, tried uint64, backup bool) *Server {
	var cand [MaxServers]*Server
	n := 0
	for _, s := range p.g.Servers {
		if p.eligible(s, now, tried, backup) {
			cand[n] = s
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case 1:
		return cand[0]
	}
	i := int(p.next() % uint64(n))
	j := int(p.next() % uint64(n-1))
	if j >= i {
		j++
	}
	a, b := cand[i], cand[j]
	if b.InFlight()*p.weight(a, now) < a.InFlight()*p.weight(b, now) {
		return b
	}
	return a
}

func (p *Picker) next() uint64 {
	x := p.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	p.rng = x
	return x
}

// weight is s's weight at now for the weighted policies: its configured weight, or with slow_start the
// share of it its ramp has reached (Server.ramp), in thousandths of a weight, as all of them then are.
func (p *Picker) weight(s *Server, now int64) int64 {
	slow := int64(p.g.SlowStart)
	if slow <= 0 {
		return int64(s.Weight)
	}
	num, den := s.ramp(now, slow)
	return int64(s.Weight) * (num * rampUnit / den)
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
		if !p.eligible(s, now, tried, backup) {
			continue
		}
		w := int(p.weight(s, now))
		p.current[i] += w
		total += w
		if best == nil || p.current[i] > p.current[best.Index] {
			best = s
		}
	}
	if best != nil {
		p.current[best.Index] -= total
	}
	return best
}
