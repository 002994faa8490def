package admin

import (
	"encoding/json"
	"strconv"
	"time"
)

// Source is what the admin listener reports on: the engine.
type Source interface {
	// Snapshot returns the figures now, summed over the event loops. Called on the admin goroutine.
	Snapshot() *Snapshot
	// Draining reports whether the proxy has begun a graceful stop (SIGTERM): /healthz then answers 503.
	Draining() bool
}

// Classes counts requests by status class: index 1 to 5 for 1xx to 5xx, index 0 for any other status
// (a backend may answer 600 to 999).
type Classes [6]uint64

// ClassName is the label of class index i: "1xx" to "5xx", "other" for 0.
func ClassName(i int) string {
	if i >= 1 && i <= 5 {
		return strconv.Itoa(i) + "xx"
	}
	return "other"
}

// Total is the sum over every class.
func (c *Classes) Total() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// MarshalJSON writes {"1xx":n,...,"5xx":n}, with "other" only when it is not zero.
func (c Classes) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i := 1; i <= 5; i++ {
		if i > 1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, ClassName(i)...)
		b = append(b, `":`...)
		b = strconv.AppendUint(b, c[i], 10)
	}
	if c[0] != 0 {
		b = append(b, `,"other":`...)
		b = strconv.AppendUint(b, c[0], 10)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Classes) UnmarshalJSON(b []byte) error {
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*c = Classes{}
	for i := range c {
		c[i] = m[ClassName(i)]
	}
	return nil
}

// Snapshot is everything /metrics and /status report. Counters (_total) only grow while the process
// runs; gauges are the value now. Routes and servers are those of the configuration in force; a route or
// server that a reload keeps (same route host+path_prefix, same upstream name and server address) keeps
// its counts.
type Snapshot struct {
	Draining bool `json:"draining"`
	Loops    int  `json:"loops"`

	Clients Clients `json:"clients"`
	Bytes   Bytes   `json:"bytes"`

	// Requests answered, by route, in configuration order; the last is "none": requests no route
	// matched (404) and requests refused before they could be routed (400, 408, 414, 431, ...).
	Routes   []Route   `json:"routes"`
	Duration Histogram `json:"request_duration_seconds"`

	Upstreams []Upstream `json:"upstreams"`
	Cache     Cache      `json:"cache"`

	AccessLog AccessLog `json:"access_log"`
	Reloads   Reloads   `json:"reloads"`

	TLS TLS `json:"tls"` // tls.go
}

// Reloads are the reloads asked for (SIGHUP) since the start.
type Reloads struct {
	OK         uint64    `json:"ok_total"`      // applied
	Refused    uint64    `json:"refused_total"` // refused: the file did not check, the running one stayed
	LastOK     time.Time `json:"last_ok"`       // when the configuration in force was loaded (the start's, until a reload)
	LastFailed bool      `json:"last_failed"`   // the last reload asked for was refused
}

// Clients are the client connections.
type Clients struct {
	Active  int64  `json:"active"`        // open, and with a request in flight or bytes of one received
	Idle    int64  `json:"idle"`          // open and waiting for a request
	Refused uint64 `json:"refused_total"` // answered with the prebuilt 503 at max_connections
	// Times accepting paused for lack of file descriptors (or of socket memory): the clients waited in
	// the kernel's queue meanwhile (SPEC 3.3).
	AcceptErrors uint64 `json:"accept_errors_total"`
}

// Bytes are the bytes read from and written to clients.
type Bytes struct {
	Received uint64 `json:"received_total"`
	Sent     uint64 `json:"sent_total"`
}

// Route is one route's requests.
type Route struct {
	Name     string  `json:"name"`     // host + path_prefix as configured ("/api/", "api.example.com/"); "none"
	Upstream string  `json:"upstream"` // "" for "none"
	Requests Classes `json:"requests"`
}

// Histogram is the request duration histogram: Counts[i] requests took at most Bounds[i] seconds and
// more than Bounds[i-1]; the last count is those over the last bound (+Inf). Not cumulative.
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Sum    float64   `json:"sum"`
	Count  uint64    `json:"count"`
}

// Upstream is one [[upstream]] group.
type Upstream struct {
	Name    string   `json:"name"`
	Servers []Server `json:"servers"`
}

// Server is one upstream server's state and counts.
type Server struct {
	Name  string `json:"name"` // the address as configured; with resolve, "host:port (address)" for each address of the name
	Addr  string `json:"addr"` // the address dialled: as resolved at load, or the name's address
	Up    bool   `json:"up"`
	State string `json:"state"` // "up" or "down"
	// While down: "active" (health checks) or "passive" (max_fails), why, and since when (RFC 3339).
	DownBy     string  `json:"down_by,omitempty"`
	DownReason string  `json:"down_reason,omitempty"`
	DownSince  string  `json:"down_since,omitempty"`
	InFlight   int64   `json:"in_flight"`
	Weight     int     `json:"weight"`
	Backup     bool    `json:"backup"`
	ConnsOpen  int64   `json:"connections_open"` // backend connections open, idle ones included
	ConnsIdle  int64   `json:"connections_idle"` // in the keep-alive pools
	Requests   Classes `json:"requests"`         // requests whose last attempt went to this server
}

// Cache is the micro-cache.
type Cache struct {
	Hits      uint64 `json:"hits_total"`
	Misses    uint64 `json:"misses_total"`
	Bypasses  uint64 `json:"bypasses_total"`
	Evictions uint64 `json:"evictions_total"`
	Bytes     int64  `json:"bytes"`
	Entries   int    `json:"entries"`
}

// AccessLog is the access log's own health.
type AccessLog struct {
	Enabled bool   `json:"enabled"`
	Dropped uint64 `json:"dropped_total"` // lines dropped because the writer lagged
}

// statusJSON renders s for /status.
func statusJSON(s *Snapshot) ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
