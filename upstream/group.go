package upstream

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// MaxServers bounds the servers of one group so that the set of servers a request has tried fits a uint64.
const MaxServers = 64

// Group is an upstream block: its servers and the settings every request to it uses. Immutable after
// NewGroup but for the servers' health state.
type Group struct {
	Name            string
	Servers         []*Server
	Balance         string
	Keepalive       int
	ConnectTimeout  time.Duration
	ResponseTimeout time.Duration
	Retries         int
	Health          *HealthSettings // active health checks; nil = none (see Checker)
	// SlowStart > 0: a server that comes back up, or joins in a reload, ramps from 1/20 of its weight to
	// all of it over this time (round_robin, least_conn, p2c, hash).
	SlowStart time.Duration
	// HashKey is what balance = "hash" hashes: KeyURI, KeyClientIP, KeyHeader or KeyCookie, with
	// HashKeyName the header's or the cookie's name. The engine computes the hash (PickKey's keyHash).
	HashKey     string
	HashKeyName string

	maglev [2]maglev // balance = "hash": the lookup tables of the primaries and of the backups

	log          *slog.Logger
	noneUpLogged atomic.Int64 // monotonic ns of the last "no server up" line (NoneUp); 0: none yet
}

// ServerSpec describes one server of a group, as validated configuration gives it.
type ServerSpec struct {
	// Name tells the server apart in logs, metrics and reloads: "host:port" as configured, and for an
	// address of a name that is followed (resolve), "host:port (address)".
	Name string
	// Host is the "host:port" that a request without Host and the health checks send; "" = Name.
	Host   string
	Addr   *net.TCPAddr
	Weight int
	Backup bool
}

// Settings are a group's tunables, as validated configuration gives them.
type Settings struct {
	Balance         string
	Keepalive       int
	ConnectTimeout  time.Duration
	ResponseTimeout time.Duration
	MaxFails        int
	FailTimeout     time.Duration
	Retries         int
	Health          *HealthSettings // nil = no active health checks
	SlowStart       time.Duration   // 0 = off
	HashKey         string          // balance = "hash": uri | client_ip | header:NAME | cookie:NAME; "" = uri
	// TLS, when not nil, makes the servers HTTPS: the client configuration of [upstream.tls] (roots,
	// client certificate, ServerName when server_name is set). Each server gets a copy of its own
	// (serverTLS). NewGroup does not modify it.
	TLS *tls.Config
	// Log receives the group's health transitions (a server down or up) and "no server up"; nil: none.
	Log *slog.Logger
}

// NewGroup builds a Group. upstream does not import config (dependencies point from engine to both), so
// the engine copies the validated settings in. A group may have no servers (an upstream whose names
// have no address yet): every request to it finds none up.
func NewGroup(name string, servers []ServerSpec, set Settings) (*Group, error) {
	if len(servers) > MaxServers {
		return nil, fmt.Errorf("upstream %q: %d servers, at most %d", name, len(servers), MaxServers)
	}
	g := &Group{
		Name:            name,
		Balance:         set.Balance,
		Keepalive:       set.Keepalive,
		ConnectTimeout:  set.ConnectTimeout,
		ResponseTimeout: set.ResponseTimeout,
		Retries:         set.Retries,
		SlowStart:       set.SlowStart,
		log:             set.Log,
	}
	g.HashKey, g.HashKeyName = SplitHashKey(set.HashKey)
	if set.Health != nil {
		h := *set.Health
		g.Health = &h
	}
	for i, s := range servers {
		if s.Addr == nil {
			return nil, fmt.Errorf("upstream %q: server %d has no resolved address", name, i)
		}
		w := s.Weight
		if w < 1 {
			w = 1
		}
		host := s.Host
		if host == "" {
			host = s.Name
		}
		srv := &Server{
			Index:       i,
			Upstream:    name,
			Addr:        s.Addr,
			Name:        s.Name,
			HostHeader:  []byte(host),
			Weight:      w,
			Backup:      s.Backup,
			seed:        serverSeed(s.Name),
			maxFails:    int32(set.MaxFails),
			failTimeout: int64(set.FailTimeout),
			log:         set.Log,
			passiveReason: fmt.Sprintf("%d failed attempts within fail_timeout %s (max_fails)",
				set.MaxFails, set.FailTimeout),
		}
		srv.tls = serverTLS(set.TLS, string(srv.HostHeader)) // the host:port as configured
		if g.Health != nil {
			srv.healthReq = healthRequest(g.Health.Path, host)
		}
		srv.upSince.Store(math.MinInt64 / 4) // up since long before: no ramp at a fresh start
		g.Servers = append(g.Servers, srv)
	}
	if g.Balance == Hash {
		g.maglev[0] = newMaglev(g.Servers, false)
		g.maglev[1] = newMaglev(g.Servers, true)
	}
	if len(g.Servers) == 1 {
		// As nginx: the only server of an upstream is never marked down by failed requests. There is
		// nowhere else to send them, so marking it down only turns a few failures into 503s for
		// fail_timeout. Active health checks still apply.
		g.Servers[0].maxFails = 0
	}
	return g, nil
}

// KeepHealth carries the health state of old's servers over to g's, for a reload: a server of g whose
// address (as configured) old also has takes over that server's passive and active state (down or up,
// why and since when, failures counted, the last check). Servers new to g start up. Call it before g
// serves requests and after old's checker has stopped; g and old are groups of the same name.
func (g *Group) KeepHealth(old *Group) { g.KeepHealthAt(old, 0, false) }

// KeepHealthAt is KeepHealth for a reload at now (the clock of Pick): with slow_start, a server new to the group
// joins at now and ramps up (join); KeepHealth leaves new servers at their full weight.
func (g *Group) KeepHealthAt(old *Group, now int64, join bool) {
	if old == nil {
		return
	}
	byName := make(map[string]*Server, len(old.Servers))
	for _, s := range old.Servers {
		byName[s.Name] = s
	}
	for _, s := range g.Servers {
		if o := byName[s.Name]; o != nil {
			s.adopt(o)
		} else if join {
			s.cameUp(now)
		}
	}
}

// ServerLike returns g's server that is the same as s, a server of another table's group of the same
// name: the same name and the same address. nil when g has none (s is gone).
func (g *Group) ServerLike(s *Server) *Server {
	for _, o := range g.Servers {
		if o.Name == s.Name && o.Addr.IP.Equal(s.Addr.IP) && o.Addr.Port == s.Addr.Port && o.Addr.Zone == s.Addr.Zone {
			return o
		}
	}
	return nil
}

// noneUpEvery bounds the "no server up" lines to one per upstream per second.
const noneUpEvery = int64(time.Second)

// NoneUp logs, at most once a second for the group, that a request found no server up (and is answered
// 503), with each server's reason for being down. Called from event loops; it never blocks beyond the
// log line it may write.
func (g *Group) NoneUp(now int64) {
	if g.log == nil {
		return
	}
	last := g.noneUpLogged.Load()
	if last != 0 && now-last < noneUpEvery {
		return
	}
	if !g.noneUpLogged.CompareAndSwap(last, max(now, 1)) {
		return // another loop logs it
	}
	down := make([]string, 0, len(g.Servers))
	for _, s := range g.Servers {
		h := s.Health(now)
		down = append(down, s.Name+": "+h.DownReason)
	}
	if len(down) == 0 {
		down = append(down, "none: its names have no address yet (resolve)")
	}
	g.log.Warn("no server up: requests answered 503", "upstream", g.Name, "servers", strings.Join(down, "; "))
}

// SplitHashKey splits a hash_key into what it hashes and the header or cookie name: "header:X-User"
// gives KeyHeader and "X-User", "uri" gives KeyURI and "". "" is KeyURI, the default. Validation
// (config) has refused anything else.
func SplitHashKey(k string) (kind, name string) {
	if k == "" {
		return KeyURI, ""
	}
	kind, name, _ = strings.Cut(k, ":")
	return kind, name
}
