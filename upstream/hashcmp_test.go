package upstream

import (
	"fmt"
	"math"
	"math/bits"
	"net"
	"slices"
	"testing"
)

// The measurement behind balance = "hash"'s algorithm (hash.go, docs/ARCHITECTURE.md): a ring, rendezvous
// and Maglev, each over the same servers and keys, for ns/pick, allocations, the fraction of keys moved
// when one of N servers joins, and the worst weighted share error over 100,000 keys.
//
//	go test ./upstream -run HashAlgorithmComparison -v -bench HashPick -benchmem

// hashAlgo is one candidate: built from the servers, it maps a (mixed) key to a server index.
type hashAlgo interface {
	lookup(key uint64) int
}

// ringAlgo is a consistent-hash ring (ketama's idea) with pointsPerWeight points per unit of weight,
// looked up by binary search.
type ringAlgo struct {
	hashes []uint64
	owners []uint8
}

func newRing(servers []*Server, pointsPerWeight int) *ringAlgo {
	type pt struct {
		h uint64
		o uint8
	}
	var pts []pt
	for _, s := range servers {
		for i := 0; i < s.Weight*pointsPerWeight; i++ {
			pts = append(pts, pt{Mix64(s.seed + uint64(i)*0x9E3779B97F4A7C15), uint8(s.Index)})
		}
	}
	slices.SortFunc(pts, func(a, b pt) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	r := &ringAlgo{}
	for _, p := range pts {
		r.hashes = append(r.hashes, p.h)
		r.owners = append(r.owners, p.o)
	}
	return r
}

func (r *ringAlgo) lookup(key uint64) int {
	lo, hi := 0, len(r.hashes)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.hashes[m] < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(r.hashes) {
		lo = 0
	}
	return int(r.owners[lo])
}

// rendezvousAlgo is weighted rendezvous hashing: the server with the highest -w/ln(u) wins, u the key's
// uniform hash with that server.
type rendezvousAlgo struct{ servers []*Server }

func (r *rendezvousAlgo) lookup(key uint64) int {
	best, bestScore := -1, math.Inf(-1)
	for _, s := range r.servers {
		u := (float64(Mix64(key^s.seed)>>11) + 0.5) / (1 << 53)
		if score := -float64(s.Weight) / math.Log(u); score > bestScore {
			best, bestScore = s.Index, score
		}
	}
	return best
}

type maglevAlgo struct{ m maglev }

func (a *maglevAlgo) lookup(key uint64) int {
	hi, _ := bits.Mul64(key, maglevSize)
	return int(a.m.table[hi])
}

// hashServers builds n servers named as a tier would configure them, weights from weight(i).
func hashServers(t testing.TB, n int, weight func(i int) int) *Group {
	t.Helper()
	var specs []ServerSpec
	for i := 0; i < n; i++ {
		specs = append(specs, ServerSpec{
			Name:   fmt.Sprintf("10.0.%d.%d:8080", i/200, i%200+1),
			Addr:   testAddr(i),
			Weight: weight(i),
		})
	}
	g, err := NewGroup("g", specs, Settings{Balance: Hash, Keepalive: 4, MaxFails: 1, FailTimeout: 1e10})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func candidates(g *Group) map[string]hashAlgo {
	return map[string]hashAlgo{
		"ring160":    newRing(g.Servers, 160),
		"ring1000":   newRing(g.Servers, 1000),
		"rendezvous": &rendezvousAlgo{servers: g.Servers},
		"maglev":     &maglevAlgo{m: newMaglev(g.Servers, false)},
	}
}

func equalWeight(int) int   { return 1 }
func mixedWeight(i int) int { return i%3 + 1 }

// measure reports the fraction of keys that move when server n-1 joins n-1 others, and the worst
// relative share error (|share - weight share| / weight share) of n weighted servers over keys keys.
func measure(t testing.TB, name string, n, keys int) (moved, shareErr float64) {
	before := candidates(hashServers(t, n-1, equalWeight))[name]
	after := candidates(hashServers(t, n, equalWeight))[name]
	changed := 0
	for k := 0; k < keys; k++ {
		key := Mix64(uint64(k))
		if before.lookup(key) != after.lookup(key) {
			changed++
		}
	}
	g := hashServers(t, n, mixedWeight)
	a := candidates(g)[name]
	counts := make([]int, n)
	for k := 0; k < keys; k++ {
		counts[a.lookup(Mix64(uint64(k)))]++
	}
	total := 0
	for _, s := range g.Servers {
		total += s.Weight
	}
	for i, s := range g.Servers {
		want := float64(keys) * float64(s.Weight) / float64(total)
		shareErr = max(shareErr, math.Abs(float64(counts[i])-want)/want)
	}
	return float64(changed) / float64(keys), shareErr
}

func TestHashAlgorithmComparison(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	for _, n := range []int{3, 10, 50} {
		for _, name := range []string{"ring160", "ring1000", "rendezvous", "maglev"} {
			moved, shareErr := measure(t, name, n, 100000)
			t.Logf("N=%-2d %-10s moved %.4f (ideal %.4f)  worst share error %.1f %%", n, name, moved, 1/float64(n), shareErr*100)
		}
	}
}

func BenchmarkHashPick(b *testing.B) {
	for _, n := range []int{3, 10, 50} {
		g := hashServers(b, n, mixedWeight)
		for _, name := range []string{"ring160", "ring1000", "rendezvous", "maglev"} {
			a := candidates(g)[name]
			b.Run(fmt.Sprintf("%s/N=%d", name, n), func(b *testing.B) {
				b.ReportAllocs()
				sum := 0
				for i := 0; i < b.N; i++ {
					sum += a.lookup(Mix64(uint64(i)))
				}
				_ = sum
			})
		}
		// The production path: Picker.PickKey with its health and tried checks.
		p := NewPicker(g)
		b.Run(fmt.Sprintf("picker/N=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				p.PickKey(1, 0, 0, uint64(i))
			}
		})
	}
}

func testAddr(i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9000 + i}
}
