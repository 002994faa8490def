package engine

import (
	"fmt"
	"runtime"
	"strings"

	"switchflow/config"
)

// MemoryTerm is one part of the worst-case memory a configuration allows: what it is, how it is
// counted, and its bytes.
type MemoryTerm struct {
	Name    string
	Formula string
	Bytes   uint64
}

// WorstCaseMemory lists what a configuration may hold in memory at once, every connection busy: the
// header slabs laid out at start (the large ones too), the bytes queued per connection before reading pauses (io_buffer each
// way, a client and its backend), the loops' read buffers, the micro-cache and the TLS connections' state
// and record buffers, clients' and backends'. Go's own overhead, the
// goroutines of the admin listener and the health checks come on top. A new kind of buffer is one more
// term here.
func WorstCaseMemory(cfg *config.Config) []MemoryTerm {
	s := &cfg.Server
	loops := s.Loops
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	conns := uint64(s.MaxConnections)
	size := func(n int) string { return config.FormatSize(int64(n)) }
	terms := []MemoryTerm{
		{"header slabs", fmt.Sprintf("max_connections %d × (header_buffer %s + %d)", conns, size(s.HeaderBuffer), slabOverhead),
			conns * uint64(s.HeaderBuffer+slabOverhead)},
		{"large header slabs", fmt.Sprintf("large_header_buffers %d × large_header_buffer %s", LargeSlabCount(*s), size(s.LargeHeaderBuffer)),
			uint64(LargeSlabCount(*s)) * uint64(s.LargeHeaderBuffer)},
		{"io buffers", fmt.Sprintf("2 × io_buffer %s × max_connections %d", size(s.IOBuffer), conns),
			2 * uint64(s.IOBuffer) * conns},
		{"loop read buffers", fmt.Sprintf("loops %d × %s", loops, size(readBufferFor(s.IOBuffer))),
			uint64(loops) * uint64(readBufferFor(s.IOBuffer))},
		{"cache", "cache.max_size " + config.FormatSize(cfg.Cache.MaxSize), uint64(cfg.Cache.MaxSize)},
	}
	if cfg.TLS != nil {
		// Every TLS connection open or in its handshake (tlsconn.go bounds them): crypto/tls's state, about
		// 14 KiB measured (a handshake's goroutine included), and its input record buffer, which holds up
		// to one record (about 17 KiB) and keeps that size (tlsrec).
		n := conns + tlsRefusalSlots
		terms = append(terms, MemoryTerm{"tls connections", fmt.Sprintf("(max_connections %d + %d) × %s", conns, tlsRefusalSlots,
			size(tlsConnMemory)), n * tlsConnMemory})
	}
	if pooled, ok := tlsBackendPools(cfg, loops); ok {
		// [upstream.tls]: every client's backend connection may be a TLS one, and the idle pools of the TLS
		// upstreams hold more; each costs what a TLS client does (the same tls.Conn and record buffer).
		terms = append(terms, MemoryTerm{"tls backend connections", fmt.Sprintf("(max_connections %d + idle %d) × %s", conns, pooled,
			size(tlsConnMemory)), (conns + pooled) * tlsConnMemory})
	}
	return terms
}

// tlsBackendPools reports whether an upstream speaks TLS, and how many idle connections the pools of
// those upstreams may keep: keepalive per server and loop.
func tlsBackendPools(cfg *config.Config, loops int) (pooled uint64, found bool) {
	for _, u := range cfg.Upstreams {
		if u.TLS != nil {
			found = true
			pooled += uint64(u.Keepalive) * uint64(len(u.Servers)) * uint64(loops)
		}
	}
	return pooled, found
}

// tlsConnMemory is what one TLS connection may hold beyond a plain one's (WorstCaseMemory).
const tlsConnMemory = 32 << 10

// MemoryLine is the line "switchflow -t" prints: "worst-case memory: TOTAL = term + term ...".
func MemoryLine(terms []MemoryTerm) string {
	var total uint64
	parts := make([]string, len(terms))
	for i, t := range terms {
		total += t.Bytes
		parts[i] = fmt.Sprintf("%s %s (%s)", t.Name, humanBytes(t.Bytes), t.Formula)
	}
	return "worst-case memory: " + humanBytes(total) + " = " + strings.Join(parts, " + ")
}

// humanBytes writes n in the largest binary unit it reaches, with one decimal.
func humanBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, u := float64(n), 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[u])
}
