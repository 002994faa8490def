//go:build !race

package codec

import "testing"

// Practice 1: codec never allocates, on the success path or the error path.
func TestZeroAllocs(t *testing.T) {
	req := []byte(crlf("POST /api/v1/items?id=7 HTTP/1.1|Host: api.example.com|User-Agent: bench/1.0|Accept: */*|Connection: keep-alive, X-Hop|X-Hop: 1|X-Forwarded-For: 198.51.100.7|Content-Length: 5, 5||hello"))
	badReq := []byte(crlf("GET / HTTP/1.1|Host: a|X: a| folded||"))
	leading := []byte(crlf("||GET / HTTP/1.1|Host: a||"))
	resp := []byte(crlf("HTTP/1.1 200 OK|Content-Type: text/plain|Transfer-Encoding: chunked|Connection: keep-alive||"))
	badResp := []byte(crlf("HTTP/1.1 200 OK|Content-Length: 1|Transfer-Encoding: chunked||"))
	body := []byte("5;e=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n")
	badBody := []byte("5\r\nhelloXX")
	trailerBody := []byte("5\r\nhello\r\n0\r\nX-Ok: 1\r\nContent-Length: 5\r\nHost: evil\r\nA-Trailer-Name-Longer-Than-Any: v\r\n\r\n")
	kept := make([]byte, 0, 256)

	r := NewRequest(1000) // the index is the owner's: parsing into a large one costs nothing more
	resp1 := NewResponse(1000)
	var zeroReq Request // nil Headers: made once by the first parse (AllocsPerRun's warm-up run)
	var d ChunkedReader
	dst := make([]byte, 0, 4096)
	var index HeadIndex // its header spans are made once (the warm-up run) and reused

	cases := []struct {
		name string
		fn   func()
	}{
		{"ParseRequest", func() { _, _ = ParseRequest(req, r) }},
		{"ParseRequest error", func() { _, _ = ParseRequest(badReq, r) }},
		{"ParseRequest need more", func() { _, _ = ParseRequest(req[:20], r) }},
		{"ParseRequest after empty lines", func() { _, _ = ParseRequest(leading, r) }},
		{"ParseRequest into a zero Request", func() { _, _ = ParseRequest(req, &zeroReq) }},
		{"ParseResponse", func() { _, _ = ParseResponse(resp, resp1) }},
		{"ParseResponse error", func() { _, _ = ParseResponse(badResp, resp1) }},
		{"ChunkedReader.Skip", func() { d.Reset(); _, _, _ = d.Skip(body) }},
		{"ChunkedReader.Skip error", func() { d.Reset(); _, _, _ = d.Skip(badBody) }},
		{"ChunkedReader.Forward", func() {
			d.Reset()
			_, _, _, kept, _, _ = d.Forward(trailerBody, kept[:0])
		}},
		{"ChunkedReader.Forward byte by byte", func() {
			d.Reset()
			kept = kept[:0]
			for i := range trailerBody {
				_, _, _, kept, _, _ = d.Forward(trailerBody[i:i+1], kept)
			}
		}},
		{"AppendProxyRequest", func() {
			_, _ = ParseRequest(req, r)
			dst = AppendProxyRequest(dst[:0], r, r.Target, []byte("203.0.113.9"), []byte("https"), []byte("backend:80"), false)
		}},
		{"HeadIndex.Keep and Restore", func() {
			_, _ = ParseRequest(req, r)
			index.Keep(r, req)
			_ = index.Restore(r, req)
		}},
		{"AppendProxyResponse", func() {
			_, _ = ParseResponse(resp, resp1)
			dst = AppendProxyResponse(dst[:0], resp1, 0, true, true, false)
		}},
	}
	for _, c := range cases {
		if got := testing.AllocsPerRun(100, c.fn); got != 0 {
			t.Errorf("%s: %v allocs per run, want 0", c.name, got)
		}
	}
}
