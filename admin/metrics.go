package admin

import (
	"math"
	"strconv"
	"strings"
)

// ContentType is the content type of /metrics: the Prometheus text exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// AppendMetrics appends s in the Prometheus text exposition format 0.0.4.
func AppendMetrics(b []byte, s *Snapshot) []byte {
	w := promWriter{b: b}

	w.family("switchflow_requests_total", "counter", "Requests answered, by route and status class (route \"none\": no route matched or refused before routing).")
	for i := range s.Routes {
		r := &s.Routes[i]
		w.classes("switchflow_requests_total", &r.Requests, "route", r.Name)
	}

	w.family("switchflow_request_duration_seconds", "histogram", "Time from a request head read to its response handed to the client, in seconds.")
	var cum uint64
	for i, bound := range s.Duration.Bounds {
		if i < len(s.Duration.Counts) {
			cum += s.Duration.Counts[i]
		}
		w.sample("switchflow_request_duration_seconds_bucket", "", uint64Text(cum), "le", formatFloat(bound))
	}
	w.sample("switchflow_request_duration_seconds_bucket", "", uint64Text(s.Duration.Count), "le", "+Inf")
	w.sample("switchflow_request_duration_seconds_sum", "", formatFloat(s.Duration.Sum))
	w.sample("switchflow_request_duration_seconds_count", "", uint64Text(s.Duration.Count))

	w.family("switchflow_client_connections", "gauge", "Open client connections: active (a request in flight) or idle (waiting for one).")
	w.sample("switchflow_client_connections", "", int64Text(s.Clients.Active), "state", "active")
	w.sample("switchflow_client_connections", "", int64Text(s.Clients.Idle), "state", "idle")
	w.scalar("switchflow_connections_refused_total", "counter", "Client connections answered with 503 and closed at max_connections.", uint64Text(s.Clients.Refused))
	w.scalar("switchflow_accept_errors_total", "counter", "Times accepting paused for lack of file descriptors or socket memory (new clients wait in the kernel's queue).", uint64Text(s.Clients.AcceptErrors))

	w.scalar("switchflow_received_bytes_total", "counter", "Bytes read from clients.", uint64Text(s.Bytes.Received))
	w.scalar("switchflow_sent_bytes_total", "counter", "Bytes written to clients.", uint64Text(s.Bytes.Sent))

	eachServer := func(fn func(u *Upstream, sv *Server)) {
		for i := range s.Upstreams {
			u := &s.Upstreams[i]
			for j := range u.Servers {
				fn(u, &u.Servers[j])
			}
		}
	}
	w.family("switchflow_upstream_requests_total", "counter", "Requests by the upstream server their last attempt went to, and status class.")
	eachServer(func(u *Upstream, sv *Server) {
		w.classes("switchflow_upstream_requests_total", &sv.Requests, "upstream", u.Name, "server", sv.Name)
	})
	serverGauge := func(name, typ, help string, v func(*Server) string) {
		w.family(name, typ, help)
		eachServer(func(u *Upstream, sv *Server) {
			w.sample(name, "", v(sv), "upstream", u.Name, "server", sv.Name)
		})
	}
	serverGauge("switchflow_upstream_server_up", "gauge", "1 while the upstream server takes requests, 0 while it is down.",
		func(sv *Server) string { return boolText(sv.Up) })
	serverGauge("switchflow_upstream_requests_in_flight", "gauge", "Requests in flight on the upstream server.",
		func(sv *Server) string { return int64Text(sv.InFlight) })
	serverGauge("switchflow_upstream_connections_open", "gauge", "Open backend connections to the server, idle ones included.",
		func(sv *Server) string { return int64Text(sv.ConnsOpen) })
	serverGauge("switchflow_upstream_connections_idle", "gauge", "Idle backend connections kept for the server (keepalive pools).",
		func(sv *Server) string { return int64Text(sv.ConnsIdle) })

	w.scalar("switchflow_cache_hits_total", "counter", "Requests answered from the micro-cache.", uint64Text(s.Cache.Hits))
	w.scalar("switchflow_cache_misses_total", "counter", "Cacheable requests sent to the backend.", uint64Text(s.Cache.Misses))
	w.scalar("switchflow_cache_bypasses_total", "counter", "Requests on caching routes the cache may not answer (method, body, Authorization, Cookie, Upgrade).", uint64Text(s.Cache.Bypasses))
	w.scalar("switchflow_cache_evictions_total", "counter", "Entries evicted to stay within cache.max_size.", uint64Text(s.Cache.Evictions))
	w.scalar("switchflow_cache_bytes", "gauge", "Bytes the micro-cache holds (heads, bodies, keys and overhead).", int64Text(s.Cache.Bytes))
	w.scalar("switchflow_cache_entries", "gauge", "Entries the micro-cache holds.", int64Text(int64(s.Cache.Entries)))

	w.scalar("switchflow_access_log_dropped_total", "counter", "Access log lines dropped because the writer lagged.", uint64Text(s.AccessLog.Dropped))
	w.family("switchflow_config_reloads_total", "counter", "Reloads asked for (SIGHUP), by result: ok (applied) or refused (the running configuration stayed).")
	w.sample("switchflow_config_reloads_total", "", uint64Text(s.Reloads.OK), "result", "ok")
	w.sample("switchflow_config_reloads_total", "", uint64Text(s.Reloads.Refused), "result", "refused")
	lastOK := 0.0
	if !s.Reloads.LastOK.IsZero() {
		lastOK = float64(s.Reloads.LastOK.UnixMilli()) / 1e3
	}
	w.scalar("switchflow_config_last_reload_success_timestamp_seconds", "gauge", "When the configuration in force was loaded, in Unix seconds: the start, or the last reload applied.", formatFloat(lastOK))
	w.scalar("switchflow_config_last_reload_successful", "gauge", "0 when the last reload asked for was refused, else 1.", boolText(!s.Reloads.LastFailed))
	w.scalar("switchflow_draining", "gauge", "1 after SIGTERM while requests in flight finish.", boolText(s.Draining))
	w.tls(&s.TLS) // tls.go
	return w.b
}

type promWriter struct{ b []byte }

func (w *promWriter) family(name, typ, help string) {
	w.b = append(w.b, "# HELP "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	w.b = appendHelp(w.b, help)
	w.b = append(w.b, "\n# TYPE "...)
	w.b = append(w.b, name...)
	w.b = append(w.b, ' ')
	w.b = append(w.b, typ...)
	w.b = append(w.b, '\n')
}

// sample writes `name{k="v",...} value`. labels are name/value pairs; extra is one more rendered pair
// ("" for none), kept for callers that add a label to a fixed set.
// scalar writes a family that has one sample and no labels.
func (w *promWriter) scalar(name, typ, help, value string) {
	w.family(name, typ, help)
	w.sample(name, "", value)
}

func (w *promWriter) sample(name, extra, value string, labels ...string) {
	w.b = append(w.b, name...)
	if len(labels) > 0 || extra != "" {
		w.b = append(w.b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = append(w.b, labels[i]...)
			w.b = append(w.b, `="`...)
			w.b = appendLabelValue(w.b, labels[i+1])
			w.b = append(w.b, '"')
		}
		if extra != "" {
			if len(labels) > 0 {
				w.b = append(w.b, ',')
			}
			w.b = append(w.b, extra...)
		}
		w.b = append(w.b, '}')
	}
	w.b = append(w.b, ' ')
	w.b = append(w.b, value...)
	w.b = append(w.b, '\n')
}

// classes writes one sample per status class 1xx-5xx, and "other" when it is not zero.
func (w *promWriter) classes(name string, c *Classes, labels ...string) {
	for i := 1; i <= 6; i++ {
		k := i % 6 // 1..5, then 0 ("other")
		if k == 0 && c[0] == 0 {
			continue
		}
		w.sample(name, `code="`+ClassName(k)+`"`, uint64Text(c[k]), labels...)
	}
}

// appendLabelValue escapes a label value: backslash, double quote and line feed.
func appendLabelValue(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendHelp escapes HELP text: backslash and line feed.
func appendHelp(b []byte, v string) []byte {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	return append(b, r.Replace(v)...)
}

func uint64Text(v uint64) string { return strconv.FormatUint(v, 10) }
func int64Text(v int64) string   { return strconv.FormatInt(v, 10) }

func boolText(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

// formatFloat writes a sample value or a bucket bound as Prometheus reads it.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
