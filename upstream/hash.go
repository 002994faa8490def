package upstream

import (
	"math/bits"
	"slices"
	"strings"
)

// Hash is the consistent-hash policy (balance = "hash"): the engine hashes the request's hash_key
// (HashKey) to 64 bits and the Picker maps that hash to a server through a Maglev lookup table.
const Hash = "hash"

// What hash_key names (SPEC 3.5): the request target, the client address, a header or a cookie.
const (
	KeyURI      = "uri"
	KeyClientIP = "client_ip"
	KeyHeader   = "header"
	KeyCookie   = "cookie"
)

// maglevSize is the size of a Maglev lookup table: a prime well above 100 × MaxServers, as the Maglev
// paper advises, so that each server's share of slots is within a fraction of a percent of its weight.
// One byte per slot (a server index): 64 KiB per group, built once, read by every loop.
const maglevSize = 65537

// maglevProbes bounds the further slots a key tries when its server is down, already tried or ramping
// up (slow_start); past them the key goes to the highest-scoring eligible server (rendezvous), so a
// request always finds a server while one is eligible.
const maglevProbes = 16

// The choice of Maglev (measured by BenchmarkHashPick and TestHashAlgorithmComparison, hashcmp_test.go;
// the numbers are in docs/ARCHITECTURE.md): a ring with enough points to keep weighted shares within
// 5 % costs a binary search over thousands of points per server and megabytes per group; rendezvous
// moves the fewest keys and needs no table, but costs a hash and a logarithm per server per request
// (a microsecond at 50 servers). Maglev answers in one table read whatever the number of servers, keeps
// shares within a fraction of a percent, and moves about 1/N of the keys when one of N servers joins.
//
// A key whose server is down (or tried, or still ramping up) probes further slots, each of which
// belongs to the other servers in proportion to their weights, so a down server's keys spread over the
// others and nothing else moves; they come back when it is up, since the table never changes.

// maglev is a group's lookup table for its primary servers or its backups.
type maglev struct {
	table []uint8 // slot → server index in Group.Servers; nil when the set is empty
}

// serverSeed is the 64-bit identity of a server on the hash: its address as configured, so that every
// SwitchFlow process of a tier with the same servers builds the same table, whatever their order.
func serverSeed(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	return Mix64(h)
}

// Mix64 is the splitmix64 finalizer: it spreads the bits of an FNV-1a hash, whose low bits are weak, over
// the whole word.
func Mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// newMaglev fills a table for the servers of g whose Backup is backup, each taking slots in proportion
// to its weight: every round each server earns its weight in credit and takes a slot (its next free one
// in its own permutation of the table) per maxWeight of credit.
func newMaglev(servers []*Server, backup bool) maglev {
	type perm struct {
		s            *Server
		offset, skip uint64
		next         uint64
		credit       int
	}
	var ps []perm
	maxW := 0
	for _, s := range servers {
		if s.Backup != backup {
			continue
		}
		seed := serverSeed(s.Name)
		ps = append(ps, perm{s: s, offset: seed % maglevSize, skip: Mix64(seed^0x5bd1e995)%(maglevSize-1) + 1})
		maxW = max(maxW, s.Weight)
	}
	if len(ps) == 0 {
		return maglev{}
	}
	// Fill in the order of the servers' addresses, not as listed: two processes whose configurations
	// list the same servers in another order build the same table.
	slices.SortFunc(ps, func(a, b perm) int { return strings.Compare(a.s.Name, b.s.Name) })
	const empty = 0xff
	table := make([]uint8, maglevSize)
	for i := range table {
		table[i] = empty
	}
	filled := 0
	for filled < maglevSize {
		for i := range ps {
			p := &ps[i]
			p.credit += p.s.Weight
			for p.credit >= maxW && filled < maglevSize {
				p.credit -= maxW
				for {
					c := (p.offset + p.next*p.skip) % maglevSize
					p.next++
					if table[c] == empty {
						table[c] = uint8(p.s.Index)
						filled++
						break
					}
				}
			}
		}
	}
	return maglev{table: table}
}

// hash picks the server for key among the eligible servers of the set (primaries or backups): the
// table's slot for the key, else the next probes, else the eligible server that scores highest.
func (p *Picker) hash(now int64, tried uint64, key uint64, backup bool) *Server {
	m := &p.g.maglev[0]
	if backup {
		m = &p.g.maglev[1]
	}
	if m.table == nil {
		return nil
	}
	servers := p.g.Servers
	slow := int64(p.g.SlowStart)
	h := key
	for i := 0; i <= maglevProbes; i++ {
		hi, _ := bits.Mul64(h, maglevSize) // h × M / 2⁶⁴: a slot without a division
		s := servers[m.table[hi]]
		if p.eligible(s, now, tried, backup) && (slow <= 0 || s.rampAdmits(now, slow, key)) {
			return s
		}
		h = Mix64(h + 0x9E3779B97F4A7C15)
	}
	var best *Server
	var bestScore uint64
	for _, s := range servers {
		if !p.eligible(s, now, tried, backup) {
			continue
		}
		if score := Mix64(key ^ s.seed); best == nil || score > bestScore {
			best, bestScore = s, score
		}
	}
	return best
}

// rampAdmits reports whether a key may go to s at now while s ramps up over slow (slow_start): a
// deterministic fraction of its keys, growing with the ramp, so that every process of a tier sends the
// same keys and a cache behind s warms up gradually. The others take their next probe, where they went
// while s was down.
func (s *Server) rampAdmits(now, slow int64, key uint64) bool {
	num, den := s.ramp(now, slow)
	if num >= den {
		return true
	}
	// The key's own fraction in [0, 1), against num/den.
	hi, _ := bits.Mul64(Mix64(key^s.seed), uint64(den))
	return int64(hi) < num
}
