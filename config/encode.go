package config

import (
	"strconv"
	"strings"
	"time"
)

// TOML writes c as a configuration file with every key set, defaults included (switchflow -T). Parsing
// the result gives c back (upstream addresses resolved again). Sizes are written in the largest binary
// unit that divides them, durations as Go durations, host names lower-cased as Validate left them.
func (c *Config) TOML() string {
	var w tomlWriter
	s := &c.Server
	w.table("server")
	w.strings("listen", s.Listen)
	w.int("loops", s.Loops, "0 = one event loop per CPU core")
	w.int("max_connections", s.MaxConnections, "")
	w.size("header_buffer", int64(s.HeaderBuffer))
	w.size("large_header_buffer", int64(s.LargeHeaderBuffer))
	w.int("large_header_buffers", s.LargeHeaderBufs, "0 = max_connections / 16")
	w.int("max_headers", s.MaxHeaders, "header lines in a request head and in a response head")
	w.size("io_buffer", int64(s.IOBuffer))
	w.duration("read_header_timeout", s.ReadHeaderTimeout)
	w.duration("idle_timeout", s.IdleTimeout)
	w.size("max_body_size", s.MaxBodySize)
	w.duration("shutdown_timeout", s.ShutdownTimeout)
	w.bool("reuse_port", s.ReusePort)
	w.str("pid_file", s.PidFile)
	if t := c.TLS; t != nil {
		w.table("tls")
		w.strings("listen", t.Listen)
		w.str("min_version", t.MinVersion)
		for _, cert := range t.Certificates {
			w.arrayTable("tls.certificates")
			w.str("cert", cert.Cert)
			w.str("key", cert.Key)
		}
	}
	if a := c.Admin; a != nil {
		w.table("admin")
		w.str("listen", a.Listen)
	}
	if rs := c.Resolver; rs != nil {
		w.table("resolver")
		w.strings("servers", rs.Servers)
	}
	w.table("log")
	w.str("level", c.Log.Level)
	w.str("format", c.Log.Format)
	w.str("access", c.Log.Access)
	w.str("access_format", c.Log.AccessFormat)
	w.table("cache")
	w.size("max_size", c.Cache.MaxSize)
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		w.arrayTable("upstream")
		w.str("name", u.Name)
		w.str("balance", u.Balance)
		w.str("hash_key", u.HashKey)
		w.duration("slow_start", u.SlowStart)
		w.b.WriteString("servers = [")
		for j, sv := range u.Servers {
			if j > 0 {
				w.b.WriteByte(',')
			}
			w.b.WriteString("\n  { addr = " + tomlQuote(sv.Addr) + ", weight = " + strconv.Itoa(sv.Weight) +
				", backup = " + strconv.FormatBool(sv.Backup) + " }")
		}
		w.b.WriteString(" ]\n")
		w.int("keepalive", u.Keepalive, "")
		w.duration("connect_timeout", u.ConnectTimeout)
		w.duration("response_timeout", u.ResponseTimeout)
		w.int("max_fails", u.MaxFails, "")
		w.duration("fail_timeout", u.FailTimeout)
		w.int("retries", u.Retries, "")
		w.duration("resolve", u.Resolve)
		if hc := u.HealthCheck; hc != nil {
			w.table("upstream.health_check")
			w.str("path", hc.Path)
			w.duration("interval", hc.Interval)
			w.duration("timeout", hc.Timeout)
			w.int("expect_status", hc.ExpectStatus, "")
			w.int("rise", hc.Rise, "")
			w.int("fall", hc.Fall, "")
		}
		if ut := u.TLS; ut != nil {
			w.table("upstream.tls")
			w.kv("server_name", tomlQuote(ut.ServerName), `"" = the host of each server's addr`)
			w.kv("ca", tomlQuote(ut.CA), `"" = the system's roots`)
			w.str("cert", ut.Cert)
			w.str("key", ut.Key)
			w.bool("insecure_skip_verify", ut.InsecureSkipVerify)
		}
	}
	for _, r := range c.Routes {
		w.arrayTable("route")
		w.str("host", r.Host)
		w.str("path_prefix", r.PathPrefix)
		w.str("upstream", r.Upstream)
		w.bool("strip_prefix", r.StripPrefix)
		w.duration("cache_ttl", r.CacheTTL)
	}
	return w.b.String()
}

type tomlWriter struct{ b strings.Builder }

func (w *tomlWriter) header(h string) {
	if w.b.Len() > 0 {
		w.b.WriteByte('\n')
	}
	w.b.WriteString(h)
	w.b.WriteByte('\n')
}

func (w *tomlWriter) table(name string)      { w.header("[" + name + "]") }
func (w *tomlWriter) arrayTable(name string) { w.header("[[" + name + "]]") }

func (w *tomlWriter) kv(k, v, comment string) {
	w.b.WriteString(k + " = " + v)
	if comment != "" {
		w.b.WriteString("  # " + comment)
	}
	w.b.WriteByte('\n')
}

func (w *tomlWriter) str(k, v string) { w.kv(k, tomlQuote(v), "") }
func (w *tomlWriter) bool(k string, v bool) {
	w.kv(k, strconv.FormatBool(v), "")
}
func (w *tomlWriter) int(k string, v int, comment string) { w.kv(k, strconv.Itoa(v), comment) }
func (w *tomlWriter) size(k string, v int64) {
	w.kv(k, tomlQuote(FormatSize(v)), "")
}
func (w *tomlWriter) duration(k string, v time.Duration) { w.kv(k, tomlQuote(v.String()), "") }

func (w *tomlWriter) strings(k string, vs []string) {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = tomlQuote(v)
	}
	w.kv(k, "["+strings.Join(q, ", ")+"]", "")
}

// tomlQuote writes v as a TOML basic string: backslash, double quote and control characters escaped
// (TOML has no \x escapes, which strconv.Quote writes).
func tomlQuote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789ABCDEF"[r>>4])
			b.WriteByte("0123456789ABCDEF"[r&15])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
