package codec

import "testing"

func TestParseResponseValid(t *testing.T) {
	tests := []struct {
		name, in  string
		status    int
		reason    string
		minor     uint8
		flags     uint32
		cl        int64
		body      BodyKind
		head      bool // request was HEAD
		keepAlive bool
	}{
		{"200 with length", "HTTP/1.1 200 OK|Content-Length: 12||", 200, "OK", 1, FlagContentLength, 12, BodyLength, false, true},
		{"200 CL zero", "HTTP/1.1 200 OK|Content-Length: 0||", 200, "OK", 1, FlagContentLength, 0, BodyNone, false, true},
		{"chunked", "HTTP/1.1 200 OK|Transfer-Encoding: chunked||", 200, "OK", 1, FlagTransferEncoding | FlagChunked, -1, BodyChunked, false, true},
		{"until close", "HTTP/1.1 200 OK|Connection: close||", 200, "OK", 1, FlagConnClose, -1, BodyUntilClose, false, false},
		{"HEAD response with length", "HTTP/1.1 200 OK|Content-Length: 99||", 200, "OK", 1, FlagContentLength, 99, BodyNone, true, true},
		{"204", "HTTP/1.1 204 No Content||", 204, "No Content", 1, 0, -1, BodyNone, false, true},
		{"304 with length", "HTTP/1.1 304 Not Modified|Content-Length: 50||", 304, "Not Modified", 1, FlagContentLength, 50, BodyNone, false, true},
		{"100 continue", "HTTP/1.1 100 Continue||", 100, "Continue", 1, 0, -1, BodyNone, false, true},
		{"101 upgrade", "HTTP/1.1 101 Switching Protocols|Connection: Upgrade|Upgrade: websocket||", 101, "Switching Protocols", 1, FlagConnUpgrade | FlagUpgrade | FlagUpgradeWebSocket, -1, BodyNone, false, true},
		{"no reason, no space", "HTTP/1.1 200|Content-Length: 1||", 200, "", 1, FlagContentLength, 1, BodyLength, false, true},
		{"empty reason", "HTTP/1.1 404 |Content-Length: 1||", 404, "", 1, FlagContentLength, 1, BodyLength, false, true},
		{"reason with spaces and obs-text", "HTTP/1.1 500 Very \xe9 Bad\t!|Content-Length: 1||", 500, "Very \xe9 Bad\t!", 1, FlagContentLength, 1, BodyLength, false, true},
		{"1.0 default close", "HTTP/1.0 200 OK|Content-Length: 1||", 200, "OK", 0, FlagContentLength, 1, BodyLength, false, false},
		{"1.0 keep-alive", "HTTP/1.0 200 OK|Connection: keep-alive|Content-Length: 1||", 200, "OK", 0, FlagConnKeepAlive | FlagContentLength, 1, BodyLength, false, true},
		{"unusual status 599", "HTTP/1.1 599 X||", 599, "X", 1, 0, -1, BodyUntilClose, false, true},
		{"Date recorded", "HTTP/1.1 200 OK|date: Mon, 02 Jan 2006 15:04:05 GMT|Content-Length: 0||", 200, "OK", 1, FlagHasDate | FlagContentLength, 0, BodyNone, false, true},
		{"Host header ignored in responses", "HTTP/1.1 200 OK|Host: a b|Host: c|Content-Length: 0||", 200, "OK", 1, FlagContentLength, 0, BodyNone, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := crlf(tt.in)
			var r Response
			n, err := ParseResponse([]byte(in+"body"), &r)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if n != len(in) {
				t.Errorf("n = %d, want %d", n, len(in))
			}
			if r.Status != tt.status || string(r.Reason) != tt.reason || r.Minor != tt.minor {
				t.Errorf("status/reason/minor = %d %q %d", r.Status, r.Reason, r.Minor)
			}
			if r.Flags != tt.flags || r.ContentLength != tt.cl {
				t.Errorf("flags/cl = %b %d, want %b %d", r.Flags, r.ContentLength, tt.flags, tt.cl)
			}
			if got := r.Body(tt.head); got != tt.body {
				t.Errorf("Body = %v, want %v", got, tt.body)
			}
			if r.KeepAlive() != tt.keepAlive {
				t.Errorf("KeepAlive = %v", r.KeepAlive())
			}
		})
	}
}

// TestParseResponseRejects: a malformed response head is a 502; the rows name what each rule stops
// (response splitting and desync of the client connection).
func TestParseResponseRejects(t *testing.T) {
	tests := []struct{ technique, in, want string }{
		{"bare LF line ending", "HTTP/1.1 200 OK\nContent-Length: 1\r\n\r\n", "syntax"},
		{"bare CR in reason (response splitting)", "HTTP/1.1 200 O\rK|Content-Length: 1||", "syntax"},
		{"bare CR in value (response splitting)", "HTTP/1.1 200 OK|X: a\rSet-Cookie: x|Content-Length: 1||", "syntax"},
		{"obs-fold", "HTTP/1.1 200 OK|X: a| b|Content-Length: 1||", "syntax"},
		{"space before colon", "HTTP/1.1 200 OK|Content-Length : 1||", "syntax"},
		{"CTL in value", "HTTP/1.1 200 OK|X: \x01|Content-Length: 1||", "syntax"},
		{"leading empty line", "|HTTP/1.1 200 OK|Content-Length: 1||", "syntax"},
		{"two-digit status", "HTTP/1.1 20 OK||", "syntax"},
		{"four-digit status", "HTTP/1.1 2000 OK||", "syntax"},
		{"status with leading zero", "HTTP/1.1 099 X||", "syntax"},
		{"non-digit status", "HTTP/1.1 2x0 OK||", "syntax"},
		{"no status", "HTTP/1.1||", "syntax"},
		{"tab after version", "HTTP/1.1\t200 OK||", "syntax"},
		{"lowercase protocol", "http/1.1 200 OK||", "syntax"},
		{"not HTTP at all", "SSH-2.0-OpenSSH||", "syntax"},
		{"short garbage", "HTTP||", "syntax"},
		{"HTTP/2.0 status line", "HTTP/2.0 200 OK||", "version"},
		{"CL and TE (desync of client)", "HTTP/1.1 200 OK|Content-Length: 5|Transfer-Encoding: chunked||", "conflict"},
		{"differing CL", "HTTP/1.1 200 OK|Content-Length: 5|Content-Length: 6||", "badcl"},
		{"negative CL", "HTTP/1.1 200 OK|Content-Length: -5||", "badcl"},
		{"chunked twice", "HTTP/1.1 200 OK|Transfer-Encoding: chunked, chunked||", "syntax"},
		{"TE in HTTP/1.0 response (faulty framing)", "HTTP/1.0 200 OK|Transfer-Encoding: chunked||", "syntax"},
		{"TE gzip only (a client could not read it; 502 as nginx and HAProxy)", "HTTP/1.1 200 OK|Transfer-Encoding: gzip||", "unsupportedte"},
		{"TE chunked then gzip", "HTTP/1.1 200 OK|Transfer-Encoding: chunked|Transfer-Encoding: gzip||", "unsupportedte"},
	}
	for _, tt := range tests {
		t.Run(tt.technique, func(t *testing.T) {
			var r Response
			n, err := ParseResponse([]byte(crlf(tt.in)), &r)
			if got := errKind(err); got != tt.want {
				t.Fatalf("err = %v (%s), want %s", err, got, tt.want)
			}
			if n != 0 {
				t.Errorf("n = %d on error", n)
			}
		})
	}
}

func TestParseResponseNeedMoreOnEveryPrefix(t *testing.T) {
	in := []byte(crlf("HTTP/1.1 200 OK|Content-Type: text/plain|Transfer-Encoding: chunked||"))
	var r Response
	for i := 0; i < len(in); i++ {
		if _, err := ParseResponse(in[:i], &r); err != ErrNeedMore {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	if n, err := ParseResponse(in, &r); err != nil || n != len(in) {
		t.Fatalf("whole: %d %v", n, err)
	}
	if string(r.Get("content-type")) != "text/plain" || !r.Has("TRANSFER-ENCODING") || len(r.HeaderList()) != 2 {
		t.Error("Get/Has/HeaderList")
	}
}

// TestResponseVerbatim: a head may be forwarded as it came only when the rebuild would drop, merge and
// rewrite nothing (FuzzParseResponse checks the same property on every input it finds).
func TestResponseVerbatim(t *testing.T) {
	for _, tc := range []struct {
		head string
		want bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A:b\r\n\r\n", true},
		{"HTTP/1.1 204 No Content\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nconnection: x-a\r\nX-A: b\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nProxy-Connection: keep-alive\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nte: trailers\r\n\r\n", false},
		{"HTTP/1.1 200 OK\r\nUpgrade: websocket\r\n\r\n", false},
		{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", false},
	} {
		var r Response
		if _, err := ParseResponse([]byte(tc.head), &r); err != nil {
			t.Fatalf("%q: %v", tc.head, err)
		}
		if got := r.Verbatim(1, true); got != tc.want {
			t.Errorf("%q: Verbatim = %v, want %v", tc.head, got, tc.want)
		}
		if r.Verbatim(0, true) || r.Verbatim(1, false) {
			t.Errorf("%q: Verbatim for an HTTP/1.0 client or a closing connection, which get a Connection header", tc.head)
		}
	}
}
