package config

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"switchflow/lookup"
)

// Config is a whole configuration file. After [Parse], [Load] or a nil
// [Config.Validate] it is immutable: share it, never write to it.
type Config struct {
	Server    Server
	TLS       *TLS      // nil when [tls] is absent
	Admin     *Admin    // nil when [admin] is absent
	Resolver  *Resolver // nil when [resolver] is absent: names are looked up by the system's resolver
	Log       Log
	Cache     Cache
	Upstreams []Upstream
	Routes    []Route
}

// Server is the [server] section: the plain-HTTP listeners and the limits of
// client connections.
type Server struct {
	Listen            []string      // host:port; a string or an array of strings in TOML
	Loops             int           // event loops; 0 = one per CPU, resolved by the engine
	MaxConnections    int           // client connections; connection MaxConnections+1 gets 503
	HeaderBuffer      int           // bytes: the largest request head accepted
	LargeHeaderBuffer int           // bytes: the largest request head (431 beyond) and response head (502)
	LargeHeaderBufs   int           // large slabs preallocated for heads outgrowing HeaderBuffer; 0 = MaxConnections/16
	MaxHeaders        int           // header lines accepted in a request head (431 beyond) and a response head (502)
	IOBuffer          int           // bytes buffered per direction per connection
	ReadHeaderTimeout time.Duration // whole request head within this, else 408
	IdleTimeout       time.Duration // idle keep-alive client connections closed after this
	MaxBodySize       int64         // bytes; 0 = unlimited
	ShutdownTimeout   time.Duration // requests in flight get this long on SIGTERM; 0 = none
	ReusePort         bool          // SO_REUSEPORT
	PidFile           string        // written at start with the process id, removed at exit; "" = none
}

// TLS is the optional [tls] section: HTTPS termination.
type TLS struct {
	Listen       []string      // host:port, one or more (a string or an array in the file); default DefaultTLSListen
	Certificates []Certificate // at least one; SNI picks among them
	MinVersion   string        // "1.2" or "1.3"
}

// Certificate is one PEM certificate chain and its key. Paths are kept as
// written (relative paths are relative to the working directory, as for
// log.access); config does not read the files.
type Certificate struct {
	Cert, Key string
}

// Admin is the optional [admin] section.
type Admin struct {
	Listen string // host:port; default DefaultAdminListen
}

// Resolver is the optional [resolver] section: the DNS servers that upstream names are looked up
// through, at load and, for upstreams with resolve set, while running.
type Resolver struct {
	Servers []string // "ip:port" (Validate adds port 53 where the file left it out); at least one
}

// Log is the [log] section.
type Log struct {
	Level        string // debug | info | warn | error
	Format       string // text | json
	Access       string // off | stdout | stderr | a file path
	AccessFormat string // combined | json
}

// Cache is the [cache] section.
type Cache struct {
	MaxSize int64 // bytes; memory bound of the micro-cache; 0 = nothing is stored
}

// Upstream is one [[upstream]]: a named group of backend servers.
type Upstream struct {
	Name            string
	Balance         string        // round_robin | least_conn | ip_hash | p2c | hash
	HashKey         string        // balance = "hash": uri | client_ip | header:NAME | cookie:NAME
	SlowStart       time.Duration // >= 0; > 0: a server coming back up ramps to its weight over this
	Servers         []UpstreamServer
	Keepalive       int           // idle backend connections kept per server; 0 = none
	ConnectTimeout  time.Duration // > 0
	ResponseTimeout time.Duration // > 0; request sent to response head received
	MaxFails        int           // failures within FailTimeout that mark a server down; 0 = passive checks off
	FailTimeout     time.Duration // > 0
	Retries         int           // further servers tried; >= 0
	// Resolve > 0 (at least 1s): the servers given by host name are looked up again this often, and
	// each address the name has is a server (UpstreamServer.Follow). 0: a name is looked up at load only.
	Resolve     time.Duration
	HealthCheck *HealthCheck // nil when absent
	TLS         *UpstreamTLS // nil when [upstream.tls] is absent: plain HTTP to the servers
}

// UpstreamTLS is an upstream's optional [upstream.tls]: HTTPS to its servers. Paths are kept as
// written, as for [tls]; config does not read the files (the engine does, and -t reports what it finds).
type UpstreamTLS struct {
	ServerName         string // SNI and the name verified; "" = the host of each server's addr
	CA                 string // PEM file of the roots to verify against; "" = the system's
	Cert, Key          string // PEM client certificate (chain) and key for mutual TLS; both or neither
	InsecureSkipVerify bool   // no verification at all: for tests only, warned about
}

// UpstreamServer is one entry of an upstream's servers array.
type UpstreamServer struct {
	Addr    string       // as written, host:port
	TCPAddr *net.TCPAddr // resolved at load by Validate; nil for a Follow name that did not resolve
	Weight  int          // >= 1
	Backup  bool         // used only while no other server is up

	// Follow: Addr's host is a name and the upstream has resolve set, so every address of the name is
	// a server, and the name is looked up again while running. Filled by Validate, as are the rest.
	Follow bool
	Host   string       // Addr's host and port, split
	Port   int          //
	Addrs  []netip.Addr // Follow: every address the name had at load, sorted; empty when it did not resolve
	// LookupError (Follow only) is why the name did not resolve at load: not an error in the file, the
	// upstream starts without the name's servers and looks it up again every resolve (Warnings).
	LookupError string
}

// HealthCheck is an upstream's optional active health check.
type HealthCheck struct {
	Path         string        // request path, starts with "/"
	Interval     time.Duration // > 0
	Timeout      time.Duration // > 0 and <= Interval
	ExpectStatus int           // 100..599
	Rise         int           // passing checks that bring a server back; >= 1
	Fall         int           // failing checks that mark a server down; >= 1
}

// Route is one [[route]].
type Route struct {
	Host          string // "" = any host; exact name or "*.example.com"; lower-cased by Validate
	PathPrefix    string // starts with "/"; default "/"
	Upstream      string // name of an upstream
	UpstreamIndex int    // index into Config.Upstreams, filled by Validate
	StripPrefix   bool
	CacheTTL      time.Duration // > 0 turns the micro-cache on; 0 = off
}

// Enumerated values and listener defaults.
const (
	DefaultListen      = "0.0.0.0:8080"
	DefaultTLSListen   = "0.0.0.0:8443"
	DefaultAdminListen = "127.0.0.1:9090" // never public by default

	BalanceRoundRobin = "round_robin"
	BalanceLeastConn  = "least_conn"
	BalanceIPHash     = "ip_hash"
	BalanceP2C        = "p2c"
	BalanceHash       = "hash"

	HashKeyURI      = "uri"
	HashKeyClientIP = "client_ip"

	AccessOff    = "off"
	AccessStdout = "stdout"
	AccessStderr = "stderr"
)

// resolveTimeout bounds each upstream name lookup at load, so that a dead
// resolver makes `switchflow -t` fail instead of hang.
const resolveTimeout = 5 * time.Second

// DefaultServer returns the [server] defaults of SPEC section 2.
func DefaultServer() Server {
	return Server{
		Listen:            []string{DefaultListen},
		Loops:             0,
		MaxConnections:    10000,
		HeaderBuffer:      8 << 10,
		LargeHeaderBuffer: 64 << 10,
		MaxHeaders:        100,
		IOBuffer:          64 << 10,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxBodySize:       0,
		ShutdownTimeout:   15 * time.Second,
		ReusePort:         true,
	}
}

// DefaultTLS returns the [tls] defaults; Certificates has none.
func DefaultTLS() TLS { return TLS{Listen: []string{DefaultTLSListen}, MinVersion: "1.2"} }

// DefaultAdmin returns the [admin] defaults.
func DefaultAdmin() Admin { return Admin{Listen: DefaultAdminListen} }

// DefaultLog returns the [log] defaults.
func DefaultLog() Log {
	return Log{Level: "info", Format: "text", Access: AccessOff, AccessFormat: "combined"}
}

// DefaultCache returns the [cache] defaults.
func DefaultCache() Cache { return Cache{MaxSize: 64 << 20} }

// DefaultUpstream returns an upstream with every default filled in and no
// name or servers.
func DefaultUpstream() Upstream {
	return Upstream{
		Balance:         BalanceRoundRobin,
		HashKey:         HashKeyURI,
		Keepalive:       256,
		ConnectTimeout:  2 * time.Second,
		ResponseTimeout: 30 * time.Second,
		MaxFails:        3,
		FailTimeout:     10 * time.Second,
		Retries:         1,
	}
}

// DefaultUpstreamServer returns a server with the default weight and no address.
func DefaultUpstreamServer() UpstreamServer { return UpstreamServer{Weight: 1} }

// DefaultHealthCheck returns the health_check defaults.
func DefaultHealthCheck() HealthCheck {
	return HealthCheck{
		Path:         "/healthz",
		Interval:     2 * time.Second,
		Timeout:      time.Second,
		ExpectStatus: 200,
		Rise:         2,
		Fall:         3,
	}
}

// DefaultRoute returns a route with the default path prefix and no upstream.
func DefaultRoute() Route { return Route{PathPrefix: "/"} }

// Default returns a Config with every default and no upstreams or routes.
// It is valid as it stands.
func Default() *Config {
	return &Config{
		Server: DefaultServer(),
		Log:    DefaultLog(),
		Cache:  DefaultCache(),
	}
}

// Load reads the file at path and parses it with [Parse]. Every error it
// returns is *Errors; a read failure is one Problem with no key, and
// errors.Is sees the underlying error (fs.ErrNotExist, ...).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Errors{Problems: []Problem{{Msg: err.Error()}}, cause: err}
	}
	return Parse(data)
}

// Parse decodes a TOML document, fills defaults and validates the result,
// resolving upstream server addresses. On failure it returns nil and an
// *Errors holding every problem found.
func Parse(data []byte) (*Config, error) {
	return parse(data, nil)
}

func parse(data []byte, r resolver) (*Config, error) {
	c, d, err := decode(data)
	if err != nil {
		return nil, err
	}
	problems := d.list
	for _, p := range c.validate(r, d.listenKeys) {
		if !coveredBy(p.Key, d.bad) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, &Errors{Problems: problems}
	}
	return c, nil
}

// SlogLevel maps Level to its slog level; an unknown level maps to Info.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// UpstreamByName returns the upstream called name, or nil.
func (c *Config) UpstreamByName(name string) *Upstream {
	for i := range c.Upstreams {
		if c.Upstreams[i].Name == name {
			return &c.Upstreams[i]
		}
	}
	return nil
}

// resolver turns a host name into addresses. Tests and fuzzing swap in one
// that never touches the network; nil: the file's [resolver], or the system's.
type resolver interface {
	lookupIP(ctx context.Context, host string) ([]net.IP, error)
}

// netResolver looks names up for real, through lookup (the servers of [resolver], or the system's).
type netResolver struct{ r *lookup.Resolver }

func (n netResolver) lookupIP(ctx context.Context, host string) ([]net.IP, error) {
	addrs, err := n.r.Addrs(ctx, host)
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = net.IP(a.AsSlice())
	}
	return ips, err
}

// ResolverServers returns the DNS servers of [resolver], nil when the system's resolver applies.
func (c *Config) ResolverServers() []string {
	if c.Resolver == nil {
		return nil
	}
	return c.Resolver.Servers
}
