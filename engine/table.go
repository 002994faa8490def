package engine

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"switchflow/config"
	"switchflow/upstream"
)

// table is everything a SIGHUP may change: routes, upstream groups and the per-request settings. It is
// immutable once built; a reload builds a new one and swaps the pointer, and each loop notices the swap
// at its next request (see loopState.current).
type table struct {
	cfg    *config.Config
	groups []*upstream.Group
	routes *routeTable
	// answers are the addresses of each name that an upstream follows (resolve), by host, as this
	// table's servers were built from them: the resolver compares its lookups with them (resolve.go).
	answers map[string][]netip.Addr

	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxBodySize       int64
}

// newTable builds the table of cfg; log receives its groups' health transitions. answers are the
// addresses of the names that upstreams follow (resolve), by host; a followed name that has none gives
// no servers.
func newTable(cfg *config.Config, log *slog.Logger, answers map[string][]netip.Addr) (*table, error) {
	t := &table{
		cfg:               cfg,
		readHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		idleTimeout:       cfg.Server.IdleTimeout,
		maxBodySize:       cfg.Server.MaxBodySize,
		answers:           map[string][]netip.Addr{},
	}
	index := map[string]int{}
	for i := range cfg.Upstreams {
		u := &cfg.Upstreams[i]
		specs := make([]upstream.ServerSpec, 0, len(u.Servers))
		for _, s := range u.Servers {
			if !s.Follow {
				specs = append(specs, upstream.ServerSpec{Name: s.Addr, Addr: s.TCPAddr, Weight: s.Weight, Backup: s.Backup})
				continue
			}
			addrs := answers[s.Host]
			t.answers[s.Host] = addrs
			for _, a := range addrs {
				specs = append(specs, upstream.ServerSpec{
					Name: followedName(s.Addr, a), Host: s.Addr, Weight: s.Weight, Backup: s.Backup,
					Addr: &net.TCPAddr{IP: net.IP(a.AsSlice()), Port: s.Port, Zone: a.Zone()},
				})
			}
		}
		if len(specs) > upstream.MaxServers {
			// A name with more addresses than an upstream may have servers: the first ones (sorted) serve.
			if log != nil {
				log.Warn("upstream has more addresses than it may have servers; the rest are left out",
					"upstream", u.Name, "addresses", len(specs), "max", upstream.MaxServers)
			}
			specs = specs[:upstream.MaxServers]
		}
		var health *upstream.HealthSettings
		if hc := u.HealthCheck; hc != nil {
			health = &upstream.HealthSettings{
				Path:         hc.Path,
				Interval:     hc.Interval,
				Timeout:      hc.Timeout,
				ExpectStatus: hc.ExpectStatus,
				Rise:         hc.Rise,
				Fall:         hc.Fall,
			}
		}
		conf, err := upstreamTLS(u.TLS, fmt.Sprintf("upstream[%d].tls", i)) // upstreamtls.go
		if err != nil {
			return nil, err
		}
		g, err := upstream.NewGroup(u.Name, specs, upstream.Settings{
			Balance:         u.Balance,
			Keepalive:       u.Keepalive,
			ConnectTimeout:  u.ConnectTimeout,
			ResponseTimeout: u.ResponseTimeout,
			MaxFails:        u.MaxFails,
			FailTimeout:     u.FailTimeout,
			Retries:         u.Retries,
			Health:          health,
			SlowStart:       u.SlowStart,
			HashKey:         u.HashKey,
			TLS:             conf,
			Log:             log,
		})
		if err != nil {
			return nil, err
		}
		index[u.Name] = len(t.groups)
		t.groups = append(t.groups, g)
	}
	routes := make([]*routeRT, 0, len(cfg.Routes))
	for i, r := range cfg.Routes {
		gi, ok := index[r.Upstream]
		if !ok {
			return nil, fmt.Errorf("route[%d].upstream: no upstream named %q", i, r.Upstream)
		}
		host, wildcard := compileHost(r.Host)
		prefix := r.PathPrefix
		if prefix == "" {
			prefix = "/"
		}
		routes = append(routes, &routeRT{
			host:        host,
			wildcard:    wildcard,
			prefix:      []byte(prefix),
			group:       gi,
			stripPrefix: r.StripPrefix,
			cacheTTL:    r.CacheTTL,
			name:        r.Host + prefix,
		})
	}
	t.routes = newRouteTable(routes)
	return t, nil
}

// followedName tells apart the servers that the addresses of one name give: "app.internal:8080
// (10.0.0.3)".
func followedName(addr string, a netip.Addr) string { return addr + " (" + a.String() + ")" }

// configAnswers returns prev's answers, with those cfg's load found in their place: at start (prev
// nil) and on a reload, the lookup the file's check made is the newest, and a name it could not
// resolve keeps its last good answer.
func configAnswers(cfg *config.Config, prev map[string][]netip.Addr) map[string][]netip.Addr {
	out := make(map[string][]netip.Addr, len(prev))
	for h, a := range prev {
		out[h] = a
	}
	for _, u := range cfg.Upstreams {
		for _, s := range u.Servers {
			if s.Follow && len(s.Addrs) > 0 {
				out[s.Host] = slices.Clone(s.Addrs)
			}
		}
	}
	return out
}

// adoptHealth gives the servers of t that old has too (same upstream name, same address as configured)
// old's health state, for a reload: a server that was down stays down, and is not dialled again until
// its fail_timeout or its health checks bring it back. A server new to an upstream joins at now (the
// loops' clock), from where slow_start ramps it up. Before t is swapped in and its checks start.
func (t *table) adoptHealth(old *table, now int64) {
	if old == nil {
		return
	}
	for _, g := range t.groups {
		for _, og := range old.groups {
			if og.Name == g.Name {
				g.KeepHealthAt(og, now, true)
				break
			}
		}
	}
}

// loopTable is one loop's working state for one table: a balancer and an idle pool per group.
// Loop only.
type loopTable struct {
	tbl     *table
	pickers []*upstream.Picker
	pools   []*upstream.IdlePool[*backendConn]
	ids     *tableIDs // metrics registry ids of the table's routes and servers (stats.go)
	dials   [][]int   // dials handed to the dialer and not yet answered, per group and server (maxDials)
}

func newLoopTable(t *table) *loopTable {
	lt := &loopTable{tbl: t}
	for _, g := range t.groups {
		lt.pickers = append(lt.pickers, upstream.NewPicker(g))
		lt.pools = append(lt.pools, upstream.NewIdlePool[*backendConn](len(g.Servers), g.Keepalive))
		lt.dials = append(lt.dials, make([]int, len(g.Servers)))
	}
	return lt
}

// groupNamed returns the index of lt's group called name, or -1.
func (lt *loopTable) groupNamed(name string) (int, bool) {
	for i, g := range lt.tbl.groups {
		if g.Name == name {
			return i, true
		}
	}
	return -1, false
}
