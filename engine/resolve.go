// Upstreams that follow DNS (resolve; SPEC 2, 3.5 and 5). One goroutine per Server, from Serve to its
// end, looks the followed names up again every resolve (through [resolver] servers or the system's
// resolver, lookup.Resolver), never on an event loop. When a name's addresses change it builds a new
// table from the live one's configuration and the new answers and swaps it in as a reload does
// (swapTable): addresses that appear join (slow_start ramps them up), addresses that go away take no
// new requests, their requests in flight finish on the old table, and their idle connections are
// closed as each loop moves to the new table (loopState.current). A failed lookup, an empty answer
// included, keeps the last good answer; it is logged once per streak of failures.

package engine

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"switchflow/config"
	"switchflow/lookup"
)

// maxLookupWait bounds one lookup beyond resolve: the Go resolver's own attempts (resolv.conf's timeout
// and attempts) may take longer, and a lookup that hangs must not hold the names behind it.
const maxLookupWait = 10 * time.Second

// resolverLoop is the goroutine that looks the followed names up. Its methods are safe on a nil
// *resolverLoop (no Serve running) and do nothing there.
type resolverLoop struct {
	s     *Server
	kickc chan struct{} // a reload may have changed the names, their resolve or [resolver]
	stopc chan struct{}
	done  chan struct{}
	ctx   context.Context // ended by stopAndWait: a lookup in flight ends with it
	stop  context.CancelFunc
}

// startResolver starts the goroutine. It costs nothing while no upstream follows a name: it waits for
// a reload that brings one.
func startResolver(s *Server) *resolverLoop {
	r := &resolverLoop{s: s, kickc: make(chan struct{}, 1), stopc: make(chan struct{}), done: make(chan struct{})}
	r.ctx, r.stop = context.WithCancel(context.Background())
	go r.run()
	return r
}

// kick makes the goroutine read the live table's names and intervals again. It never blocks.
func (r *resolverLoop) kick() {
	if r == nil {
		return
	}
	select {
	case r.kickc <- struct{}{}:
	default:
	}
}

// stopAndWait stops the goroutine and waits for it, a lookup in flight included (bounded by its wait).
func (r *resolverLoop) stopAndWait() {
	if r == nil {
		return
	}
	r.stop()
	close(r.stopc)
	<-r.done
}

// followedNames returns each name that cfg's upstreams follow, with how often it is looked up: the
// shortest resolve among the upstreams that follow it.
func followedNames(cfg *config.Config) map[string]time.Duration {
	every := map[string]time.Duration{}
	for _, u := range cfg.Upstreams {
		for _, s := range u.Servers {
			if s.Follow {
				if d, ok := every[s.Host]; !ok || u.Resolve < d {
					every[s.Host] = u.Resolve
				}
			}
		}
	}
	return every
}

func (r *resolverLoop) run() {
	defer close(r.done)
	next := map[string]time.Time{} // by name: when it is looked up next
	failing := map[string]bool{}   // by name: a failed lookup was logged, and no lookup has worked since
	var lr *lookup.Resolver
	var lrServers []string
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		live := r.s.tbl.Load()
		if lr == nil || !slices.Equal(lrServers, live.cfg.ResolverServers()) {
			lrServers = live.cfg.ResolverServers()
			lr = lookup.New(lrServers)
		}
		every := followedNames(live.cfg)
		now := time.Now()
		for h := range next {
			if _, ok := every[h]; !ok {
				delete(next, h)
				delete(failing, h)
			}
		}
		for h, d := range every {
			if at, ok := next[h]; !ok || at.After(now.Add(d)) {
				// New (at start or from a reload, whose check has just looked it up) or looked up more
				// often now: its next lookup is one interval away.
				next[h] = now.Add(d)
			}
			if len(live.answers[h]) == 0 {
				failing[h] = true // never resolved: said at start, or by the reload, in the file's warnings
			}
		}
		fresh := map[string][]netip.Addr{}
		for h, at := range next {
			if now.Before(at) {
				continue
			}
			addrs, err := r.lookup(lr, h, every[h])
			if r.ctx.Err() != nil {
				return // stopping: the lookup was cut short, not failed
			}
			next[h] = time.Now().Add(every[h])
			if err != nil {
				if !failing[h] {
					failing[h] = true
					r.s.log.Warn("upstream name lookup failed; its last good addresses stay until one works",
						"host", h, "error", err.Error(), "addresses", addrList(live.answers[h]), "every", every[h].String())
				}
				continue
			}
			if failing[h] {
				delete(failing, h)
				r.s.log.Info("upstream name resolves again", "host", h, "addresses", addrList(addrs))
			}
			fresh[h] = addrs
		}
		if len(fresh) > 0 {
			r.s.applyAnswers(fresh)
		}
		if first, ok := earliest(next); ok {
			timer.Reset(max(time.Until(first), time.Millisecond))
		} else {
			timer.Stop() // nothing to look up until a reload brings a name
		}
		select {
		case <-timer.C:
		case <-r.kickc:
		case <-r.stopc:
			return
		}
	}
}

// lookup looks host up, bounded by its interval (at most maxLookupWait) and by the loop's stop.
func (r *resolverLoop) lookup(lr *lookup.Resolver, host string, every time.Duration) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(r.ctx, min(every, maxLookupWait))
	defer cancel()
	return lr.Addrs(ctx, host)
}

func earliest(next map[string]time.Time) (time.Time, bool) {
	var first time.Time
	for _, at := range next {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// applyAnswers swaps in a table built from the live one's configuration and fresh's answers, if any of
// them differs from what the live table was built with, and logs each name whose addresses changed.
// Answers for names the live table no longer follows (a reload came between) are dropped.
func (s *Server) applyAnswers(fresh map[string][]netip.Addr) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	live := s.tbl.Load()
	answers := maps.Clone(live.answers)
	changed := false
	for h, addrs := range fresh {
		old, followed := live.answers[h]
		if !followed || slices.Equal(old, addrs) {
			continue
		}
		changed = true
		answers[h] = addrs
		s.log.Info("upstream name has other addresses; its servers follow", "host", h,
			"addresses", addrList(addrs), "joined", addrList(without(addrs, old)), "left", addrList(without(old, addrs)))
	}
	if !changed {
		return
	}
	t, err := newTable(live.cfg, s.log, answers)
	if err != nil {
		s.log.Error("cannot build the servers of the new addresses; the current ones stay", "error", err)
		return
	}
	s.swapTable(t)
}

// without returns the addresses of a that b does not hold.
func without(a, b []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func addrList(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
