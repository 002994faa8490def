package upstream

import (
	"fmt"
	"net"
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
}

// ServerSpec describes one server of a group, as validated configuration gives it.
type ServerSpec struct {
	Name   string // "host:port" as configured
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
}

// NewGroup builds a Group. upstream does not import config (dependencies point from engine to both), so
// the engine copies the validated settings in.
func NewGroup(name string, servers []ServerSpec, set Settings) (*Group, error) {
	if len(servers) == 0 {
		return nil, fmt.Errorf("upstream %q: no servers", name)
	}
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
	}
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
		srv := &Server{
			Index:       i,
			Addr:        s.Addr,
			Name:        s.Name,
			HostHeader:  []byte(s.Name),
			Weight:      w,
			Backup:      s.Backup,
			maxFails:    int32(set.MaxFails),
			failTimeout: int64(set.FailTimeout),
		}
		if g.Health != nil {
			srv.healthReq = healthRequest(g.Health.Path, s.Name)
		}
		g.Servers = append(g.Servers, srv)
	}
	if len(g.Servers) == 1 {
		// As nginx: the only server of an upstream is never marked down by failed requests. There is
		// nowhere else to send them, so marking it down only turns a few failures into 503s for
		// fail_timeout. Active health checks still apply.
		g.Servers[0].maxFails = 0
	}
	return g, nil
}
