package codec

import "testing"

func TestAppendProxyRequest(t *testing.T) {
	tests := []struct {
		name, in, target string
		keepUpgrade      bool
		want             string
	}{
		{"plain GET", "GET /a HTTP/1.1|Host: h|Accept: */*||", "/a", false,
			"GET /a HTTP/1.1|Host: h|Accept: */*|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"hop-by-hop removed", "GET / HTTP/1.1|Host: h|Connection: keep-alive|Keep-Alive: timeout=5|Proxy-Connection: x|TE: trailers|Upgrade: websocket|A: 1||", "/", false,
			"GET / HTTP/1.1|Host: h|A: 1|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"headers named in Connection removed", "GET / HTTP/1.1|Host: h|Connection: X-Secret, x-other|X-Secret: s|X-OTHER: o|B: 2||", "/", false,
			"GET / HTTP/1.1|Host: h|B: 2|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"Connection cannot strip framing (CL removal desync)", "POST / HTTP/1.1|Host: h|Connection: Content-Length, Host|Content-Length: 3||", "/", false,
			"POST / HTTP/1.1|Host: h|Content-Length: 3|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"Connection cannot strip Transfer-Encoding", "POST / HTTP/1.1|Host: h|Connection: transfer-encoding|Transfer-Encoding: chunked|Trailer: X-Sum||", "/", false,
			"POST / HTTP/1.1|Host: h|Transfer-Encoding: chunked|Trailer: X-Sum|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"identical CLs collapse to one", "POST / HTTP/1.1|Host: h|Content-Length: 7, 7|content-length: 7||", "/", false,
			"POST / HTTP/1.1|Host: h|Content-Length: 7|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"XFF named in Connection is this hop's only", "GET / HTTP/1.1|Host: h|Connection: x-forwarded-for|X-Forwarded-For: 6.6.6.6||", "/", false,
			"GET / HTTP/1.1|Host: h|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"XFF joined into one header", "GET / HTTP/1.1|Host: h|X-Forwarded-For: 1.1.1.1|x-forwarded-for: 2.2.2.2, 3.3.3.3|X-Forwarded-For:||", "/", false,
			"GET / HTTP/1.1|Host: h|X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"client X-Forwarded-Proto and -Host dropped (spoofing)", "GET / HTTP/1.1|Host: h|X-Forwarded-Proto: https|X-Forwarded-Host: evil||", "/", false,
			"GET / HTTP/1.1|Host: h|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"upgrade kept in tunnel", "GET /ws HTTP/1.1|Host: h|Connection: Upgrade, X-A|Upgrade: websocket|X-A: 1||", "/ws", true,
			"GET /ws HTTP/1.1|Host: h|Upgrade: websocket|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h|Connection: upgrade||"},
		{"h2c upgrade never forwarded", "GET / HTTP/1.1|Host: h|Connection: Upgrade|Upgrade: h2c|HTTP2-Settings: AAMAAABkAAQAAP__||", "/", false,
			"GET / HTTP/1.1|Host: h|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h||"},
		{"target rewritten, 1.0 becomes 1.1 with the default Host", "GET /api/v1?x HTTP/1.0||", "/v1?x", false,
			"GET /v1?x HTTP/1.1|Host: backend:80|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http||"},
		{"1.0 absolute-form gets Host from target", "GET http://h.example:81/x HTTP/1.0||", "/x", false,
			"GET /x HTTP/1.1|Host: h.example:81|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: h.example:81||"},
		{"absolute-form authority replaces the client's Host (RFC 9112 3.2.2)", "GET http://public.example/reset HTTP/1.1|Host: evil.com|A: 1||", "/reset", false,
			"GET /reset HTTP/1.1|Host: public.example|A: 1|X-Forwarded-For: 10.0.0.1|X-Forwarded-Proto: http|X-Forwarded-Host: public.example||"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			if _, err := ParseRequest([]byte(crlf(tt.in)), &r); err != nil {
				t.Fatal(err)
			}
			got := string(AppendProxyRequest(nil, &r, []byte(tt.target), []byte("10.0.0.1"), []byte("http"), []byte("backend:80"), tt.keepUpgrade))
			if got != crlf(tt.want) {
				t.Fatalf("got\n%q\nwant\n%q", got, crlf(tt.want))
			}
			// What we send must itself parse, with the same framing.
			var again Request
			if _, err := ParseRequest([]byte(got), &again); err != nil {
				t.Fatalf("reparse: %v", err)
			}
			if again.Body() != r.Body() || again.ContentLength != r.ContentLength {
				t.Fatalf("framing changed")
			}
		})
	}
}

func TestAppendProxyResponse(t *testing.T) {
	tests := []struct {
		name, in                       string
		clientMinor                    uint8
		keepAlive, omitTE, keepUpgrade bool
		want                           string
	}{
		{"prebuilt status line", "HTTP/1.1 200 OK|Content-Length: 2||", 1, true, false, false,
			"HTTP/1.1 200 OK|Content-Length: 2||"},
		{"custom reason kept", "HTTP/1.1 200 Fine|Content-Length: 2||", 1, true, false, false,
			"HTTP/1.1 200 Fine|Content-Length: 2||"},
		{"empty reason", "HTTP/1.1 418|Content-Length: 2||", 1, true, false, false,
			"HTTP/1.1 418 |Content-Length: 2||"},
		{"1.0 backend answered as 1.1", "HTTP/1.0 404 Not Found|Content-Length: 2||", 1, true, false, false,
			"HTTP/1.1 404 Not Found|Content-Length: 2||"},
		{"close", "HTTP/1.1 200 OK|Connection: keep-alive|Keep-Alive: timeout=5|Content-Length: 2||", 1, false, false, false,
			"HTTP/1.1 200 OK|Content-Length: 2|Connection: close||"},
		{"keep-alive for 1.0 client", "HTTP/1.1 200 OK|Content-Length: 2||", 0, true, false, false,
			"HTTP/1.1 200 OK|Content-Length: 2|Connection: keep-alive||"},
		{"TE omitted for de-chunking", "HTTP/1.1 200 OK|Transfer-Encoding: chunked|X: 1||", 0, false, true, false,
			"HTTP/1.1 200 OK|X: 1|Connection: close||"},
		{"Trailer omitted for de-chunking", "HTTP/1.1 200 OK|Transfer-Encoding: chunked|Trailer: X-Sum|X: 1||", 0, false, true, false,
			"HTTP/1.1 200 OK|X: 1|Connection: close||"},
		{"TE forwarded otherwise", "HTTP/1.1 200 OK|Transfer-Encoding: chunked|Trailer: X-Sum||", 1, true, false, false,
			"HTTP/1.1 200 OK|Transfer-Encoding: chunked|Trailer: X-Sum||"},
		{"named in Connection removed", "HTTP/1.1 200 OK|Connection: X-Internal|X-Internal: 1|Content-Length: 0||", 1, true, false, false,
			"HTTP/1.1 200 OK|Content-Length: 0||"},
		{"101 keeps Upgrade", "HTTP/1.1 101 Switching Protocols|Connection: Upgrade|Upgrade: websocket|Sec-WebSocket-Accept: k||", 1, true, false, true,
			"HTTP/1.1 101 Switching Protocols|Upgrade: websocket|Sec-WebSocket-Accept: k|Connection: upgrade||"},
		{"Upgrade dropped outside tunnel", "HTTP/1.1 200 OK|Upgrade: h2c|Content-Length: 0||", 1, true, false, false,
			"HTTP/1.1 200 OK|Content-Length: 0||"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Response
			if _, err := ParseResponse([]byte(crlf(tt.in)), &r); err != nil {
				t.Fatal(err)
			}
			got := string(AppendProxyResponse(nil, &r, tt.clientMinor, tt.keepAlive, tt.omitTE, tt.keepUpgrade))
			if got != crlf(tt.want) {
				t.Fatalf("got\n%q\nwant\n%q", got, crlf(tt.want))
			}
			var again Response
			if _, err := ParseResponse([]byte(got), &again); err != nil {
				t.Fatalf("reparse: %v", err)
			}
		})
	}
}

func TestStatusReason(t *testing.T) {
	if StatusReason(502) != "Bad Gateway" || StatusReason(299) != "" || StatusReason(-1) != "" || StatusReason(1000) != "" {
		t.Fatal("StatusReason")
	}
}

func TestOriginForm(t *testing.T) {
	for _, tt := range []struct {
		in, authority, rest string
		ok                  bool
	}{
		{"/a?b", "", "/a?b", true},
		{"*", "", "*", true},
		{"http://a.example:8080/x?q", "a.example:8080", "/x?q", true},
		{"HTTPS://a.example", "a.example", "", true},
		{"http://a.example?q", "a.example", "?q", true},
		{"http:///x", "", "", false},
		{"http://user@a.example/", "", "", false},
	} {
		a, rest, ok := OriginForm([]byte(tt.in))
		if string(a) != tt.authority || string(rest) != tt.rest || ok != tt.ok {
			t.Errorf("OriginForm(%q) = %q, %q, %v; want %q, %q, %v", tt.in, a, rest, ok, tt.authority, tt.rest, tt.ok)
		}
	}
}
