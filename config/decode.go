package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

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

func (t *table) key(k string) string {
	if t.path == "" {
		return k
	}
	return t.path + "." + k
}

func (t *table) get(k string) (any, bool) {
	t.seen[k] = true
	v, ok := t.m[k]
	return v, ok
}

// finish reports every key of the table that no getter asked for.
func (t *table) finish() {
	var unknown []string
	for k := range t.m {
		if !t.seen[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	known := make([]string, 0, len(t.seen))
	for k := range t.seen {
		known = append(known, k)
	}
	slices.Sort(known)
	for _, k := range unknown {
		if s := suggest(k, known); s != "" {
			t.d.addf(t.key(k), "unknown key (did you mean %q?)", s)
		} else {
			t.d.addf(t.key(k), "unknown key")
		}
	}
}

func (t *table) str(k string, dst *string) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	s, isStr := v.(string)
	if !isStr {
		t.d.wrongType(t.key(k), "a string", v)
		return
	}
	*dst = s
}

func (t *table) boolean(k string, dst *bool) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	b, isBool := v.(bool)
	if !isBool {
		t.d.wrongType(t.key(k), "a boolean (true or false)", v)
		return
	}
	*dst = b
}

func (t *table) integer(k string, dst *int) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	n, isInt := v.(int64)
	if !isInt {
		t.d.wrongType(t.key(k), "an integer", v)
		return
	}
	if n < math.MinInt || n > math.MaxInt {
		t.d.invalid(t.key(k), "%d is out of range", n)
		return
	}
	*dst = int(n)
}

// size decodes an integer number of bytes or a size string (ParseSize).
func (t *table) size(k string, dst *int64) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	switch x := v.(type) {
	case int64:
		if x < 0 {
			t.d.invalid(t.key(k), "%v", errNegativeSize)
			return
		}
		*dst = x
	case string:
		n, err := ParseSize(x)
		if err != nil {
			t.d.invalid(t.key(k), "%v", err)
			return
		}
		*dst = n
	default:
		t.d.wrongType(t.key(k), `a size (an integer number of bytes or a string such as "8KiB")`, v)
	}
}

// sizeInt is size for fields held as int.
func (t *table) sizeInt(k string, dst *int) {
	n := int64(*dst)
	t.size(k, &n)
	if n > math.MaxInt {
		t.d.invalid(t.key(k), "%d is out of range", n)
		return
	}
	*dst = int(n)
}

func (t *table) duration(k string, dst *time.Duration) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	s, isStr := v.(string)
	if !isStr {
		t.d.wrongType(t.key(k), `a duration string such as "250ms" or "30s"`, v)
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		t.d.invalid(t.key(k), "invalid duration %q: want a Go duration such as \"250ms\", \"30s\" or \"1m30s\"", s)
		return
	}
	*dst = dur
}

// sub returns the sub-table at k, or nil when k is absent or not a table.
func (t *table) sub(k string) *table {
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		hint := "a table"
		if _, isArr := v.([]map[string]any); isArr {
			h := tomlHeader(t.key(k))
			hint = fmt.Sprintf("a table ([%s], not [[%s]])", h, h)
		}
		t.d.wrongType(t.key(k), hint, v)
		return nil
	}
	return &table{d: t.d, path: t.key(k), m: m, seen: map[string]bool{}}
}

// tomlHeader is the table header a key is written under in TOML: its path without the array indices
// ("upstream[0].health_check" is written [upstream.health_check], inside the [[upstream]] it belongs to).
func tomlHeader(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		if key[i] == '[' {
			if j := strings.IndexByte(key[i:], ']'); j > 0 {
				i += j
				continue
			}
		}
		b.WriteByte(key[i])
	}
	return b.String()
}

// tables returns the array of tables at k. An element that is not a table
// comes back as nil, so that the indices of the others stay as written.
func (t *table) tables(k string) (elems []*table, present bool) {
	v, ok := t.get(k)
	if !ok {
		return nil, false
	}
	var items []any
	switch x := v.(type) {
	case []map[string]any:
		for _, m := range x {
			items = append(items, m)
		}
	case []any:
		items = x
	default:
		hint := "an array of tables"
		if _, isMap := v.(map[string]any); isMap && t.path == "" {
			hint = fmt.Sprintf("an array of tables ([[%s]], not [%s])", k, k)
		}
		t.d.wrongType(t.key(k), hint, v)
		return nil, true
	}
	elems = make([]*table, len(items))
	for i, item := range items {
		key := fmt.Sprintf("%s[%d]", t.key(k), i)
		m, isMap := item.(map[string]any)
		if !isMap {
			t.d.wrongType(key, "a table", item)
			continue
		}
		elems[i] = &table{d: t.d, path: key, m: m, seen: map[string]bool{}}
	}
	return elems, true
}

// stringList decodes a string or an array of strings, and in keys the key that names each one where a
// problem is reported: k itself for a string, k[i] with the element's place in the file for an array
// (an element of the wrong type is dropped, and the others keep their own index).
func (t *table) stringList(k string, dst, keys *[]string) {
	v, ok := t.get(k)
	if !ok {
		return
	}
	switch x := v.(type) {
	case string:
		*dst, *keys = []string{x}, []string{t.key(k)}
	case []any:
		list := make([]string, 0, len(x))
		names := make([]string, 0, len(x))
		for i, item := range x {
			key := fmt.Sprintf("%s[%d]", t.key(k), i)
			s, isStr := item.(string)
			if !isStr {
				t.d.wrongType(key, "a string", item)
				continue
			}
			list, names = append(list, s), append(names, key)
		}
		*dst, *keys = list, names
	default:
		t.d.wrongType(t.key(k), "a string or an array of strings", v)
	}
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

// tomlType names the TOML type of a decoded value, for error messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a datetime"
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// suggest returns the known key closest to k when it is close enough to be
// a likely typo, else "".
func suggest(k string, known []string) string {
	best, bestDist := "", 3
	for _, cand := range known {
		if dist := editDistance(strings.ToLower(k), cand); dist < bestDist {
			best, bestDist = cand, dist
		}
	}
	if bestDist >= len(k) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
