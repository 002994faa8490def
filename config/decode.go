package config

import (
	"bytes"
	"errors"

	"github.com/BurntSushi/toml"
)

// decode reads data into a generic tree and walks it by hand into a Config
// with defaults filled in. Walking the tree ourselves, rather than letting
// toml decode into structs, is what lets every unknown key and wrong type be
// reported with its array indices ("upstream[1].servers[0].wieght"): toml's
// MetaData.Undecoded names keys without them.
//
// The decoder it returns holds the problems found, the set of keys that
// failed to decode, whose values were left at their defaults (validation
// problems on those keys are dropped as echoes), and the key of each listen
// address as written. A syntax error ends decoding at once and is returned
// as err.
func decode(data []byte) (*Config, *decoder, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, nil, syntaxError(data, err)
	}
	d := &decoder{bad: map[string]bool{}}
	c := d.config(d.root(raw))
	return c, d, nil
}

func syntaxError(data []byte, err error) *Errors {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Errors{Problems: []Problem{{Line: syntaxLine(data, pe.Position), Msg: pe.Message}}}
	}
	var ppe *toml.ParseError
	if errors.As(err, &ppe) {
		return &Errors{Problems: []Problem{{Line: syntaxLine(data, ppe.Position), Msg: ppe.Message}}}
	}
	return &Errors{Problems: []Problem{{Msg: err.Error()}}}
}

// syntaxLine is the line of a syntax error. toml counts a line's newline before it reports an error
// found at that newline ("[log" then a newline is reported on the next line), so the line is counted
// here from the error's byte offset, where toml gives one that does not point past its own line.
func syntaxLine(data []byte, pos toml.Position) int {
	if pos.Start <= 0 || pos.Start > len(data) {
		return pos.Line
	}
	return min(1+bytes.Count(data[:pos.Start], []byte{'\n'}), pos.Line)
}

type decoder struct {
	problems
	bad        map[string]bool
	listenKeys []string // the key that names each server.listen entry, as the file wrote it
}

// wrongType records that key holds a value of the wrong TOML type.
func (d *decoder) wrongType(key, want string, v any) {
	d.bad[key] = true
	d.addf(key, "must be %s, got %s", want, tomlType(v))
}

// invalid records a value of the right type that still does not decode
// (a size or duration string that does not parse).
func (d *decoder) invalid(key, format string, args ...any) {
	d.bad[key] = true
	d.addf(key, format, args...)
}

// table is one TOML table being decoded. Every getter marks its key as
// known; finish reports the keys nobody asked for.
type table struct {
	d    *decoder
	path string
	m    map[string]any
	seen map[string]bool
}

func (d *decoder) root(m map[string]any) *table {
	return &table{d: d, m: m, seen: map[string]bool{}}
}

func (d *decoder) config(root *table) *Config {
	c := Default()
	if t := root.sub("server"); t != nil {
		d.server(t, &c.Server)
	}
	if t := root.sub("tls"); t != nil {
		tls := DefaultTLS()
		var tlsListenKeys []string // validate names them tls.listen or tls.listen[i]
		t.stringList("listen", &tls.Listen, &tlsListenKeys)
		if certs, ok := t.tables("certificates"); ok {
			tls.Certificates = make([]Certificate, len(certs))
			for i, ct := range certs {
				if ct == nil {
					continue
				}
				ct.str("cert", &tls.Certificates[i].Cert)
				ct.str("key", &tls.Certificates[i].Key)
				ct.finish()
			}
		}
		t.str("min_version", &tls.MinVersion)
		t.finish()
		c.TLS = &tls
	}
	if t := root.sub("admin"); t != nil {
		admin := DefaultAdmin()
		t.str("listen", &admin.Listen)
		t.finish()
		c.Admin = &admin
	}
	if t := root.sub("resolver"); t != nil {
		c.Resolver = &Resolver{}
		var keys []string // validate names them resolver.servers[i] whatever the form
		t.stringList("servers", &c.Resolver.Servers, &keys)
		t.finish()
	}
	if t := root.sub("log"); t != nil {
		t.str("level", &c.Log.Level)
		t.str("format", &c.Log.Format)
		t.str("access", &c.Log.Access)
		t.str("access_format", &c.Log.AccessFormat)
		t.finish()
	}
	if t := root.sub("cache"); t != nil {
		t.size("max_size", &c.Cache.MaxSize)
		t.finish()
	}
	ups, _ := root.tables("upstream")
	if len(ups) > 0 {
		c.Upstreams = make([]Upstream, len(ups))
	}
	for i, t := range ups {
		c.Upstreams[i] = DefaultUpstream()
		if t != nil {
			d.upstream(t, &c.Upstreams[i])
		}
	}
	routes, _ := root.tables("route")
	if len(routes) > 0 {
		c.Routes = make([]Route, len(routes))
	}
	for i, t := range routes {
		c.Routes[i] = DefaultRoute()
		if t != nil {
			d.route(t, &c.Routes[i])
		}
	}
	root.finish()
	return c
}

func (d *decoder) server(t *table, s *Server) {
	t.stringList("listen", &s.Listen, &d.listenKeys)
	t.integer("loops", &s.Loops)
	t.integer("max_connections", &s.MaxConnections)
	t.sizeInt("header_buffer", &s.HeaderBuffer)
	t.sizeInt("large_header_buffer", &s.LargeHeaderBuffer)
	t.integer("large_header_buffers", &s.LargeHeaderBufs)
	t.integer("max_headers", &s.MaxHeaders)
	t.sizeInt("io_buffer", &s.IOBuffer)
	t.duration("read_header_timeout", &s.ReadHeaderTimeout)
	t.duration("idle_timeout", &s.IdleTimeout)
	t.size("max_body_size", &s.MaxBodySize)
	t.duration("shutdown_timeout", &s.ShutdownTimeout)
	t.boolean("reuse_port", &s.ReusePort)
	t.str("pid_file", &s.PidFile)
	t.finish()
}

func (d *decoder) upstream(t *table, u *Upstream) {
	t.str("name", &u.Name)
	t.str("balance", &u.Balance)
	t.str("hash_key", &u.HashKey)
	t.duration("slow_start", &u.SlowStart)
	if servers, ok := t.tables("servers"); ok {
		u.Servers = make([]UpstreamServer, len(servers))
		for i, st := range servers {
			u.Servers[i] = DefaultUpstreamServer()
			if st == nil {
				continue
			}
			st.str("addr", &u.Servers[i].Addr)
			st.integer("weight", &u.Servers[i].Weight)
			st.boolean("backup", &u.Servers[i].Backup)
			st.finish()
		}
	}
	t.integer("keepalive", &u.Keepalive)
	t.duration("connect_timeout", &u.ConnectTimeout)
	t.duration("response_timeout", &u.ResponseTimeout)
	t.integer("max_fails", &u.MaxFails)
	t.duration("fail_timeout", &u.FailTimeout)
	t.integer("retries", &u.Retries)
	t.duration("resolve", &u.Resolve)
	if ht := t.sub("health_check"); ht != nil {
		hc := DefaultHealthCheck()
		ht.str("path", &hc.Path)
		ht.duration("interval", &hc.Interval)
		ht.duration("timeout", &hc.Timeout)
		ht.integer("expect_status", &hc.ExpectStatus)
		ht.integer("rise", &hc.Rise)
		ht.integer("fall", &hc.Fall)
		ht.finish()
		u.HealthCheck = &hc
	}
	if tt := t.sub("tls"); tt != nil {
		var ut UpstreamTLS
		tt.str("server_name", &ut.ServerName)
		tt.str("ca", &ut.CA)
		tt.str("cert", &ut.Cert)
		tt.str("key", &ut.Key)
		tt.boolean("insecure_skip_verify", &ut.InsecureSkipVerify)
		tt.finish()
		u.TLS = &ut
	}
	t.finish()
}

func (d *decoder) route(t *table, r *Route) {
	t.str("host", &r.Host)
	t.str("path_prefix", &r.PathPrefix)
	t.str("upstream", &r.Upstream)
	t.boolean("strip_prefix", &r.StripPrefix)
	t.duration("cache_ttl", &r.CacheTTL)
	t.finish()
}
