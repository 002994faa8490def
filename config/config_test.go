package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// specExample is the example of SPEC.md section 2, verbatim.
const specExample = `
[server]
listen = "0.0.0.0:8080"          # string or array of strings
loops = 0                         # event loops; 0 = one per CPU core
max_connections = 10000           # client connections; header slabs for all of them are allocated at start
header_buffer = "8KiB"            # slab per connection: the largest request head accepted (431 beyond)
io_buffer = "64KiB"               # most bytes buffered per direction per connection before reading pauses
read_header_timeout = "10s"       # a client must send a whole request head within this (408, close)
idle_timeout = "60s"              # keep-alive client connections idle longer are closed
max_body_size = "0"               # 0 = unlimited; larger declared or streamed bodies get 413
shutdown_timeout = "15s"
reuse_port = true                 # SO_REUSEPORT, so several processes may share a port

[tls]                              # optional: HTTPS termination
listen = "0.0.0.0:8443"
certificates = [ { cert = "site.crt", key = "site.key" } ]   # SNI picks among them by name
min_version = "1.2"                # "1.2" or "1.3"

[admin]                            # optional: never on a public address by default
listen = "127.0.0.1:9090"          # GET /metrics (Prometheus text), /healthz, /status (JSON)

[resolver]                         # optional: where names are looked up; default: the system's resolv.conf
servers = ["127.0.0.1:53"]

[log]
level = "info"                     # debug | info | warn | error
format = "text"                    # text | json
access = "off"                     # off | stdout | stderr | a file path
access_format = "combined"         # combined | json

[cache]
max_size = "64MiB"                 # memory bound of the micro-cache, least recently used evicted first

[[upstream]]
name = "app"
balance = "round_robin"            # round_robin | least_conn | ip_hash | p2c | hash
slow_start = "0s"                  # > 0: a server coming back up ramps from little traffic to its full weight over this
hash_key = "uri"                   # balance = "hash": uri | client_ip | header:NAME | cookie:NAME
servers = [
  { addr = "127.0.0.1:9001" },
  { addr = "127.0.0.1:9002", weight = 2 },
  { addr = "127.0.0.1:9003", backup = true },   # used only while no other server is up
]
keepalive = 256                    # idle backend connections kept, per server
connect_timeout = "2s"
response_timeout = "30s"           # from request sent to response head received (504 beyond)
max_fails = 3                      # passive health: this many failures in fail_timeout mark a server down
fail_timeout = "10s"               # ... for this long
retries = 1                        # further servers tried; see section 3.4
resolve = "0s"                     # > 0: server names are looked up again this often; each address is a server

[upstream.tls]                     # optional: speak HTTPS to this upstream's servers
server_name = "app.internal"       # SNI and the name verified; default: the server's host
ca = "ca.pem"                      # roots to verify against; default: the system's
# cert = "client.crt", key = "client.key" for mutual TLS; insecure_skip_verify = false

[upstream.health_check]            # optional active checks
path = "/healthz"
interval = "2s"
timeout = "1s"
expect_status = 200
rise = 2
fall = 3

[[route]]
host = "api.example.com"           # optional; exact name or "*.example.com"; port ignored
path_prefix = "/api/"              # longest matching prefix wins among routes whose host matches
upstream = "app"
strip_prefix = false               # true: "/api/v1?x" reaches the backend as "/v1?x" (a leading slash is kept)
cache_ttl = "0s"                   # > 0 turns the micro-cache on for this route (section 3.6)
`

// minimal is the smallest useful file: one upstream, one route.
const minimal = `
[[upstream]]
name = "app"
servers = [{ addr = "127.0.0.1:9001" }]

[[route]]
upstream = "app"
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "switchflow.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Load(writeConfig(t, text))
	if err != nil {
		t.Fatalf("Load: unexpected error:\n%v", err)
	}
	return c
}

// loadErrors loads text and returns its problems, failing if it loads.
func loadErrors(t *testing.T, text string) *Errors {
	t.Helper()
	c, err := Load(writeConfig(t, text))
	if err == nil {
		t.Fatalf("Load: want an error, got a config: %+v", c)
	}
	if c != nil {
		t.Errorf("Load returned a config alongside an error")
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want *Errors: %v", err, err)
	}
	if len(errs.Problems) == 0 {
		t.Fatalf("*Errors has no problems")
	}
	return errs
}

func tcp(ip string, port int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.ParseIP(ip).To4(), Port: port}
}

func TestLoadSpecExample(t *testing.T) {
	c := mustLoad(t, specExample)

	wantServer := Server{
		Listen:            []string{"0.0.0.0:8080"},
		Loops:             0,
		MaxConnections:    10000,
		HeaderBuffer:      8192,
		LargeHeaderBuffer: 65536,
		MaxHeaders:        100,
		IOBuffer:          65536,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxBodySize:       0,
		ShutdownTimeout:   15 * time.Second,
		ReusePort:         true,
	}
	if !reflect.DeepEqual(c.Server, wantServer) {
		t.Errorf("Server = %+v\nwant %+v", c.Server, wantServer)
	}
	wantTLS := &TLS{Listen: []string{"0.0.0.0:8443"}, Certificates: []Certificate{{Cert: "site.crt", Key: "site.key"}}, MinVersion: "1.2"}
	if !reflect.DeepEqual(c.TLS, wantTLS) {
		t.Errorf("TLS = %+v, want %+v", c.TLS, wantTLS)
	}
	if c.Admin == nil || c.Admin.Listen != "127.0.0.1:9090" {
		t.Errorf("Admin = %+v", c.Admin)
	}
	if want := (Log{Level: "info", Format: "text", Access: "off", AccessFormat: "combined"}); c.Log != want {
		t.Errorf("Log = %+v, want %+v", c.Log, want)
	}
	if c.Cache.MaxSize != 64<<20 {
		t.Errorf("Cache.MaxSize = %d", c.Cache.MaxSize)
	}
	if c.Resolver == nil || !reflect.DeepEqual(c.Resolver.Servers, []string{"127.0.0.1:53"}) {
		t.Errorf("Resolver = %+v", c.Resolver)
	}

	wantUp := []Upstream{{
		Name:    "app",
		Balance: "round_robin",
		HashKey: "uri",
		Servers: []UpstreamServer{
			{Addr: "127.0.0.1:9001", TCPAddr: tcp("127.0.0.1", 9001), Weight: 1, Host: "127.0.0.1", Port: 9001},
			{Addr: "127.0.0.1:9002", TCPAddr: tcp("127.0.0.1", 9002), Weight: 2, Host: "127.0.0.1", Port: 9002},
			{Addr: "127.0.0.1:9003", TCPAddr: tcp("127.0.0.1", 9003), Weight: 1, Backup: true, Host: "127.0.0.1", Port: 9003},
		},
		Keepalive:       256,
		ConnectTimeout:  2 * time.Second,
		ResponseTimeout: 30 * time.Second,
		MaxFails:        3,
		FailTimeout:     10 * time.Second,
		Retries:         1,
		HealthCheck: &HealthCheck{
			Path: "/healthz", Interval: 2 * time.Second, Timeout: time.Second,
			ExpectStatus: 200, Rise: 2, Fall: 3,
		},
		TLS: &UpstreamTLS{ServerName: "app.internal", CA: "ca.pem"},
	}}
	if !reflect.DeepEqual(c.Upstreams, wantUp) {
		t.Errorf("Upstreams = %+v\nwant %+v", c.Upstreams, wantUp)
	}
	wantRoutes := []Route{{Host: "api.example.com", PathPrefix: "/api/", Upstream: "app", UpstreamIndex: 0}}
	if !reflect.DeepEqual(c.Routes, wantRoutes) {
		t.Errorf("Routes = %+v, want %+v", c.Routes, wantRoutes)
	}
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, minimal)

	d := Default()
	if !reflect.DeepEqual(c.Server, d.Server) || c.Log != d.Log || c.Cache != d.Cache {
		t.Errorf("defaults differ from Default():\n got %+v %+v %+v\nwant %+v %+v %+v",
			c.Server, c.Log, c.Cache, d.Server, d.Log, d.Cache)
	}
	if c.TLS != nil || c.Admin != nil {
		t.Errorf("TLS = %v, Admin = %v; want nil when the sections are absent", c.TLS, c.Admin)
	}
	s := c.Server
	if !reflect.DeepEqual(s.Listen, []string{"0.0.0.0:8080"}) || s.Loops != 0 || s.MaxConnections != 10000 ||
		s.HeaderBuffer != 8<<10 || s.MaxHeaders != 100 || s.IOBuffer != 64<<10 || s.ReadHeaderTimeout != 10*time.Second ||
		s.IdleTimeout != 60*time.Second || s.MaxBodySize != 0 || s.ShutdownTimeout != 15*time.Second || !s.ReusePort {
		t.Errorf("server defaults = %+v", s)
	}
	if c.Log != (Log{"info", "text", "off", "combined"}) || c.Cache.MaxSize != 64<<20 {
		t.Errorf("log/cache defaults = %+v %+v", c.Log, c.Cache)
	}
	u := c.Upstreams[0]
	if u.Balance != "round_robin" || u.Keepalive != 256 || u.ConnectTimeout != 2*time.Second ||
		u.ResponseTimeout != 30*time.Second || u.MaxFails != 3 || u.FailTimeout != 10*time.Second ||
		u.Retries != 1 || u.HealthCheck != nil {
		t.Errorf("upstream defaults = %+v", u)
	}
	if srv := u.Servers[0]; srv.Weight != 1 || srv.Backup || !reflect.DeepEqual(srv.TCPAddr, tcp("127.0.0.1", 9001)) {
		t.Errorf("server defaults = %+v", srv)
	}
	if r := c.Routes[0]; r.Host != "" || r.PathPrefix != "/" || r.StripPrefix || r.CacheTTL != 0 || r.UpstreamIndex != 0 {
		t.Errorf("route defaults = %+v", r)
	}

	// Sections present but empty take their defaults too.
	c = mustLoad(t, minimal+`
[upstream.health_check]
[admin]
[tls]
certificates = [{ cert = "a.crt", key = "a.key" }]
`)
	if !reflect.DeepEqual(c.Upstreams[0].HealthCheck, &HealthCheck{"/healthz", 2 * time.Second, time.Second, 200, 2, 3}) {
		t.Errorf("health_check defaults = %+v", c.Upstreams[0].HealthCheck)
	}
	if c.Admin.Listen != DefaultAdminListen || !reflect.DeepEqual(c.TLS.Listen, []string{DefaultTLSListen}) || c.TLS.MinVersion != "1.2" {
		t.Errorf("admin/tls defaults = %+v %+v", c.Admin, c.TLS)
	}
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	c := mustLoad(t, "")
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("empty file = %+v, want Default()", c)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	c := Default()
	u := DefaultUpstream()
	u.Name = "b"
	s := DefaultUpstreamServer()
	s.Addr = "127.0.0.1:7000"
	u.Servers = []UpstreamServer{s}
	a := DefaultUpstream()
	a.Name = "a"
	a.Servers = []UpstreamServer{s}
	c.Upstreams = []Upstream{a, u}
	r := DefaultRoute()
	r.Host = "WWW.Example.COM"
	r.Upstream = "b"
	c.Routes = []Route{r}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Routes[0].UpstreamIndex != 1 || c.Routes[0].Host != "www.example.com" {
		t.Errorf("route = %+v; want UpstreamIndex 1 and a lower-cased host", c.Routes[0])
	}
	if c.Upstreams[1].Servers[0].TCPAddr == nil || c.UpstreamByName("b") != &c.Upstreams[1] || c.UpstreamByName("x") != nil {
		t.Errorf("provisioning incomplete: %+v", c.Upstreams[1])
	}
}

// upstreamWith returns a file with one upstream whose body is extra, and a
// route to it.
func upstreamWith(extra string) string {
	return `
[[upstream]]
name = "app"
` + extra + `

[[route]]
upstream = "app"
`
}

func TestErrors(t *testing.T) {
	server := `servers = [{ addr = "127.0.0.1:9001" }]`
	cases := []struct {
		name string
		text string
		key  string // the key the problem names; "" for syntax errors
		line int
		msg  string // a substring of the message
	}{
		// syntax
		{"syntax error", "[server]\nloops = 1\nlisten = \n", "", 3, ""},
		{"syntax duplicate key", "[server]\nloops = 1\nloops = 2\n", "", 3, ""},
		{"syntax table defined twice", "[server]\nloops = 1\n[server]\n", "", 3, ""},
		{"syntax unclosed table name", "[server]\nloops = 1\n[log\nlevel = \"info\"\n", "", 3, "end table name"},
		{"syntax unclosed array table name", "[server]\nloops = 1\n[[upstream]\nname = \"a\"\n", "", 3, "table array name"},

		// unknown keys
		{"unknown top-level section", minimal + "[serve]\nloops = 1\n", "serve", 0, `unknown key (did you mean "server"?)`},
		{"unknown key in server", "[server]\nmax_conections = 5\n", "server.max_conections", 0, `did you mean "max_connections"`},
		{"unknown key in inline server", upstreamWith(`servers = [{ addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002", wieght = 2 }]`),
			"upstream[0].servers[1].wieght", 0, `did you mean "weight"`},
		{"unknown key in health_check", upstreamWith(server + "\n[upstream.health_check]\nintervall = \"1s\"\n"),
			"upstream[0].health_check.intervall", 0, "unknown key"},
		{"unknown key in upstream tls", upstreamWith(server + "\n[upstream.tls]\nservername = \"a\"\n"),
			"upstream[0].tls.servername", 0, `did you mean "server_name"`},
		{"upstream tls cert without key", upstreamWith(server + "\n[upstream.tls]\ncert = \"c.crt\"\n"),
			"upstream[0].tls.key", 0, "is required with cert"},
		{"upstream tls key without cert", upstreamWith(server + "\n[upstream.tls]\nkey = \"c.key\"\n"),
			"upstream[0].tls.cert", 0, "is required with key"},
		{"upstream tls server_name with a port", upstreamWith(server + "\n[upstream.tls]\nserver_name = \"app.internal:443\"\n"),
			"upstream[0].tls.server_name", 0, "neither a host name nor an IP address"},
		{"upstream tls wrong type", upstreamWith(server + "\n[upstream.tls]\ninsecure_skip_verify = \"yes\"\n"),
			"upstream[0].tls.insecure_skip_verify", 0, "must be a boolean"},
		{"unknown key in route", minimal + "strip = true\n", "route[0].strip", 0, "unknown key"},
		{"unknown key in certificate", "[tls]\ncertificates = [{ cert = \"a\", key = \"b\", chain = \"c\" }]\n",
			"tls.certificates[0].chain", 0, "unknown key"},
		{"unknown key far from any", "[log]\nzzzzzzzzzz = 1\n", "log.zzzzzzzzzz", 0, "unknown key"},

		// wrong types
		{"wrong type int", "[server]\nmax_connections = \"many\"\n", "server.max_connections", 0, "must be an integer, got a string"},
		{"wrong type bool", "[server]\nreuse_port = \"yes\"\n", "server.reuse_port", 0, "must be a boolean"},
		{"wrong type duration int", "[server]\nidle_timeout = 60\n", "server.idle_timeout", 0, "duration string"},
		{"wrong type size float", "[server]\nheader_buffer = 8.5\n", "server.header_buffer", 0, "must be a size"},
		{"wrong type listen", "[server]\nlisten = 8080\n", "server.listen", 0, "a string or an array of strings"},
		{"wrong type listen element", "[server]\nlisten = [\"0.0.0.0:80\", 81]\n", "server.listen[1]", 0, "must be a string"},
		{"wrong type section", "server = 5\n", "server", 0, "must be a table, got an integer"},
		{"upstream as plain table", "[upstream]\nname = \"app\"\n", "upstream", 0, "[[upstream]], not [upstream]"},
		{"route as array of tables", minimal + "[[log]]\nlevel = \"info\"\n", "log", 0, "[log], not [[log]]"},
		{"health_check as array of tables", upstreamWith(server + "\n[[upstream.health_check]]\npath = \"/h\"\n"), "upstream[0].health_check", 0, "([upstream.health_check], not [[upstream.health_check]])"},
		{"wrong type server element", upstreamWith(`servers = ["127.0.0.1:9001"]`), "upstream[0].servers[0]", 0, "must be a table, got a string"},
		{"wrong type addr", upstreamWith(`servers = [{ addr = 9001 }]`), "upstream[0].servers[0].addr", 0, "must be a string"},
		{"wrong type weight", upstreamWith(`servers = [{ addr = "127.0.0.1:1", weight = "2" }]`), "upstream[0].servers[0].weight", 0, "integer"},

		// missing required keys
		{"missing upstream name", "[[upstream]]\n" + server + "\n", "upstream[0].name", 0, "is required"},
		{"missing servers", "[[upstream]]\nname = \"app\"\n", "upstream[0].servers", 0, "at least one server"},
		{"empty servers", upstreamWith("servers = []"), "upstream[0].servers", 0, "at least one server"},
		{"missing addr", upstreamWith("servers = [{ weight = 2 }]"), "upstream[0].servers[0].addr", 0, "is required"},
		{"missing route upstream", minimal + "[[route]]\npath_prefix = \"/x/\"\n", "route[1].upstream", 0, "is required"},
		{"missing tls certificates", "[tls]\nlisten = \"0.0.0.0:8443\"\n", "tls.certificates", 0, "at least one certificate"},
		{"missing tls key", "[tls]\ncertificates = [{ cert = \"a.crt\" }]\n", "tls.certificates[0].key", 0, "is required"},

		// references
		{"route naming no upstream", minimal + "[[route]]\npath_prefix = \"/b/\"\nupstream = \"ap\"\n", "route[1].upstream", 0, `no upstream is named "ap"`},

		// addresses
		{"addr without port", upstreamWith(`servers = [{ addr = "127.0.0.1" }]`), "upstream[0].servers[0].addr", 0, "not a host:port"},
		{"addr bad port", upstreamWith(`servers = [{ addr = "127.0.0.1:http9" }]`), "upstream[0].servers[0].addr", 0, "port"},
		{"addr port out of range", upstreamWith(`servers = [{ addr = "127.0.0.1:70000" }]`), "upstream[0].servers[0].addr", 0, "port"},
		{"addr port zero", upstreamWith(`servers = [{ addr = "127.0.0.1:0" }]`), "upstream[0].servers[0].addr", 0, "port 0"},
		{"addr no host", upstreamWith(`servers = [{ addr = ":9001" }]`), "upstream[0].servers[0].addr", 0, "no host"},
		{"addr bad host", upstreamWith(`servers = [{ addr = "bad host!:9001" }]`), "upstream[0].servers[0].addr", 0, "neither an IP"},
		{"addr does not resolve", upstreamWith(`servers = [{ addr = "no-such-host.invalid:9001" }]`), "upstream[0].servers[0].addr", 0, "does not resolve"},
		{"addr duplicate", upstreamWith(`servers = [{ addr = "127.0.0.1:1" }, { addr = "127.0.0.1:1" }]`), "upstream[0].servers[1].addr", 0, "duplicate server"},
		{"listen bad", "[server]\nlisten = \"8080\"\n", "server.listen", 0, "not a host:port"},
		{"listen bad in array", "[server]\nlisten = [\"0.0.0.0:80\", \"0.0.0.0:x\"]\n", "server.listen[1]", 0, "port"},
		{"listen bad in array of one", "[server]\nlisten = [\"bad\"]\n", "server.listen[0]", 0, "not a host:port"},
		{"listen bad after a wrong type", "[server]\nlisten = [5, \"127.0.0.1:80\", \"bad\"]\n", "server.listen[2]", 0, "not a host:port"},
		{"listen bad host", "[server]\nlisten = \"a b:80\"\n", "server.listen", 0, "neither an IP"},
		{"admin listen bad", "[admin]\nlisten = \"localhost\"\n", "admin.listen", 0, "not a host:port"},
		{"tls listen clash", "[tls]\nlisten = \"0.0.0.0:8080\"\ncertificates = [{ cert = \"a\", key = \"b\" }]\n", "tls.listen", 0, "already used by server.listen"},

		// enums
		{"bad balance", upstreamWith(server + "\nbalance = \"random\""), "upstream[0].balance", 0, `"random" is not one of "round_robin", "least_conn", "ip_hash", "p2c", "hash"`},
		{"bad hash_key", upstreamWith(server + "\nbalance = \"hash\"\nhash_key = \"path\""), "upstream[0].hash_key", 0, `"path" is not one of "uri", "client_ip", "header:NAME", "cookie:NAME"`},
		{"hash_key empty header", upstreamWith(server + "\nbalance = \"hash\"\nhash_key = \"header:\""), "upstream[0].hash_key", 0, `"" is not a valid header name`},
		{"hash_key bad header", upstreamWith(server + "\nbalance = \"hash\"\nhash_key = \"header:X User\""), "upstream[0].hash_key", 0, `"X User" is not a valid header name`},
		{"hash_key bad cookie", upstreamWith(server + "\nbalance = \"hash\"\nhash_key = \"cookie:a=b\""), "upstream[0].hash_key", 0, `"a=b" is not a valid cookie name`},
		{"hash_key unknown kind", upstreamWith(server + "\nbalance = \"hash\"\nhash_key = \"query:x\""), "upstream[0].hash_key", 0, "is not one of"},
		{"slow_start negative", upstreamWith(server + "\nslow_start = \"-1s\""), "upstream[0].slow_start", 0, "must be between 0s (off) and 24h0m0s"},
		{"slow_start too long", upstreamWith(server + "\nslow_start = \"25h\""), "upstream[0].slow_start", 0, "must be between"},
		{"resolve under a second", upstreamWith(server + "\nresolve = \"500ms\""), "upstream[0].resolve", 0, "must be 0s (off) or between 1s and 24h0m0s, got 500ms"},
		{"resolve negative", upstreamWith(server + "\nresolve = \"-1s\""), "upstream[0].resolve", 0, "must be 0s (off) or between"},
		{"resolve not a duration", upstreamWith(server + "\nresolve = \"often\""), "upstream[0].resolve", 0, "duration"},
		{"resolver server a name", minimal + "[resolver]\nservers = [\"10.0.0.1\", \"dns.example:53\"]\n", "resolver.servers[1]", 0, "is not an IP address with an optional port"},
		{"resolver server port 0", minimal + "[resolver]\nservers = [\"10.0.0.1:0\"]\n", "resolver.servers[0]", 0, "port 0"},
		{"resolver no servers", minimal + "[resolver]\nservers = []\n", "resolver.servers", 0, "at least one DNS server is required"},
		{"resolver servers absent", minimal + "[resolver]\n", "resolver.servers", 0, "at least one DNS server is required"},
		{"resolver unknown key", minimal + "[resolver]\nserver = [\"10.0.0.1\"]\n", "resolver.server", 0, `did you mean "servers"`},
		{"bad log level", "[log]\nlevel = \"verbose\"\n", "log.level", 0, "not one of"},
		{"bad log format", "[log]\nformat = \"xml\"\n", "log.format", 0, "not one of"},
		{"bad access format", "[log]\naccess_format = \"common\"\n", "log.access_format", 0, "not one of"},
		{"empty access", "[log]\naccess = \"\"\n", "log.access", 0, "file path"},
		{"bad tls version", "[tls]\nmin_version = \"1.1\"\ncertificates = [{ cert = \"a\", key = \"b\" }]\n", "tls.min_version", 0, "not one of"},

		// ranges
		{"max_connections zero", "[server]\nmax_connections = 0\n", "server.max_connections", 0, "must be >= 1"},
		{"loops negative", "[server]\nloops = -1\n", "server.loops", 0, "must be >= 0"},
		{"header_buffer small", "[server]\nheader_buffer = 512\n", "server.header_buffer", 0, "between 1KiB and 1MiB"},
		{"header_buffer large", "[server]\nheader_buffer = \"2MiB\"\n", "server.header_buffer", 0, "between 1KiB and 1MiB, got 2MiB"},
		{"max_headers zero", "[server]\nmax_headers = 0\n", "server.max_headers", 0, "between 1 and 1000, got 0"},
		{"max_headers over 1000", "[server]\nmax_headers = 1001\n", "server.max_headers", 0, "between 1 and 1000, got 1001"},
		{"max_headers not an integer", "[server]\nmax_headers = \"100\"\n", "server.max_headers", 0, "integer"},
		{"large_header_buffers negative", "[server]\nlarge_header_buffers = -1\n", "server.large_header_buffers", 0, ">= 0"},
		{"large_header_buffer large", "[server]\nlarge_header_buffer = \"17MiB\"\n", "server.large_header_buffer", 0, "between 1KiB and 16MiB, got 17MiB"},
		{"io_buffer small", "[server]\nio_buffer = \"1KiB\"\n", "server.io_buffer", 0, "at least 4KiB"},
		{"size negative", "[server]\nmax_body_size = -1\n", "server.max_body_size", 0, "negative"},
		{"size bad unit", "[cache]\nmax_size = \"64M\"\n", "cache.max_size", 0, "unknown unit"},
		{"weight zero", upstreamWith(`servers = [{ addr = "127.0.0.1:1", weight = 0 }]`), "upstream[0].servers[0].weight", 0, "must be >= 1"},
		{"retries negative", upstreamWith(server + "\nretries = -1"), "upstream[0].retries", 0, "must be >= 0"},
		{"keepalive negative", upstreamWith(server + "\nkeepalive = -5"), "upstream[0].keepalive", 0, "must be >= 0"},
		{"max_fails negative", upstreamWith(server + "\nmax_fails = -1"), "upstream[0].max_fails", 0, "must be >= 0"},
		{"all backup", upstreamWith(`servers = [{ addr = "127.0.0.1:1", backup = true }]`), "upstream[0].servers", 0, "every server is a backup"},
		{"expect_status", upstreamWith(server + "\n[upstream.health_check]\nexpect_status = 99\n"), "upstream[0].health_check.expect_status", 0, "between 100 and 599"},
		{"rise zero", upstreamWith(server + "\n[upstream.health_check]\nrise = 0\n"), "upstream[0].health_check.rise", 0, ">= 1"},
		{"fall zero", upstreamWith(server + "\n[upstream.health_check]\nfall = 0\n"), "upstream[0].health_check.fall", 0, ">= 1"},
		{"health path", upstreamWith(server + "\n[upstream.health_check]\npath = \"healthz\"\n"), "upstream[0].health_check.path", 0, `start with "/"`},
		{"health timeout over interval", upstreamWith(server + "\n[upstream.health_check]\ninterval = \"1s\"\ntimeout = \"2s\"\n"),
			"upstream[0].health_check.timeout", 0, "must not exceed interval"},

		// durations
		{"duration syntax", "[server]\nidle_timeout = \"60\"\n", "server.idle_timeout", 0, "invalid duration"},
		{"duration negative", "[server]\nshutdown_timeout = \"-1s\"\n", "server.shutdown_timeout", 0, "must not be negative"},
		{"timeout zero", "[server]\nread_header_timeout = \"0s\"\n", "server.read_header_timeout", 0, "greater than 0"},
		{"connect_timeout negative", upstreamWith(server + "\nconnect_timeout = \"-2s\""), "upstream[0].connect_timeout", 0, "greater than 0"},
		{"response_timeout zero", upstreamWith(server + "\nresponse_timeout = \"0s\""), "upstream[0].response_timeout", 0, "greater than 0"},
		{"fail_timeout zero", upstreamWith(server + "\nfail_timeout = \"0s\""), "upstream[0].fail_timeout", 0, "greater than 0"},
		{"health interval zero", upstreamWith(server + "\n[upstream.health_check]\ninterval = \"0s\"\n"), "upstream[0].health_check.interval", 0, "greater than 0"},
		{"cache_ttl negative", minimal + "cache_ttl = \"-5s\"\n", "route[0].cache_ttl", 0, "must not be negative"},

		// duplicates
		{"duplicate upstream names", minimal + "[[upstream]]\nname = \"app\"\n" + server + "\n", "upstream[1].name", 0, `duplicate upstream name "app" (also upstream[0])`},
		{"duplicate routes", minimal + "[[route]]\nupstream = \"app\"\npath_prefix = \"/\"\n", "route[1]", 0, "duplicates route[0]"},
		{"duplicate routes host case", minimal + "host = \"A.example\"\n[[route]]\nupstream = \"app\"\nhost = \"a.EXAMPLE\"\n", "route[1]", 0, "duplicates route[0]"},
		{"admin on a port the wildcard listen holds", "[server]\nlisten = \"0.0.0.0:19086\"\n[admin]\nlisten = \"127.0.0.1:19086\"\n", "admin.listen", 0, "already used by server.listen"},
		{"listen under an IPv6 wildcard", "[server]\nlisten = [\"[::]:81\", \"127.0.0.1:81\"]\n", "server.listen[1]", 0, "already used by server.listen[0]"},
		{"listen name under a wildcard", "[server]\nlisten = [\"localhost:82\", \":82\"]\n", "server.listen[1]", 0, "already used by server.listen[0]"},
		{"duplicate listen", "[server]\nlisten = [\"0.0.0.0:80\", \"0.0.0.0:80\"]\n", "server.listen[1]", 0, "already used by server.listen[0]"},

		// route patterns
		{"path_prefix without slash", minimal + "path_prefix = \"api/\"\n", "route[0].path_prefix", 0, `must start with "/"`},
		{"path_prefix with query", minimal + "path_prefix = \"/api?x\"\n", "route[0].path_prefix", 0, "without a query"},
		{"path_prefix with space", minimal + "path_prefix = \"/a b\"\n", "route[0].path_prefix", 0, "spaces"},
		{"host star alone", minimal + "host = \"*\"\n", "route[0].host", 0, "leave host out"},
		{"host inner wildcard", minimal + "host = \"api.*.com\"\n", "route[0].host", 0, "wildcard"},
		{"host partial wildcard", minimal + "host = \"*api.example.com\"\n", "route[0].host", 0, "wildcard"},
		{"host bad port", minimal + "host = \"api.example.com:http\"\n", "route[0].host", 0, "port"},
		{"host empty port", minimal + "host = \"api.example.com:\"\n", "route[0].host", 0, "port"},
		{"host port out of range", minimal + "host = \"api.example.com:70000\"\n", "route[0].host", 0, "port"},
		{"host bad ipv6 port", minimal + "host = \"[::1]:x\"\n", "route[0].host", 0, "port"},
		{"host junk after ipv6", minimal + "host = \"[::1]80\"\n", "route[0].host", 0, "IPv6"},
		{"host bare ipv6", minimal + "host = \"::1\"\n", "route[0].host", 0, "brackets"},
		{"duplicate routes host port", minimal + "host = \"a.example\"\n[[route]]\nupstream = \"app\"\nhost = \"A.example:8080\"\n", "route[1]", 0, "duplicates route[0]"},
		{"host bad chars", minimal + "host = \"api example.com\"\n", "route[0].host", 0, "not a valid host name"},
		{"host empty label", minimal + "host = \"api..example.com\"\n", "route[0].host", 0, "not a valid host name"},
		{"host bad ipv6", minimal + "host = \"[zz::1]\"\n", "route[0].host", 0, "IPv6"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := loadErrors(t, tc.text)
			for _, p := range errs.Problems {
				if p.Key == tc.key && p.Line == tc.line && strings.Contains(p.Msg, tc.msg) {
					// The formatted error names the key (or the line) too.
					want := tc.key + ": "
					if tc.line > 0 {
						want = "line "
					}
					if !strings.Contains(errs.Error(), want) {
						t.Errorf("Error() = %q, does not contain %q", errs.Error(), want)
					}
					return
				}
			}
			t.Errorf("no problem with key %q, line %d, message containing %q; got:\n%v", tc.key, tc.line, tc.msg, errs)
		})
	}
}

func TestSyntaxErrorFormat(t *testing.T) {
	errs := loadErrors(t, "[server]\nloops = 1\n\nlisten = [\n")
	if len(errs.Problems) != 1 {
		t.Fatalf("want one problem, got %v", errs)
	}
	p := errs.Problems[0]
	if p.Line < 4 || p.Key != "" || !strings.HasPrefix(errs.Error(), "line ") {
		t.Errorf("problem = %+v, Error() = %q", p, errs.Error())
	}
}

func TestManyErrorsAtOnce(t *testing.T) {
	text := `
[server]
listen = "nope"
max_connections = 0
header_buffer = "8k"
idle_timeout = 5
bogus = true

[log]
level = "loud"

[[upstream]]
name = "a"
balance = "fastest"
servers = [
  { addr = "127.0.0.1:1" },
  { addr = "127.0.0.1", weight = 0, extra = 1 },
]

[[upstream]]
servers = [{ addr = "127.0.0.1:2" }]
retries = -1

[[upstream]]
name = "a"
servers = [{ addr = "127.0.0.1:3" }]

[[route]]
path_prefix = "x"
upstream = "missing"

[[route]]
upstream = "a"
host = "*.*.com"
`
	errs := loadErrors(t, text)
	want := []string{
		"log.level: ",
		"route[0].path_prefix: ",
		"route[0].upstream: ",
		"route[1].host: ",
		"server.bogus: unknown key",
		"server.header_buffer: ",
		"server.idle_timeout: ",
		"server.listen: ",
		"server.max_connections: ",
		"upstream[0].balance: ",
		"upstream[0].servers[1].addr: ",
		"upstream[0].servers[1].extra: unknown key",
		"upstream[0].servers[1].weight: ",
		"upstream[1].name: is required",
		"upstream[1].retries: ",
		"upstream[2].name: duplicate",
	}
	lines := strings.Split(errs.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(lines), len(want), errs)
	}
	for i := range min(len(lines), len(want)) {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
}

// A value of the wrong type is reported once, not again as missing or out
// of range when validation sees the default it was left at.
func TestWrongTypeReportedOnce(t *testing.T) {
	errs := loadErrors(t, `
[[upstream]]
name = 5
servers = "127.0.0.1:1"
[[route]]
upstream = "app"
path_prefix = 7
`)
	got := map[string]int{}
	for _, p := range errs.Problems {
		got[p.Key]++
	}
	for _, key := range []string{"upstream[0].name", "upstream[0].servers", "route[0].path_prefix"} {
		if got[key] != 1 {
			t.Errorf("%s reported %d times, want 1:\n%v", key, got[key], errs)
		}
	}
}

func TestSizesAndDurations(t *testing.T) {
	c := mustLoad(t, minimal+`
[server]
header_buffer = 16384
max_headers = 1000
io_buffer = "128 KiB"
max_body_size = "10MB"
read_header_timeout = "250ms"
idle_timeout = "1m30s"
shutdown_timeout = "0s"
[cache]
max_size = 1048576
`)
	s := c.Server
	if s.HeaderBuffer != 16384 || s.MaxHeaders != 1000 || s.IOBuffer != 128<<10 || s.MaxBodySize != 10_000_000 || c.Cache.MaxSize != 1<<20 {
		t.Errorf("sizes = %d %d %d %d", s.HeaderBuffer, s.IOBuffer, s.MaxBodySize, c.Cache.MaxSize)
	}
	if s.ReadHeaderTimeout != 250*time.Millisecond || s.IdleTimeout != 90*time.Second || s.ShutdownTimeout != 0 {
		t.Errorf("durations = %v %v %v", s.ReadHeaderTimeout, s.IdleTimeout, s.ShutdownTimeout)
	}

	c = mustLoad(t, minimal+"cache_ttl = \"5s\"\nstrip_prefix = true\nhost = \"*.Example.com\"\npath_prefix = \"/api/\"\n")
	if r := c.Routes[0]; r.CacheTTL != 5*time.Second || !r.StripPrefix || r.Host != "*.example.com" || r.PathPrefix != "/api/" {
		t.Errorf("route = %+v", r)
	}
}

// SPEC section 2: a route's host may carry a port, which is ignored; validation drops it.
func TestRouteHostPortIgnored(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a.com:80", "a.com"},
		{"API.Example.com:8080", "api.example.com"},
		{"*.example.com:443", "*.example.com"},
		{"10.0.0.1:8080", "10.0.0.1"},
		{"[::1]:80", "[::1]"},
		{"[::1]", "[::1]"},
		{"[2001:DB8::1]:0", "[2001:db8::1]"},
		{"www.example.com.:80", "www.example.com"},
	} {
		c := mustLoad(t, minimal+fmt.Sprintf("host = %q\n", tc.in))
		if got := c.Routes[0].Host; got != tc.want {
			t.Errorf("host %q validated as %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"512", 512}, {"512B", 512}, {"8KiB", 8192}, {"8kib", 8192}, {"16MiB", 16 << 20},
		{"1GiB", 1 << 30}, {"2TiB", 2 << 40}, {"64KB", 64000}, {"5MB", 5_000_000}, {"1GB", 1e9},
		{" 64 KiB ", 64 << 10}, {"8388607TiB", 8388607 << 40},
	}
	for _, tc := range good {
		if got, err := ParseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "KiB", "-1", "+1", "1.5MiB", "8k", "8K", "8m", "1 2", "8 KiBs", "9223372036854775808", "8388608TiB", "0x10"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
	for _, n := range []int64{0, 1, 1000, 1024, 8 << 10, 64 << 20, 3 << 30, 1<<40 + 1} {
		if got, err := ParseSize(FormatSize(n)); err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, FormatSize(n), got, err)
		}
	}
	if FormatSize(8192) != "8KiB" || FormatSize(64<<20) != "64MiB" {
		t.Errorf("FormatSize: %s %s", FormatSize(8192), FormatSize(64<<20))
	}
}

func TestHostsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"0.0.0.0", "127.0.0.1", true},
		{"0.0.0.0", "::1", false}, // different families bind side by side
		{"::", "127.0.0.1", true},
		{"", "::1", true},
		{"0.0.0.0", "localhost", true},
		{"localhost", "127.0.0.1", false}, // names are not resolved
		{"::ffff:127.0.0.1", "127.0.0.1", true},
	} {
		if got := hostsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("hostsOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := hostsOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("hostsOverlap(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestListenForms(t *testing.T) {
	c := mustLoad(t, "[server]\nlisten = [\"127.0.0.1:8080\", \"[::1]:8080\", \":0\", \"localhost:81\"]\n")
	if want := []string{"127.0.0.1:8080", "[::1]:8080", ":0", "localhost:81"}; !reflect.DeepEqual(c.Server.Listen, want) {
		t.Errorf("Listen = %v", c.Server.Listen)
	}
}

func TestResolveNames(t *testing.T) {
	c := mustLoad(t, upstreamWith(`servers = [{ addr = "localhost:9001" }, { addr = "[::1]:9002" }]`))
	if a := c.Upstreams[0].Servers[0].TCPAddr; a == nil || !a.IP.IsLoopback() || a.Port != 9001 {
		t.Errorf("localhost resolved to %v", a)
	}
	if a := c.Upstreams[0].Servers[1].TCPAddr; a == nil || !a.IP.Equal(net.IPv6loopback) || a.Port != 9002 {
		t.Errorf("[::1] resolved to %v", a)
	}

	// With a resolver under test control: IPv4 is preferred, failures name the key.
	fake := fakeResolver{"backend.internal": {net.ParseIP("fd00::1"), net.ParseIP("10.0.0.7")}}
	c, err := parse([]byte(upstreamWith(`servers = [{ addr = "backend.internal:80" }]`)), fake)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Upstreams[0].Servers[0].TCPAddr; !a.IP.Equal(net.ParseIP("10.0.0.7")) || a.Port != 80 {
		t.Errorf("backend.internal resolved to %v", a)
	}
	_, err = parse([]byte(upstreamWith(`servers = [{ addr = "gone.internal:80" }]`)), fake)
	if err == nil || !strings.Contains(err.Error(), `upstream[0].servers[0].addr: "gone.internal:80": host "gone.internal" does not resolve`) {
		t.Errorf("err = %v", err)
	}
}

// With resolve set, a server given by name is followed: every address it has at load is kept (sorted,
// IPv4 first), and a name that does not resolve is no error but a warning; the upstream starts without
// its servers. An IP address is never followed, and without resolve a name that does not resolve is
// fatal, as nginx has it (TestResolveNames).
func TestResolveFollowsNames(t *testing.T) {
	fake := fakeResolver{"app.internal": {net.ParseIP("fd00::1"), net.ParseIP("10.0.0.9"), net.ParseIP("10.0.0.7")}}
	c, err := parse([]byte(upstreamWith(`resolve = "30s"
servers = [{ addr = "app.internal:8080", weight = 2 }, { addr = "127.0.0.1:9000" }, { addr = "gone.internal:80", backup = true }]`)), fake)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstreams[0]
	if u.Resolve != 30*time.Second {
		t.Errorf("Resolve = %v", u.Resolve)
	}
	app := u.Servers[0]
	want := []netip.Addr{netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("fd00::1")}
	if !app.Follow || !reflect.DeepEqual(app.Addrs, want) || app.LookupError != "" || app.Host != "app.internal" || app.Port != 8080 {
		t.Errorf("app.internal: %+v", app)
	}
	if a := app.TCPAddr; a == nil || a.String() != "10.0.0.7:8080" {
		t.Errorf("app.internal TCPAddr = %v", a)
	}
	if lit := u.Servers[1]; lit.Follow || lit.Addrs != nil {
		t.Errorf("an IP address is followed: %+v", lit)
	}
	gone := u.Servers[2]
	if !gone.Follow || gone.Addrs != nil || gone.TCPAddr != nil || !strings.Contains(gone.LookupError, "no such host") {
		t.Errorf("gone.internal: %+v", gone)
	}
	ws := c.Warnings()
	if len(ws) != 1 || !strings.Contains(ws[0], `upstream[0].servers[2].addr: host "gone.internal" does not resolve now`) ||
		!strings.Contains(ws[0], "looks it up again every 30s") {
		t.Errorf("warnings = %q", ws)
	}
}

// [resolver] servers take port 53 when the file leaves it out, as -T then prints them.
func TestResolverServers(t *testing.T) {
	c := mustLoad(t, minimal+"[resolver]\nservers = [\"10.0.0.2\", \"[::1]:5353\", \"::2\"]\n")
	if want := []string{"10.0.0.2:53", "[::1]:5353", "[::2]:53"}; !reflect.DeepEqual(c.ResolverServers(), want) {
		t.Errorf("servers = %q, want %q", c.ResolverServers(), want)
	}
	if !strings.Contains(c.TOML(), "[resolver]\nservers = [\"10.0.0.2:53\", \"[::1]:5353\", \"[::2]:53\"]\n") {
		t.Errorf("-T:\n%s", c.TOML())
	}
	if c := mustLoad(t, minimal); c.Resolver != nil || c.ResolverServers() != nil || strings.Contains(c.TOML(), "[resolver]") {
		t.Errorf("no [resolver]: %+v", c.Resolver)
	}
}

type fakeResolver map[string][]net.IP

func (f fakeResolver) lookupIP(_ context.Context, host string) ([]net.IP, error) {
	if ips, ok := f[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.toml"))
	var errs *Errors
	if !errors.As(err, &errs) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %#v; want *Errors wrapping fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "absent.toml") {
		t.Errorf("Error() = %q, want the file named", err.Error())
	}
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"} {
		if got := (Log{Level: level}).SlogLevel().String(); got != want {
			t.Errorf("%s → %s, want %s", level, got, want)
		}
	}
}

func TestNaturalOrder(t *testing.T) {
	ps := []Problem{{Key: "upstream[10].name"}, {Key: "upstream[2].name"}, {Key: "server.loops"}, {Line: 3}}
	sortProblems(ps)
	got := []string{ps[0].String(), ps[1].Key, ps[2].Key, ps[3].Key}
	want := []string{"line 3: ", "server.loops", "upstream[2].name", "upstream[10].name"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %q, want %q", got, want)
	}
}

// FuzzParse checks that no input panics, and that Parse returns either a
// config or a non-empty *Errors. Names never resolve, so fuzzing stays off
// the network.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{specExample, minimal, "", "[server]\nlisten = [1, \"x\"]\n", "[[upstream]]\nservers = [1, {}]\n",
		"route = 5\nupstream = {}\n", "[server]\nheader_buffer = \"99999999999TiB\"\n"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(data, fakeResolver{})
		if err == nil {
			if c == nil {
				t.Fatal("nil config and nil error")
			}
			return
		}
		var errs *Errors
		if c != nil || !errors.As(err, &errs) || len(errs.Problems) == 0 {
			t.Fatalf("c = %v, err = %#v", c, err)
		}
	})
}

// TestWarningsStripPrefixWithoutSlash: -t warns for a strip_prefix route whose prefix does not end in "/"
// ("/api" also takes "/apiary", sent on as "/ary"), and for nothing else.
func TestWarningsStripPrefixWithoutSlash(t *testing.T) {
	c := mustLoad(t, `
[[upstream]]
name = "a"
servers = [ { addr = "127.0.0.1:9001" } ]
[[route]]
path_prefix = "/api"
strip_prefix = true
upstream = "a"
[[route]]
path_prefix = "/v1/"
strip_prefix = true
upstream = "a"
[[route]]
path_prefix = "/raw"
upstream = "a"
`)
	ws := c.Warnings()
	if len(ws) != 1 || !strings.Contains(ws[0], "route[0]") || !strings.Contains(ws[0], `"/apiary"`) {
		t.Fatalf("warnings %q, want one for route[0]", ws)
	}
}

// TestHashKeyAndSlowStart: balance = "hash" with each form of hash_key, and slow_start, decode as written;
// a hash_key on another balance is a warning, not an error (-T writes hash_key for every upstream).
func TestHashKeyAndSlowStart(t *testing.T) {
	for _, k := range []string{"uri", "client_ip", "header:X-User", "cookie:session_id"} {
		c := mustLoad(t, `
[[upstream]]
name = "a"
balance = "hash"
hash_key = "`+k+`"
slow_start = "30s"
servers = [ { addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002" } ]
[[route]]
upstream = "a"
`)
		u := c.Upstreams[0]
		if u.Balance != BalanceHash || u.HashKey != k || u.SlowStart != 30*time.Second {
			t.Fatalf("%s: got balance %q hash_key %q slow_start %v", k, u.Balance, u.HashKey, u.SlowStart)
		}
		if ws := c.Warnings(); len(ws) != 0 {
			t.Fatalf("%s: warnings %q", k, ws)
		}
	}
	c := mustLoad(t, `
[[upstream]]
name = "a"
servers = [ { addr = "127.0.0.1:9001" } ]
[[route]]
upstream = "a"
`)
	if u := c.Upstreams[0]; u.HashKey != "uri" || u.SlowStart != 0 {
		t.Fatalf("defaults: hash_key %q slow_start %v, want \"uri\" and 0s", u.HashKey, u.SlowStart)
	}
	c = mustLoad(t, `
[[upstream]]
name = "a"
balance = "least_conn"
hash_key = "header:X-User"
servers = [ { addr = "127.0.0.1:9001" } ]
[[route]]
upstream = "a"
`)
	if ws := c.Warnings(); len(ws) != 1 || !strings.Contains(ws[0], "upstream[0]: hash_key \"header:X-User\" has no effect") {
		t.Fatalf("warnings %q, want one for upstream[0]'s hash_key", ws)
	}
}

// TestTLSListenList: [tls] listen takes one address or several (issue 22), each claimed like
// server.listen's.
func TestTLSListenList(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tls.toml")
	body := "[server]\nlisten = \"127.0.0.1:8080\"\n[[upstream]]\nname = \"u\"\nservers = [{ addr = \"127.0.0.1:9000\" }]\n[[route]]\npath_prefix = \"/\"\nupstream = \"u\"\n" +
		"[tls]\nlisten = [\"127.0.0.1:8443\", \"127.0.0.1:9443\"]\ncertificates = [{ cert = \"a\", key = \"b\" }]\n"
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.TLS.Listen, []string{"127.0.0.1:8443", "127.0.0.1:9443"}) {
		t.Fatalf("tls.listen = %q", c.TLS.Listen)
	}
	if err := os.WriteFile(f, []byte(strings.Replace(body, "127.0.0.1:9443", "127.0.0.1:8080", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f); err == nil || !strings.Contains(err.Error(), "tls.listen[1]") {
		t.Fatalf("a TLS address that server.listen uses: %v", err)
	}
}

// TestUpstreamTLSWarning: insecure_skip_verify checks, and is warned about, naming the key and the
// upstream; an upstream that verifies is not.
func TestUpstreamTLSWarning(t *testing.T) {
	c := mustLoad(t, `
[[upstream]]
name = "a"
servers = [ { addr = "127.0.0.1:9001" } ]
[upstream.tls]
ca = "ca.pem"
[[upstream]]
name = "b"
servers = [ { addr = "127.0.0.1:9002" } ]
[upstream.tls]
insecure_skip_verify = true
[[route]]
upstream = "a"
`)
	if c.Upstreams[0].TLS == nil || c.Upstreams[0].TLS.CA != "ca.pem" || !c.Upstreams[1].TLS.InsecureSkipVerify {
		t.Fatalf("decoded %+v %+v", c.Upstreams[0].TLS, c.Upstreams[1].TLS)
	}
	ws := c.Warnings()
	if len(ws) != 1 || !strings.Contains(ws[0], "upstream[1].tls.insecure_skip_verify") || !strings.Contains(ws[0], `"b"`) {
		t.Fatalf("warnings %q, want one for upstream[1]", ws)
	}
}
