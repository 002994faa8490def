// The admin listener's side of the engine: the snapshot it serves (/metrics, /status) and its start and
// stop.

package engine

import (
	"fmt"
	"switchflow/admin"
	"switchflow/config"
	"time"
)

// Draining reports whether a graceful stop has begun (admin.Source).
func (s *Server) Draining() bool { return s.draining.Load() }

// AdminAddr is the admin listener's address, or nil when [admin] is absent or Serve has not bound it.
func (s *Server) AdminAddr() string {
	if a := s.adminLn.Load(); a != nil {
		return a.Addr().String()
	}
	return ""
}

// Snapshot sums every loop's figures for the admin listener (admin.Source). Safe from any goroutine.
func (s *Server) Snapshot() *admin.Snapshot {
	t := s.tbl.Load()
	ids := s.bindStats(t)
	snap := &admin.Snapshot{Draining: s.draining.Load(), Loops: s.nloops}
	snap.AccessLog.Enabled = s.alog != nil
	snap.Clients.AcceptErrors = s.fds.accepts.Load()

	routes := make([]admin.Classes, ids.nRoutes)
	servers := make([]struct {
		req        admin.Classes
		open, idle int64
	}, ids.nServers)
	var dur [len(durationBounds) + 1]uint64
	var durSum int64
	var open, idle int64
	s.loops.Range(func(_, v any) bool {
		ls := v.(*loopState)
		st := &ls.st
		for i := range st.dur {
			dur[i] += st.dur[i].Load()
		}
		durSum += st.durSum.Load()
		snap.Bytes.Received += st.bytesIn.Load()
		snap.Bytes.Sent += st.bytesOut.Load()
		snap.Clients.Refused += st.refused.Load()
		snap.AccessLog.Dropped += st.logDropped.Load()
		open += ls.clientsOpen.Load()
		idle += st.clientsIdle.Load()
		snap.Cache.Hits += ls.shard.Hits.Load()
		snap.Cache.Misses += ls.shard.Misses.Load()
		snap.Cache.Bypasses += ls.shard.Bypasses.Load()
		c := ls.ctrPub.Load()
		if c == nil {
			return true
		}
		for i := 0; i < len(c.routes) && i < len(routes); i++ {
			for k := range c.routes[i] {
				routes[i][k] += c.routes[i][k].Load()
			}
		}
		for i := 0; i < len(c.servers) && i < len(servers); i++ {
			sc := &c.servers[i]
			for k := range sc.req {
				servers[i].req[k] += sc.req[k].Load()
			}
			servers[i].open += sc.open.Load()
			servers[i].idle += sc.idle.Load()
		}
		return true
	})
	idle = min(max(idle, 0), open)
	snap.Clients.Active, snap.Clients.Idle = open-idle, idle

	snap.Duration.Bounds = durationBounds[:]
	snap.Duration.Counts = dur[:]
	for _, n := range dur {
		snap.Duration.Count += n
	}
	snap.Duration.Sum = float64(durSum) / 1e9

	for _, rt := range t.routeList() {
		snap.Routes = append(snap.Routes, admin.Route{
			Name: rt.name, Upstream: t.groups[rt.group].Name, Requests: routes[ids.route[rt.index]],
		})
	}
	snap.Routes = append(snap.Routes, admin.Route{Name: "none", Requests: routes[0]})

	now := s.monoNow()
	for gi, g := range t.groups {
		u := admin.Upstream{Name: g.Name}
		for si, srv := range g.Servers {
			sc := servers[ids.server[gi][si]]
			up := srv.Up(now)
			state := "up"
			if !up {
				state = "down"
			}
			as := admin.Server{
				Name: srv.Name, Addr: srv.Addr.String(), Up: up, State: state, InFlight: srv.InFlight(),
				Weight: srv.Weight, Backup: srv.Backup,
				ConnsOpen: max(sc.open, 0), ConnsIdle: max(sc.idle, 0), Requests: sc.req,
			}
			if !up {
				h := srv.Health(now)
				as.DownBy, as.DownReason = h.DownBy, h.DownReason
				if !h.DownSince.IsZero() {
					as.DownSince = h.DownSince.UTC().Format(time.RFC3339Nano)
				}
			}
			u.Servers = append(u.Servers, as)
		}
		snap.Upstreams = append(snap.Upstreams, u)
	}

	snap.Reloads = s.reloadSnapshot()
	snap.Cache.Evictions = s.cache.Evictions.Load()
	snap.Cache.Bytes = s.cache.Bytes()
	snap.Cache.Entries = s.cache.Len()
	s.tlsSnapshot(snap) // tls.go
	return snap
}

// startAdmin binds the [admin] listener and starts the access log's writer, for Serve.
func (s *Server) startAdmin() error {
	if s.cfg.Admin != nil {
		ln, err := s.listenTCP(adminInherited, s.cfg.Admin.Listen) // handover.go
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		s.adminSock = ln
		s.adminLn.Store(admin.Serve(ln, s))
	}
	if s.alog != nil {
		s.alog.start()
	}
	return nil
}

// stopAdmin closes the admin listener and writes out the access log, once the loops have stopped.
func (s *Server) stopAdmin() {
	if a := s.adminLn.Swap(nil); a != nil {
		a.Close()
	}
	if s.alog != nil {
		s.loops.Range(func(_, v any) bool {
			ls := v.(*loopState)
			ls.alog.flush(&ls.st)
			return true
		})
		s.alog.close()
	}
}

func adminListen(cfg *config.Config) string {
	if cfg.Admin == nil {
		return ""
	}
	return cfg.Admin.Listen
}
