package admin

// TLS is HTTPS termination's figures ([tls]); Enabled is false without it.
type TLS struct {
	Enabled    bool            `json:"enabled"`
	Handshakes []TLSHandshakes `json:"handshakes,omitempty"`
}

// TLSHandshakes counts the TLS handshakes that ended with Result ("ok", "failed", "timeout": the
// client did not finish within read_header_timeout) at Version ("1.2", "1.3"; "unknown" when it failed
// before one was chosen).
type TLSHandshakes struct {
	Result  string `json:"result"`
	Version string `json:"version"`
	Count   uint64 `json:"count"`
}

// tls writes switchflow_tls_handshakes_total, when TLS is on.
func (w *promWriter) tls(t *TLS) {
	if !t.Enabled {
		return
	}
	const name = "switchflow_tls_handshakes_total"
	w.family(name, "counter", "TLS handshakes by result (ok, failed, timeout: not finished within read_header_timeout) and protocol version.")
	for _, h := range t.Handshakes {
		w.sample(name, "", uint64Text(h.Count), "result", h.Result, "version", h.Version)
	}
}
