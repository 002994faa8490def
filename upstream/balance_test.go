package upstream

import (
	"net"
	"testing"
	"time"
)

func testGroup(t *testing.T, balance string, weights []int, backup []bool) *Group {
	t.Helper()
	var specs []ServerSpec
	for i, w := range weights {
		specs = append(specs, ServerSpec{
			Name:   "s" + string(rune('a'+i)),
			Addr:   &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9000 + i},
			Weight: w,
			Backup: backup != nil && backup[i],
		})
	}
	g, err := NewGroup("g", specs, Settings{Balance: balance, Keepalive: 4, MaxFails: 1, FailTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRoundRobinIsSmoothAndWeighted(t *testing.T) {
	g := testGroup(t, RoundRobin, []int{5, 1, 1}, nil)
	p := NewPicker(g)
	var seq []byte
	for i := 0; i < 7; i++ {
		seq = append(seq, byte('a'+p.Pick(0, 0, 0).Index))
	}
	if string(seq) != "aabacaa" {
		t.Fatalf("5:1:1 gave %s, want nginx's smooth aabacaa", seq)
	}
}

func TestBackupOnlyWhenNoPrimaryUp(t *testing.T) {
	g := testGroup(t, RoundRobin, []int{1, 1, 1}, []bool{false, false, true})
	p := NewPicker(g)
	for i := 0; i < 10; i++ {
		if s := p.Pick(0, 0, 0); s.Backup {
			t.Fatal("backup chosen while primaries are up")
		}
	}
	if s := p.Pick(0, 0b011, 0); s != nil {
		t.Fatalf("primaries up but tried: got %s, want nil (backup reserved)", s.Name)
	}
	g.Servers[0].Fail(1)
	g.Servers[1].Fail(1)
	if s := p.Pick(2, 0, 0); s == nil || !s.Backup {
		t.Fatalf("all primaries down: got %v, want the backup", s)
	}
	if s := p.Pick(2, 0b100, 0); s != nil {
		t.Fatal("everything down or tried must give nil")
	}
	if !g.Servers[0].Up(int64(11 * time.Second)) {
		t.Fatal("server not back after fail_timeout")
	}
}

func TestMaxFailsWithinWindow(t *testing.T) {
	g := testGroup(t, RoundRobin, []int{1}, nil)
	s := g.Servers[0]
	s.maxFails = 3
	s.Fail(0)
	s.Fail(1)
	if !s.Up(2) {
		t.Fatal("down after 2 of 3 failures")
	}
	s.Fail(int64(11 * time.Second)) // the window of the first two has passed
	if !s.Up(int64(11 * time.Second)) {
		t.Fatal("failures from an old window counted")
	}
	s.Fail(int64(11*time.Second) + 1)
	s.Fail(int64(11*time.Second) + 2)
	if s.Up(int64(11*time.Second) + 3) {
		t.Fatal("3 failures within fail_timeout did not mark the server down")
	}
}

func TestLeastConnPrefersFewestInFlight(t *testing.T) {
	g := testGroup(t, LeastConn, []int{1, 1, 1}, nil)
	p := NewPicker(g)
	g.Servers[0].Begin()
	g.Servers[0].Begin()
	g.Servers[2].Begin()
	if s := p.Pick(0, 0, 0); s.Index != 1 {
		t.Fatalf("picked %s, want the idle server sb", s.Name)
	}
	g.Servers[1].Begin()
	g.Servers[1].Begin()
	if s := p.Pick(0, 0, 0); s.Index != 2 {
		t.Fatalf("picked %s, want sc with one in flight", s.Name)
	}
	// Ties rotate rather than always taking the first.
	h := testGroup(t, LeastConn, []int{1, 1}, nil)
	hp := NewPicker(h)
	a, b := hp.Pick(0, 0, 0), hp.Pick(0, 0, 0)
	if a == b {
		t.Fatal("idle servers with equal load were not rotated")
	}
}

func TestIPHashIsStickyWhileUp(t *testing.T) {
	g := testGroup(t, IPHash, []int{1, 1, 1, 1}, nil)
	p := NewPicker(g)
	first := map[uint32]int{}
	spread := map[int]bool{}
	for key := uint32(1); key < 200; key++ {
		s := p.Pick(0, 0, key*2654435761)
		first[key] = s.Index
		spread[s.Index] = true
	}
	if len(spread) < 3 {
		t.Fatalf("200 clients landed on %d servers", len(spread))
	}
	for key, idx := range first {
		if s := p.Pick(0, 0, key*2654435761); s.Index != idx {
			t.Fatalf("client %d moved from %d to %d", key, idx, s.Index)
		}
	}
	g.Servers[0].Fail(1)
	for key, idx := range first {
		s := p.Pick(2, 0, key*2654435761)
		if s.Index == 0 {
			t.Fatal("down server chosen")
		}
		if idx != 0 && s.Index != idx {
			t.Fatalf("client %d of a healthy server moved when another went down", key)
		}
	}
}

func TestP2CAvoidsTheLoadedServer(t *testing.T) {
	g := testGroup(t, P2C, []int{1, 1}, nil)
	p := NewPicker(g)
	for i := 0; i < 10; i++ {
		g.Servers[0].Begin()
	}
	for i := 0; i < 50; i++ {
		if s := p.Pick(0, 0, 0); s.Index != 1 {
			t.Fatal("p2c chose the loaded server over the idle one")
		}
	}
}

func TestIdlePoolLIFOAndLimit(t *testing.T) {
	p := NewIdlePool[int](2, 2)
	if !p.Put(0, 1) || !p.Put(0, 2) || p.Put(0, 3) {
		t.Fatal("keepalive limit not honoured")
	}
	if !p.Remove(0, 1) || p.Remove(0, 1) {
		t.Fatal("Remove")
	}
	if c, ok := p.Get(0); !ok || c != 2 {
		t.Fatalf("Get = %d,%v", c, ok)
	}
	if _, ok := p.Get(0); ok || p.Len() != 0 {
		t.Fatal("pool not empty")
	}
}
