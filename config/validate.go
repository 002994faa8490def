package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"switchflow/lookup"
)

// Validate checks a Config built in code (Parse and Load call it for files)
// and fills its derived fields: Route.UpstreamIndex, UpstreamServer.TCPAddr
// (resolving names, each lookup bounded by a few seconds) and lower-cased
// Route.Host. It returns nil or an *Errors with every problem, keyed as in a
// file. After it returns nil, treat c as immutable.
func (c *Config) Validate() error {
	ps := c.validate(nil, nil)
	if len(ps) == 0 {
		return nil
	}
	sortProblems(ps)
	return &Errors{Problems: ps}
}

var (
	logLevels     = []string{"debug", "info", "warn", "error"}
	logFormats    = []string{"text", "json"}
	accessFormats = []string{"combined", "json"}
	balances      = []string{BalanceRoundRobin, BalanceLeastConn, BalanceIPHash, BalanceP2C, BalanceHash}
	tlsVersions   = []string{"1.2", "1.3"}
)

const (
	minHeaderBuffer = 1 << 10
	maxHeaderBuffer = 1 << 20
	// maxLargeHeaderBuffer bounds large_header_buffer: a head is rescanned as its bytes arrive.
	maxLargeHeaderBuffer = 16 << 20
	minIOBuffer          = 4 << 10
	// MaxMaxHeaders bounds max_headers: each loop keeps a header index of that many entries (24 bytes
	// each) for a request and for a response.
	MaxMaxHeaders = 1000
)

// validate checks c; r looks the upstreams' names up, nil: through c's [resolver] or the system's.
func (c *Config) validate(r resolver, listenKeys []string) []Problem {
	var ps problems
	type claimed struct{ key, host string }
	listeners := map[int][]claimed{} // port → the listeners that claimed it

	claim := func(key, addr string) {
		if !checkListen(&ps, key, addr) {
			return
		}
		host, port, _ := splitHostPort(addr)
		if port != 0 {
			for _, prev := range listeners[port] {
				if hostsOverlap(host, prev.host) {
					ps.addf(key, "address %q is already used by %s", addr, prev.key)
					return
				}
			}
		}
		listeners[port] = append(listeners[port], claimed{key, host})
	}

	s := &c.Server
	if len(s.Listen) == 0 {
		ps.addf("server.listen", "at least one listen address is required")
	}
	for i, addr := range s.Listen {
		key := "server.listen"
		if i < len(listenKeys) {
			key = listenKeys[i] // as written: a string, or the element's place in the array
		} else if len(s.Listen) > 1 {
			key = fmt.Sprintf("server.listen[%d]", i)
		}
		claim(key, addr)
	}
	if s.Loops < 0 {
		ps.addf("server.loops", "must be >= 0 (0 = one per CPU core), got %d", s.Loops)
	}
	if s.MaxConnections < 1 {
		ps.addf("server.max_connections", "must be >= 1, got %d", s.MaxConnections)
	}
	if s.HeaderBuffer < minHeaderBuffer || s.HeaderBuffer > maxHeaderBuffer {
		ps.addf("server.header_buffer", "must be between 1KiB and 1MiB, got %s", FormatSize(int64(s.HeaderBuffer)))
	}
	if s.LargeHeaderBuffer < minHeaderBuffer || s.LargeHeaderBuffer > maxLargeHeaderBuffer {
		ps.addf("server.large_header_buffer", "must be between 1KiB and 16MiB, got %s", FormatSize(int64(s.LargeHeaderBuffer)))
	}
	if s.LargeHeaderBufs < 0 {
		ps.addf("server.large_header_buffers", "must be >= 0 (0 = max_connections / 16), got %d", s.LargeHeaderBufs)
	}
	if s.MaxHeaders < 1 || s.MaxHeaders > MaxMaxHeaders {
		ps.addf("server.max_headers", "must be between 1 and %d, got %d", MaxMaxHeaders, s.MaxHeaders)
	}
	if s.IOBuffer < minIOBuffer {
		ps.addf("server.io_buffer", "must be at least 4KiB, got %s", FormatSize(int64(s.IOBuffer)))
	}
	positive(&ps, "server.read_header_timeout", s.ReadHeaderTimeout)
	positive(&ps, "server.idle_timeout", s.IdleTimeout)
	if s.MaxBodySize < 0 {
		ps.addf("server.max_body_size", "must not be negative (0 = unlimited)")
	}
	nonNegative(&ps, "server.shutdown_timeout", s.ShutdownTimeout)

	if t := c.TLS; t != nil {
		if len(t.Listen) == 0 {
			ps.addf("tls.listen", "at least one listen address is required")
		}
		for i, addr := range t.Listen {
			key := "tls.listen"
			if len(t.Listen) > 1 {
				key = fmt.Sprintf("tls.listen[%d]", i)
			}
			if addr == "" {
				ps.addf(key, "is required")
				continue
			}
			claim(key, addr)
		}
		if len(t.Certificates) == 0 {
			ps.addf("tls.certificates", "at least one certificate is required")
		}
		for i, cert := range t.Certificates {
			if cert.Cert == "" {
				ps.addf(fmt.Sprintf("tls.certificates[%d].cert", i), "is required")
			}
			if cert.Key == "" {
				ps.addf(fmt.Sprintf("tls.certificates[%d].key", i), "is required")
			}
		}
		oneOf(&ps, "tls.min_version", t.MinVersion, tlsVersions)
	}
	if a := c.Admin; a != nil {
		if a.Listen == "" {
			ps.addf("admin.listen", "is required")
		} else {
			claim("admin.listen", a.Listen)
		}
	}

	oneOf(&ps, "log.level", c.Log.Level, logLevels)
	oneOf(&ps, "log.format", c.Log.Format, logFormats)
	if c.Log.Access == "" {
		ps.addf("log.access", `must be "off", "stdout", "stderr" or a file path`)
	}
	oneOf(&ps, "log.access_format", c.Log.AccessFormat, accessFormats)

	if c.Cache.MaxSize < 0 {
		ps.addf("cache.max_size", "must not be negative")
	}

	var dnsServers []string
	if rs := c.Resolver; rs != nil {
		if len(rs.Servers) == 0 {
			ps.addf("resolver.servers", "at least one DNS server is required")
		}
		ok := true
		for i, a := range rs.Servers {
			norm, err := lookup.ServerAddr(a)
			if err != nil {
				ps.addf(fmt.Sprintf("resolver.servers[%d]", i), "%v", err)
				ok = false
				continue
			}
			rs.Servers[i] = norm
		}
		if ok {
			dnsServers = rs.Servers
		}
	}
	if r == nil {
		r = netResolver{lookup.New(dnsServers)}
	}

	names := map[string]int{}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		key := fmt.Sprintf("upstream[%d]", i)
		if u.Name == "" {
			ps.addf(key+".name", "is required")
		} else if prev, dup := names[u.Name]; dup {
			ps.addf(key+".name", "duplicate upstream name %q (also upstream[%d])", u.Name, prev)
		} else {
			names[u.Name] = i
		}
		validateUpstream(&ps, key, u, r)
	}

	type routeKey struct{ host, prefix string }
	seenRoutes := map[routeKey]int{}
	for i := range c.Routes {
		rt := &c.Routes[i]
		key := fmt.Sprintf("route[%d]", i)
		hostOK := true
		if rt.Host != "" {
			host, msg := normalizeHost(rt.Host)
			if msg != "" {
				ps.addf(key+".host", "%s", msg)
				hostOK = false
			} else {
				rt.Host = host
			}
		}
		prefixOK := checkPathPrefix(&ps, key+".path_prefix", rt.PathPrefix)
		switch idx, found := names[rt.Upstream]; {
		case rt.Upstream == "":
			ps.addf(key+".upstream", "is required")
		case !found:
			ps.addf(key+".upstream", "no upstream is named %q", rt.Upstream)
		default:
			rt.UpstreamIndex = idx
		}
		nonNegative(&ps, key+".cache_ttl", rt.CacheTTL)
		if hostOK && prefixOK {
			rk := routeKey{rt.Host, rt.PathPrefix}
			if prev, dup := seenRoutes[rk]; dup {
				ps.addf(key, "duplicates route[%d] (same host %q and path_prefix %q)", prev, rt.Host, rt.PathPrefix)
			} else {
				seenRoutes[rk] = i
			}
		}
	}
	return ps.list
}

func validateUpstream(ps *problems, key string, u *Upstream, r resolver) {
	oneOf(ps, key+".balance", u.Balance, balances)
	if msg := checkHashKey(u.HashKey); msg != "" {
		ps.addf(key+".hash_key", "%s", msg)
	}
	if u.Resolve != 0 && (u.Resolve < minResolve || u.Resolve > maxResolve) {
		ps.addf(key+".resolve", "must be 0s (off) or between %v and %v, got %v", minResolve, maxResolve, u.Resolve)
	}
	if u.SlowStart < 0 || u.SlowStart > maxSlowStart {
		ps.addf(key+".slow_start", "must be between 0s (off) and %v, got %v", maxSlowStart, u.SlowStart)
	}
	if len(u.Servers) == 0 {
		ps.addf(key+".servers", "at least one server is required")
	}
	addrs := map[string]int{}
	primaries := 0
	for j := range u.Servers {
		srv := &u.Servers[j]
		skey := fmt.Sprintf("%s.servers[%d]", key, j)
		if !srv.Backup {
			primaries++
		}
		if srv.Weight < 1 {
			ps.addf(skey+".weight", "must be >= 1, got %d", srv.Weight)
		}
		if srv.Addr == "" {
			ps.addf(skey+".addr", "is required")
			continue
		}
		if prev, dup := addrs[srv.Addr]; dup {
			ps.addf(skey+".addr", "duplicate server %q (also servers[%d]; use weight instead)", srv.Addr, prev)
			continue
		}
		addrs[srv.Addr] = j
		host, port, ip, msg := checkBackend(srv.Addr)
		if msg != "" {
			ps.addf(skey+".addr", "%s", msg)
			continue
		}
		srv.Host, srv.Port = host, port
		if u.Resolve > 0 && !ip.IsValid() {
			// A name followed while running: every address is a server, and one that does not resolve
			// now is not fatal (Warnings says so); the resolver looks it up again every resolve.
			srv.Follow = true
			srv.Addrs, srv.LookupError = lookupHost(host, r)
			if len(srv.Addrs) > 0 {
				srv.TCPAddr = tcpAddr(srv.Addrs[0], port)
			}
			continue
		}
		tcp, msg := resolveBackend(srv.Addr, r)
		if msg != "" {
			ps.addf(skey+".addr", "%s", msg)
			continue
		}
		srv.TCPAddr = tcp
	}
	if len(u.Servers) > 0 && primaries == 0 {
		ps.addf(key+".servers", "every server is a backup; at least one must not be")
	}
	if u.Keepalive < 0 {
		ps.addf(key+".keepalive", "must be >= 0, got %d", u.Keepalive)
	}
	positive(ps, key+".connect_timeout", u.ConnectTimeout)
	positive(ps, key+".response_timeout", u.ResponseTimeout)
	if u.MaxFails < 0 {
		ps.addf(key+".max_fails", "must be >= 0 (0 = passive health checks off), got %d", u.MaxFails)
	}
	positive(ps, key+".fail_timeout", u.FailTimeout)
	if u.Retries < 0 {
		ps.addf(key+".retries", "must be >= 0, got %d", u.Retries)
	}
	if hc := u.HealthCheck; hc != nil {
		hkey := key + ".health_check"
		if !strings.HasPrefix(hc.Path, "/") {
			ps.addf(hkey+".path", "must start with \"/\", got %q", hc.Path)
		} else if bad := strings.IndexFunc(hc.Path, isBadPathRune); bad >= 0 {
			ps.addf(hkey+".path", "must not contain spaces or control characters")
		}
		intervalOK := positive(ps, hkey+".interval", hc.Interval)
		if positive(ps, hkey+".timeout", hc.Timeout) && intervalOK && hc.Timeout > hc.Interval {
			ps.addf(hkey+".timeout", "must not exceed interval (%v), got %v", hc.Interval, hc.Timeout)
		}
		if hc.ExpectStatus < 100 || hc.ExpectStatus > 599 {
			ps.addf(hkey+".expect_status", "must be an HTTP status between 100 and 599, got %d", hc.ExpectStatus)
		}
		if hc.Rise < 1 {
			ps.addf(hkey+".rise", "must be >= 1, got %d", hc.Rise)
		}
		if hc.Fall < 1 {
			ps.addf(hkey+".fall", "must be >= 1, got %d", hc.Fall)
		}
	}
	if ut := u.TLS; ut != nil {
		validateUpstreamTLS(ps, key+".tls", ut)
	}
}

// validateUpstreamTLS checks [upstream.tls] as written; whether its files load is the engine's check
// (-t, start, reload), as for [tls].
func validateUpstreamTLS(ps *problems, key string, ut *UpstreamTLS) {
	if n := ut.ServerName; n != "" {
		if _, err := netip.ParseAddr(n); err != nil && !validHostname(strings.TrimSuffix(n, ".")) {
			ps.addf(key+".server_name", "%q is neither a host name nor an IP address (no port: it is the name the certificate must hold)", n)
		}
	}
	switch {
	case ut.Cert != "" && ut.Key == "":
		ps.addf(key+".key", "is required with cert (mutual TLS needs the certificate and its key)")
	case ut.Key != "" && ut.Cert == "":
		ps.addf(key+".cert", "is required with key (mutual TLS needs the certificate and its key)")
	}
}

// minResolve and maxResolve bound resolve: a name looked up more often than once a second loads the DNS
// servers for little (answers are not cached), and one looked up less than daily is a mistake.
const (
	minResolve = time.Second
	maxResolve = 24 * time.Hour
)

// maxSlowStart bounds slow_start: a ramp longer than a day is a mistake, and the bound keeps the ramp's
// arithmetic (nanoseconds times thousandths) far from overflow.
const maxSlowStart = 24 * time.Hour

func positive(ps *problems, key string, d time.Duration) bool {
	if d <= 0 {
		ps.addf(key, "must be greater than 0, got %v", d)
		return false
	}
	return true
}

func nonNegative(ps *problems, key string, d time.Duration) {
	if d < 0 {
		ps.addf(key, "must not be negative, got %v", d)
	}
}

func oneOf(ps *problems, key, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	ps.addf(key, "%q is not one of %s", v, quoteList(allowed))
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// Warnings lists what in a file that checks is likely a mistake, for -t and the start to say: a
// strip_prefix route whose path_prefix does not end in "/" matches by string, so "/api" also takes
// "/apiary", which reaches the backend as "/ary".
//
// A hash_key other than the default on an upstream whose balance is not "hash" is ignored, and said so
// (a warning rather than an error: -T writes hash_key for every upstream, and its output must check).
//
// An upstream with tls.insecure_skip_verify verifies nothing of its servers: meant for tests, said at
// every start and check.
func (c *Config) Warnings() []string {
	var ws []string
	for i, u := range c.Upstreams {
		for j, s := range u.Servers {
			if s.Follow && s.LookupError != "" {
				ws = append(ws, fmt.Sprintf("upstream[%d].servers[%d].addr: host %q does not resolve now (%s); with resolve set the upstream starts without its servers and looks it up again every %v",
					i, j, s.Host, s.LookupError, u.Resolve))
			}
		}
		if u.Balance != BalanceHash && u.HashKey != HashKeyURI {
			ws = append(ws, fmt.Sprintf("upstream[%d]: hash_key %q has no effect with balance %q; it applies to balance = \"hash\"",
				i, u.HashKey, u.Balance))
		}
	}
	for i, u := range c.Upstreams {
		if u.TLS != nil && u.TLS.InsecureSkipVerify {
			ws = append(ws, fmt.Sprintf("upstream[%d].tls.insecure_skip_verify: the certificates of upstream %q are not verified, so anyone on the path can read and change its traffic; for tests only",
				i, u.Name))
		}
	}
	for i, r := range c.Routes {
		if r.StripPrefix && !strings.HasSuffix(r.PathPrefix, "/") {
			ws = append(ws, fmt.Sprintf("route[%d]: strip_prefix with path_prefix %q (no trailing /) also matches %q, which reaches the backend as %q; write %q to match the segment only",
				i, r.PathPrefix, r.PathPrefix+"ary", "/ary", r.PathPrefix+"/"))
		}
	}
	return ws
}
