package upstream

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func transitionGroup(t *testing.T, log *slog.Logger, failTimeout time.Duration, names ...string) *Group {
	t.Helper()
	var specs []ServerSpec
	for i, n := range names {
		specs = append(specs, ServerSpec{Name: n, Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1 + i}})
	}
	g, err := NewGroup("app", specs, Settings{Balance: RoundRobin, MaxFails: 2, FailTimeout: failTimeout, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestPassiveTransitionsLoggedOnce: max_fails marks a server down with one log line that names its
// upstream and why, however often it fails afterwards; /status's view has the reason and the time; the
// end of fail_timeout is logged once, by the checker's watch, without any request.
func TestPassiveTransitionsLoggedOnce(t *testing.T) {
	old := watchEvery
	watchEvery = 10 * time.Millisecond
	defer func() { watchEvery = old }()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	g := transitionGroup(t, log, 300*time.Millisecond, "a:1", "b:2")
	s := g.Servers[0]
	before := time.Now()
	s.Fail(testClock())
	if strings.Contains(logs.String(), "down") {
		t.Fatalf("one failure of max_fails 2 logged:\n%s", logs.String())
	}
	for i := 0; i < 10; i++ {
		s.Fail(testClock())
	}
	if n := strings.Count(logs.String(), "upstream server down"); n != 1 {
		t.Fatalf("%d down lines, want 1:\n%s", n, logs.String())
	}
	for _, want := range []string{"upstream=app", "server=a:1", "by=passive", `reason="2 failed attempts within fail_timeout 300ms (max_fails)"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("down line lacks %s:\n%s", want, logs.String())
		}
	}
	h := s.Health(testClock())
	if h.Up || h.DownBy != "passive" || !strings.Contains(h.DownReason, "max_fails") || h.DownSince.Before(before) || h.DownSince.After(time.Now()) {
		t.Fatalf("health while down: %+v", h)
	}
	c := StartChecker([]*Group{g}, testClock, log)
	defer c.Stop()
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(logs.String(), "upstream server up") {
		if time.Now().After(deadline) {
			t.Fatalf("the end of fail_timeout was never logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a few more watch rounds: still one line
	if n := strings.Count(logs.String(), "upstream server up"); n != 1 || !strings.Contains(logs.String(), `reason="fail_timeout 300ms passed"`) {
		t.Fatalf("up lines: %d\n%s", n, logs.String())
	}
	if h := s.Health(testClock()); !h.Up || h.DownReason != "" || !h.DownSince.IsZero() {
		t.Fatalf("health after fail_timeout: %+v", h)
	}
	// The next stretch of down is logged again.
	s.Fail(testClock())
	s.Fail(testClock())
	if n := strings.Count(logs.String(), "upstream server down"); n != 2 {
		t.Fatalf("second down: %d lines\n%s", n, logs.String())
	}
}

// TestNoneUpLoggedOncePerSecond: requests that find no server up leave a line, at most one a second per
// upstream, naming each server's reason.
func TestNoneUpLoggedOncePerSecond(t *testing.T) {
	var logs syncBuffer
	g := transitionGroup(t, slog.New(slog.NewTextHandler(&logs, nil)), 10*time.Second, "a:1", "b:2")
	now := testClock()
	for _, s := range g.Servers {
		s.Fail(now)
		s.Fail(now)
	}
	p := NewPicker(g)
	for i := 0; i < 100; i++ {
		if s := p.Pick(now+int64(i)*int64(time.Millisecond), 0, 0); s != nil {
			t.Fatalf("picked %s with every server down", s.Name)
		}
	}
	if n := strings.Count(logs.String(), "no server up"); n != 1 {
		t.Fatalf("%d lines in 100ms, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "a:1: 2 failed attempts") || !strings.Contains(logs.String(), "upstream=app") {
		t.Fatalf("line lacks the servers' reasons:\n%s", logs.String())
	}
	// A retry that found every other server tried is a 502, not "no server up".
	p.Pick(now+int64(2*time.Second), 1, 0)
	if n := strings.Count(logs.String(), "no server up"); n != 1 {
		t.Fatalf("a retry logged no server up:\n%s", logs.String())
	}
	p.Pick(now+int64(2*time.Second), 0, 0)
	if n := strings.Count(logs.String(), "no server up"); n != 2 {
		t.Fatalf("a second later: %d lines\n%s", n, logs.String())
	}
}

// TestKeepHealthAcrossReload: a reload's group takes over the state of the servers it keeps; a new server
// starts up.
func TestKeepHealthAcrossReload(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	old := transitionGroup(t, log, 10*time.Second, "a:1", "b:2")
	now := testClock()
	old.Servers[1].Fail(now)
	old.Servers[1].Fail(now)
	old.Servers[0].Fail(now) // one failure counted toward max_fails
	old.Servers[0].activeDown.Store(true)
	old.Servers[0].activeWhy.Store(&downInfo{reason: "3 failed health checks", since: time.Now()})

	g := transitionGroup(t, log, 10*time.Second, "b:2", "a:1", "c:3")
	g.KeepHealth(old)
	b, a, c := g.Servers[0], g.Servers[1], g.Servers[2]
	if h := b.Health(now); h.Up || h.DownBy != "passive" || !strings.Contains(h.DownReason, "max_fails") {
		t.Errorf("b after adopt: %+v", h)
	}
	if h := a.Health(now); h.Up || h.DownBy != "active" || h.DownReason != "3 failed health checks" {
		t.Errorf("a after adopt: %+v", h)
	}
	if a.fails.Load() != 1 {
		t.Errorf("a's failure count %d, want 1", a.fails.Load())
	}
	if !c.Up(now) {
		t.Error("a new server starts down")
	}
}
