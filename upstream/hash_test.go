package upstream

import (
	"io"
	"log/slog"
	"math"
	"testing"
	"time"
)

const hashKeys = 100000

// keyOf is the 64-bit hash the engine would hand PickKey for the k-th key.
func keyOf(k int) uint64 { return uint64(k)*0x9E3779B97F4A7C15 + 12345 }

func TestHashMovedFractionWhenOneOfNJoins(t *testing.T) {
	for _, n := range []int{3, 5, 10} {
		before := NewPicker(hashServers(t, n-1, equalWeight))
		after := NewPicker(hashServers(t, n, equalWeight))
		moved, movedElsewhere := 0, 0
		for k := 0; k < hashKeys; k++ {
			a, b := before.PickKey(1, 0, 0, keyOf(k)), after.PickKey(1, 0, 0, keyOf(k))
			if a.Name != b.Name {
				moved++
				if b.Index != n-1 {
					movedElsewhere++ // a key that moved between two old servers
				}
			}
		}
		frac, ideal := float64(moved)/hashKeys, 1/float64(n)
		t.Logf("N=%d: %.4f of the keys moved (ideal %.4f), %d between old servers", n, frac, ideal, movedElsewhere)
		if math.Abs(frac-ideal) > ideal*0.25 {
			t.Errorf("N=%d: %.4f of the keys moved when one server joined, want %.4f ± 25 %%", n, frac, ideal)
		}
		if float64(movedElsewhere) > 0.02*hashKeys {
			t.Errorf("N=%d: %d keys moved between servers that were there before", n, movedElsewhere)
		}
	}
}

func TestHashWeightedSharesWithin5Percent(t *testing.T) {
	for _, n := range []int{3, 5, 10} {
		g := hashServers(t, n, mixedWeight)
		p := NewPicker(g)
		counts := make([]int, n)
		for k := 0; k < hashKeys; k++ {
			counts[p.PickKey(1, 0, 0, keyOf(k)).Index]++
		}
		total := 0
		for _, s := range g.Servers {
			total += s.Weight
		}
		for i, s := range g.Servers {
			want := float64(hashKeys) * float64(s.Weight) / float64(total)
			if e := math.Abs(float64(counts[i])-want) / want; e > 0.05 {
				t.Errorf("N=%d: server %d (weight %d) got %d keys, want %.0f ± 5 %% (off by %.1f %%)", n, i, s.Weight, counts[i], want, e*100)
			}
		}
	}
}

// The mapping depends on the servers' addresses, not their order or the loop: every loop, and every
// process of a tier configured with the same servers, sends a key to the same server.
func TestHashSameKeySameServer(t *testing.T) {
	g := hashServers(t, 6, mixedWeight)
	var specs []ServerSpec
	for i := len(g.Servers) - 1; i >= 0; i-- {
		s := g.Servers[i]
		specs = append(specs, ServerSpec{Name: s.Name, Addr: s.Addr, Weight: s.Weight})
	}
	reversed, err := NewGroup("g", specs, Settings{Balance: Hash, MaxFails: 1, FailTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p1, p2, p3 := NewPicker(g), NewPicker(g), NewPicker(reversed)
	for k := 0; k < 10000; k++ {
		a := p1.PickKey(1, 0, 0, keyOf(k))
		for rep := 0; rep < 3; rep++ {
			if b := p2.PickKey(int64(rep+1), 0, 0, keyOf(k)); b != a {
				t.Fatalf("key %d: %s then %s", k, a.Name, b.Name)
			}
		}
		if c := p3.PickKey(1, 0, 0, keyOf(k)); c.Name != a.Name {
			t.Fatalf("key %d: %s in one process, %s in one with the servers listed in another order", k, a.Name, c.Name)
		}
	}
}

func TestHashDownServerKeysMoveAndComeBack(t *testing.T) {
	g := hashServers(t, 5, equalWeight)
	p := NewPicker(g)
	first := make([]*Server, 20000)
	for k := range first {
		first[k] = p.PickKey(1, 0, 0, keyOf(k))
	}
	g.Servers[2].Fail(1) // max_fails 1: down for fail_timeout (10 s)
	now := int64(2)
	spread := map[int]int{}
	for k, was := range first {
		s := p.PickKey(now, 0, 0, keyOf(k))
		switch {
		case s == g.Servers[2]:
			t.Fatal("a down server was picked")
		case was != g.Servers[2] && s != was:
			t.Fatalf("key %d of an up server moved from %s to %s", k, was.Name, s.Name)
		case was == g.Servers[2]:
			spread[s.Index]++
		}
	}
	if len(spread) != 4 {
		t.Errorf("the down server's keys went to %d servers, want all 4 others: %v", len(spread), spread)
	}
	// Back up after fail_timeout: every key is where it was.
	now = int64(11 * time.Second)
	for k, was := range first {
		if s := p.PickKey(now, 0, 0, keyOf(k)); s != was {
			t.Fatalf("key %d: %s after the server came back, %s before it went down", k, s.Name, was.Name)
		}
	}
}

func TestHashRetrySkipsTried(t *testing.T) {
	g := testGroup(t, Hash, []int{1, 1, 1}, []bool{false, false, true})
	p := NewPicker(g)
	for k := 0; k < 1000; k++ {
		a := p.PickKey(1, 0, 0, keyOf(k))
		if a.Backup {
			t.Fatal("backup chosen while primaries are up")
		}
		b := p.PickKey(1, 1<<uint(a.Index), 0, keyOf(k))
		if b == nil || b == a || b.Backup {
			t.Fatalf("retry of key %d after %s gave %v, want the other primary", k, a.Name, b)
		}
		if c := p.PickKey(1, 0b011, 0, keyOf(k)); c != nil {
			t.Fatalf("primaries up but tried: got %s, want nil (backup reserved)", c.Name)
		}
	}
}

func TestHashBackupsOnlyWhenNoPrimaryUp(t *testing.T) {
	g := testGroup(t, Hash, []int{1, 1, 1, 1}, []bool{false, false, true, true})
	p := NewPicker(g)
	g.Servers[0].Fail(1)
	if s := p.PickKey(2, 0, 0, keyOf(1)); s != g.Servers[1] {
		t.Fatalf("one primary down: got %v, want the other primary", s)
	}
	g.Servers[1].Fail(1)
	seen := map[int]bool{}
	for k := 0; k < 1000; k++ {
		s := p.PickKey(2, 0, 0, keyOf(k))
		if s == nil || !s.Backup {
			t.Fatalf("all primaries down: got %v, want a backup", s)
		}
		if again := p.PickKey(3, 0, 0, keyOf(k)); again != s {
			t.Fatal("a key moved between backups")
		}
		seen[s.Index] = true
	}
	if len(seen) != 2 {
		t.Fatalf("keys hashed over %d backups, want both", len(seen))
	}
	if s := p.PickKey(2, 0b1100, 0, keyOf(1)); s != nil {
		t.Fatal("everything down or tried must give nil")
	}
}

func TestHashPickDoesNotAllocate(t *testing.T) {
	g := hashServers(t, 10, mixedWeight)
	g.SlowStart = 10 * time.Second
	p := NewPicker(g)
	g.Servers[3].Fail(1)
	g.Servers[4].cameUp(int64(time.Second)) // ramping: some keys probe further
	k := 0
	if n := testing.AllocsPerRun(1000, func() {
		k++
		p.PickKey(int64(2*time.Second), uint64(k&1), 0, keyOf(k))
	}); n != 0 {
		t.Fatalf("hash pick: %v allocations", n)
	}
}

// A server coming back up with slow_start takes a share that grows from 1/20 of its weight to all of
// it; the clock is Pick's now.
func TestSlowStartRampsShareRoundRobin(t *testing.T) {
	for _, balance := range []string{RoundRobin, LeastConn, P2C} {
		g := testGroup(t, balance, []int{1, 1}, nil)
		g.SlowStart = 10 * time.Second
		p := NewPicker(g)
		up := int64(10 * time.Second) // Fail at 0 with fail_timeout 10 s: back up at 10 s
		g.Servers[1].Fail(0)
		share := func(now int64) float64 {
			n := 0
			for i := 0; i < 10000; i++ {
				s := p.Pick(now, 0, 0)
				if s.Index == 1 {
					n++
				}
				if balance != RoundRobin {
					// least_conn and p2c balance requests in flight: hold each for a while.
					s.Begin()
					if i%20 == 19 {
						g.Servers[0].inFlight.Store(0)
						g.Servers[1].inFlight.Store(0)
					}
				}
			}
			g.Servers[0].inFlight.Store(0)
			g.Servers[1].inFlight.Store(0)
			return float64(n) / 10000
		}
		for _, c := range []struct {
			at   int64
			want float64 // server 1's share: w1/(w0+w1) with w1 ramped
		}{
			{up - 1, 0},
			{up, 0.05 / 1.05},
			{up + int64(5*time.Second), 0.5 / 1.5},
			{up + int64(10*time.Second), 0.5},
			{up + int64(time.Hour), 0.5},
		} {
			got := share(c.at)
			tol := 0.02
			if balance == P2C {
				tol = 0.08 // random choices
			}
			if math.Abs(got-c.want) > tol {
				t.Errorf("%s at %v after coming up: share %.3f, want %.3f", balance, time.Duration(c.at-up), got, c.want)
			}
		}
	}
}

func TestSlowStartOffAtStart(t *testing.T) {
	g := testGroup(t, RoundRobin, []int{1, 1}, nil)
	g.SlowStart = time.Minute
	p := NewPicker(g)
	n := 0
	for i := 0; i < 1000; i++ {
		if p.Pick(1, 0, 0).Index == 1 {
			n++
		}
	}
	if n != 500 {
		t.Fatalf("a fresh start ramped: server 1 took %d of 1000", n)
	}
}

// A server that comes back up by its health checks, or joins in a reload, ramps too.
func TestSlowStartAfterActiveUpAndJoin(t *testing.T) {
	g := testGroup(t, RoundRobin, []int{1}, nil)
	specs := []ServerSpec{
		{Name: "sa", Addr: testAddr(0), Weight: 1},
		{Name: "new", Addr: testAddr(1), Weight: 1},
	}
	g2, err := NewGroup("g", specs, Settings{Balance: Hash, SlowStart: 10 * time.Second, MaxFails: 1, FailTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := int64(time.Hour)
	g2.KeepHealthAt(g, now, true)
	p := NewPicker(g2)
	count := func(at int64) int {
		n := 0
		for k := 0; k < hashKeys; k++ {
			if p.PickKey(at, 0, 0, keyOf(k)).Name == "new" {
				n++
			}
		}
		return n
	}
	full := count(now + int64(time.Minute))
	for _, c := range []struct {
		after time.Duration
		want  float64
	}{{0, 0.05}, {5 * time.Second, 0.5}, {10 * time.Second, 1}} {
		got := float64(count(now+int64(c.after))) / float64(full)
		if math.Abs(got-c.want) > 0.02 {
			t.Errorf("joined %v ago: %.3f of its keys, want %.2f", c.after, got, c.want)
		}
	}
	// A key admitted during the ramp stays admitted as the ramp grows (caches behind warm up in order).
	for k := 0; k < 1000; k++ {
		early := p.PickKey(now+int64(2*time.Second), 0, 0, keyOf(k))
		if early.Name == "new" && p.PickKey(now+int64(7*time.Second), 0, 0, keyOf(k)).Name != "new" {
			t.Fatal("a key left the ramping server as its share grew")
		}
	}

	// Active: the checker's rise brings a server up at its clock, and the ramp starts there.
	s := g2.Servers[0]
	s.activeDown.Store(true)
	c := &Checker{now: func() int64 { return now }, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	hs := &HealthSettings{Rise: 1, Fall: 1}
	c.record(&Group{Name: "g", Health: hs}, s, &serverCheck{}, "")
	if num, den := s.ramp(now, int64(10*time.Second)); num*20 != den {
		t.Fatalf("just up by health checks: ramp %d/%d, want 1/20", num, den)
	}
}
