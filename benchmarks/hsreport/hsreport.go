// Package hsreport is the report that benchmarks/cmd/hsload prints (one JSON object) and that the
// harness (benchmarks/cmd/bench) reads: one type for both sides.
package hsreport

// Result is hsload's report, one JSON object.
type Result struct {
	Requests int64   `json:"requests"` // answered 200 with the whole body
	Errors   int64   `json:"errors"`   // dial, handshake, write or read failures and non-200 answers
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	// Resumed and Full count the handshakes of the connections that answered: DidResume or not.
	Resumed int64 `json:"resumed"`
	Full    int64 `json:"full"`
	// Version, Cipher and Group are the last connection's (1.3, TLS_AES_128_GCM_SHA256, X25519; a TLS
	// 1.2 resumption has no group).
	Version string `json:"version"`
	Cipher  string `json:"cipher"`
	Group   string `json:"group"`
	// ClientCPUPercent is hsload's own CPU time over the run's wall time (of one core): near 100 it may be
	// what limits the rate, which does not change the proxy's CPU per handshake.
	ClientCPUPercent float64 `json:"client_cpu_percent"`
	// ProxyCPUusPerReq is -pid's CPU time over the run per request answered (with -pid only).
	ProxyCPUusPerReq float64 `json:"proxy_cpu_us_per_req,omitempty"`
	LastError        string  `json:"last_error,omitempty"`
}
