package codec

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseRequestValid(t *testing.T) {
	tests := []struct {
		name, in             string
		method, target, host string
		minor                uint8
		flags                uint32
		cl                   int64
		body                 BodyKind
		keepAlive            bool
	}{
		{"simple GET", "GET /index.html?x=1 HTTP/1.1|Host: example.com||", "GET", "/index.html?x=1", "example.com", 1, FlagHasHost, -1, BodyNone, true},
		{"POST with length", "POST /p HTTP/1.1|Host: a|Content-Length: 5||", "POST", "/p", "a", 1, FlagHasHost | FlagContentLength, 5, BodyLength, true},
		{"zero length", "POST /p HTTP/1.1|Host: a|Content-Length: 0||", "POST", "/p", "a", 1, FlagHasHost | FlagContentLength, 0, BodyNone, true},
		{"chunked", "POST /p HTTP/1.1|Host: a|Transfer-Encoding: chunked||", "POST", "/p", "a", 1, FlagHasHost | FlagTransferEncoding | FlagChunked, -1, BodyChunked, true},
		{"chunked mixed case with OWS", "POST /p HTTP/1.1|Host: a|Transfer-Encoding: \t ChUnKeD \t||", "POST", "/p", "a", 1, FlagHasHost | FlagTransferEncoding | FlagChunked, -1, BodyChunked, true},
		{"gzip then chunked listed", "POST /p HTTP/1.1|Host: a|Transfer-Encoding: gzip, chunked||", "POST", "/p", "a", 1, FlagHasHost | FlagTransferEncoding | FlagChunked, -1, BodyChunked, true},
		{"codings across repeated headers", "POST /p HTTP/1.1|Host: a|Transfer-Encoding: gzip|Transfer-Encoding: chunked||", "POST", "/p", "a", 1, FlagHasHost | FlagTransferEncoding | FlagChunked, -1, BodyChunked, true},
		{"coding with parameter before chunked", "POST /p HTTP/1.1|Host: a|Transfer-Encoding: foo;q=1, chunked||", "POST", "/p", "a", 1, FlagHasHost | FlagTransferEncoding | FlagChunked, -1, BodyChunked, true},
		{"identical CL list", "POST /p HTTP/1.1|Host: a|Content-Length: 7, 7||", "POST", "/p", "a", 1, FlagHasHost | FlagContentLength, 7, BodyLength, true},
		{"identical CL repeated", "POST /p HTTP/1.1|Host: a|Content-Length: 7|content-length: 7||", "POST", "/p", "a", 1, FlagHasHost | FlagContentLength, 7, BodyLength, true},
		{"CL max int63", "POST /p HTTP/1.1|Host: a|Content-Length: 9223372036854775807||", "POST", "/p", "a", 1, FlagHasHost | FlagContentLength, 9223372036854775807, BodyLength, true},
		{"HTTP/1.0 without host", "GET / HTTP/1.0||", "GET", "/", "", 0, 0, -1, BodyNone, false},
		{"HTTP/1.0 keep-alive", "GET / HTTP/1.0|Connection: Keep-Alive||", "GET", "/", "", 0, FlagConnKeepAlive, -1, BodyNone, true},
		{"HTTP/1.1 close", "GET / HTTP/1.1|Host: a|Connection: close||", "GET", "/", "a", 1, FlagHasHost | FlagConnClose, -1, BodyNone, false},
		{"connection token list", "GET / HTTP/1.1|Host: a|Connection: keep-alive, Upgrade, X-Foo|Upgrade: websocket||", "GET", "/", "a", 1, FlagHasHost | FlagConnKeepAlive | FlagConnUpgrade | FlagUpgrade | FlagUpgradeWebSocket, -1, BodyNone, true},
		{"expect continue", "PUT /x HTTP/1.1|Host: a|Expect: 100-Continue|Content-Length: 3||", "PUT", "/x", "a", 1, FlagHasHost | FlagExpectContinue | FlagContentLength, 3, BodyLength, true},
		{"expect ignored in HTTP/1.0", "PUT /x HTTP/1.0|Expect: 100-continue|Content-Length: 3||", "PUT", "/x", "", 0, FlagContentLength, 3, BodyLength, false},
		{"absolute-form http", "GET http://a.example/x HTTP/1.1|Host: a.example||", "GET", "http://a.example/x", "a.example", 1, FlagHasHost, -1, BodyNone, true},
		{"absolute-form https", "GET HTTPS://a.example HTTP/1.1|Host: a.example||", "GET", "HTTPS://a.example", "a.example", 1, FlagHasHost, -1, BodyNone, true},
		{"OPTIONS asterisk", "OPTIONS * HTTP/1.1|Host: a||", "OPTIONS", "*", "a", 1, FlagHasHost, -1, BodyNone, true},
		{"CONNECT authority", "CONNECT a.example:443 HTTP/1.1|Host: a.example:443||", "CONNECT", "a.example:443", "a.example:443", 1, FlagHasHost, -1, BodyNone, true},
		{"empty host allowed", "GET / HTTP/1.1|Host:||", "GET", "/", "", 1, FlagHasHost, -1, BodyNone, true},
		{"IPv6 host", "GET / HTTP/1.1|Host: [::1]:8080||", "GET", "/", "[::1]:8080", 1, FlagHasHost, -1, BodyNone, true},
		{"obs-text and HTAB in value", "GET / HTTP/1.1|Host: a|X-Name: caf\xc3\xa9\tok||", "GET", "/", "a", 1, FlagHasHost, -1, BodyNone, true},
		{"obs-text in target", "GET /caf\xc3\xa9 HTTP/1.1|Host: a||", "GET", "/caf\xc3\xa9", "a", 1, FlagHasHost, -1, BodyNone, true},
		{"extension method", "PURGE /x HTTP/1.1|Host: a||", "PURGE", "/x", "a", 1, FlagHasHost, -1, BodyNone, true},
		{"Date not flagged in requests", "GET / HTTP/1.1|Host: a|Date: Mon, 02 Jan 2006 15:04:05 GMT||", "GET", "/", "a", 1, FlagHasHost, -1, BodyNone, true},
		{"leading empty line skipped (RFC 9112 2.2)", "\r\nGET / HTTP/1.1|Host: a||", "GET", "/", "a", 1, FlagHasHost, -1, BodyNone, true},
		{"leading bare LF and CRLFs skipped", "\n\r\n\nHEAD /x HTTP/1.1|Host: a||", "HEAD", "/x", "a", 1, FlagHasHost, -1, BodyNone, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := crlf(tt.in)
			buf := []byte(in + "trailing body bytes")
			var r Request
			n, err := ParseRequest(buf, &r)
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if n != len(in) {
				t.Errorf("n = %d, want %d", n, len(in))
			}
			if string(r.Method) != tt.method || string(r.Target) != tt.target || string(r.Host) != tt.host {
				t.Errorf("method/target/host = %q %q %q", r.Method, r.Target, r.Host)
			}
			if r.Minor != tt.minor || r.Flags != tt.flags || r.ContentLength != tt.cl {
				t.Errorf("minor/flags/cl = %d %b %d, want %d %b %d", r.Minor, r.Flags, r.ContentLength, tt.minor, tt.flags, tt.cl)
			}
			if r.Body() != tt.body {
				t.Errorf("Body = %v, want %v", r.Body(), tt.body)
			}
			if r.KeepAlive() != tt.keepAlive {
				t.Errorf("KeepAlive = %v", r.KeepAlive())
			}
		})
	}
}

func TestParseRequestHeaders(t *testing.T) {
	in := crlf("GET / HTTP/1.1|Host:  a.example  |X-Empty:|X-Tabs:\t v \t|x-lower: 1||")
	var r Request
	if _, err := ParseRequest([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	want := []Header{{[]byte("Host"), []byte("a.example")}, {[]byte("X-Empty"), []byte("")}, {[]byte("X-Tabs"), []byte("v")}, {[]byte("x-lower"), []byte("1")}}
	if r.NumHeaders != len(want) {
		t.Fatalf("NumHeaders = %d", r.NumHeaders)
	}
	for i, h := range want {
		if !bytes.Equal(r.Headers[i].Name, h.Name) || !bytes.Equal(r.Headers[i].Value, h.Value) {
			t.Errorf("header %d = %q: %q", i, r.Headers[i].Name, r.Headers[i].Value)
		}
	}
	if string(r.Get("X-LOWER")) != "1" || !r.Has("x-empty") || r.Has("nope") || r.Get("nope") != nil {
		t.Error("Get/Has")
	}
	if len(r.HeaderList()) != 4 {
		t.Error("HeaderList")
	}
}

// TestParseRequestRejects: every row names the smuggling or confusion technique the rule stops.
func TestParseRequestRejects(t *testing.T) {
	tests := []struct {
		technique, in, want string
	}{
		// Line endings.
		{"bare LF ends header line (LF-only desync)", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", "syntax"},
		{"bare LF ends request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", "syntax"},
		{"bare LF as head terminator", "GET / HTTP/1.1\r\nHost: a\r\n\n", "syntax"},
		{"bare CR inside value (CR as line break)", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n", "syntax"},
		{"bare CR inside header name", "GET / HTTP/1.1\r\nHost: a\r\nX\r: a\r\n\r\n", "syntax"},
		{"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", "syntax"},
		{"bare CR before request line", "\rGET / HTTP/1.1|Host: a||", "syntax"},
		{"CR CR LF before request line", "\r\r\nGET / HTTP/1.1|Host: a||", "syntax"},
		{"whitespace-only line before request line", "\r\n \r\nGET / HTTP/1.1|Host: a||", "syntax"},
		// Request line.
		{"leading space before method", " GET / HTTP/1.1|Host: a||", "syntax"},
		{"non-token method", "G(T / HTTP/1.1|Host: a||", "syntax"},
		{"tab as request-line separator", "GET\t/ HTTP/1.1|Host: a||", "syntax"},
		{"double space before target", "GET  / HTTP/1.1|Host: a||", "syntax"},
		{"space inside target (target splitting)", "GET /a b HTTP/1.1|Host: a||", "syntax"},
		{"control byte in target", "GET /a\x01b HTTP/1.1|Host: a||", "syntax"},
		{"DEL in target", "GET /a\x7fb HTTP/1.1|Host: a||", "syntax"},
		{"HTTP/0.9 request (no version)", "GET /|Host: a||", "syntax"},
		{"method only", "GET|Host: a||", "syntax"},
		{"trailing space after version", "GET / HTTP/1.1 |Host: a||", "syntax"},
		{"lowercase protocol name", "GET / http/1.1|Host: a||", "syntax"},
		{"two-digit major", "GET / HTTP/11.1|Host: a||", "syntax"},
		{"version without minor", "GET / HTTP/2|Host: a||", "syntax"},
		{"HTTP/2.0 over HTTP/1 framing", "GET / HTTP/2.0|Host: a||", "version"},
		{"HTTP/1.2 unknown minor", "GET / HTTP/1.2|Host: a||", "version"},
		{"HTTP/0.9 with version", "GET / HTTP/0.9|Host: a||", "version"},
		{"asterisk outside OPTIONS", "GET * HTTP/1.1|Host: a||", "syntax"},
		{"authority-form outside CONNECT (routing confusion)", "GET a.example:80 HTTP/1.1|Host: a||", "syntax"},
		{"CONNECT with origin-form", "CONNECT / HTTP/1.1|Host: a||", "syntax"},
		{"CONNECT authority with path", "CONNECT a.example:443/x HTTP/1.1|Host: a||", "syntax"},
		{"relative target without slash", "GET index.html HTTP/1.1|Host: a||", "syntax"},
		{"non-http absolute-form", "GET ftp://a/x HTTP/1.1|Host: a||", "syntax"},
		{"absolute-form without authority", "GET http:// HTTP/1.1|Host: a||", "syntax"},
		// Header lines.
		{"obs-fold continuation (SP)", "GET / HTTP/1.1|Host: a|X: a| Transfer-Encoding: chunked||", "syntax"},
		{"obs-fold continuation (HTAB)", "GET / HTTP/1.1|Host: a|X: a|\tb||", "syntax"},
		{"whitespace line right after request line", "GET / HTTP/1.1| Host: a||", "syntax"},
		{"space before colon (TE hidden from lenient parsers)", "POST / HTTP/1.1|Host: a|Transfer-Encoding : chunked||", "syntax"},
		{"tab before colon", "POST / HTTP/1.1|Host: a|Content-Length\t: 5||", "syntax"},
		{"empty header name", "GET / HTTP/1.1|Host: a|: x||", "syntax"},
		{"header line without colon", "GET / HTTP/1.1|Host: a|Transfer-Encoding||", "syntax"},
		{"non-token in name", "GET / HTTP/1.1|Host: a|X(y): z||", "syntax"},
		{"NUL in value (C string truncation)", "GET / HTTP/1.1|Host: a|X: a\x00b||", "syntax"},
		{"DEL in value", "GET / HTTP/1.1|Host: a|X: a\x7fb||", "syntax"},
		{"escape byte in value", "GET / HTTP/1.1|Host: a|X: \x1b[2J||", "syntax"},
		// Content-Length.
		{"CL with plus sign", "POST / HTTP/1.1|Host: a|Content-Length: +5||", "badcl"},
		{"CL negative", "POST / HTTP/1.1|Host: a|Content-Length: -1||", "badcl"},
		{"CL hex", "POST / HTTP/1.1|Host: a|Content-Length: 0x10||", "badcl"},
		{"CL trailing junk", "POST / HTTP/1.1|Host: a|Content-Length: 5a||", "badcl"},
		{"CL inner space", "POST / HTTP/1.1|Host: a|Content-Length: 5 5||", "badcl"},
		{"CL empty", "POST / HTTP/1.1|Host: a|Content-Length: ||", "badcl"},
		{"CL overflow past int63 (wraps to small)", "POST / HTTP/1.1|Host: a|Content-Length: 9223372036854775808||", "badcl"},
		{"CL huge overflow", "POST / HTTP/1.1|Host: a|Content-Length: 18446744073709551621||", "badcl"},
		{"CL differing list (CL.CL)", "POST / HTTP/1.1|Host: a|Content-Length: 5, 6||", "badcl"},
		{"CL differing repeated headers (CL.CL)", "POST / HTTP/1.1|Host: a|Content-Length: 5|Content-Length: 6||", "badcl"},
		{"CL empty list element", "POST / HTTP/1.1|Host: a|Content-Length: 5,,5||", "badcl"},
		{"CL trailing comma", "POST / HTTP/1.1|Host: a|Content-Length: 5,||", "badcl"},
		// Transfer-Encoding.
		{"CL and TE (CL.TE / TE.CL)", "POST / HTTP/1.1|Host: a|Content-Length: 5|Transfer-Encoding: chunked||", "conflict"},
		{"TE then CL (TE.CL)", "POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked|Content-Length: 5||", "conflict"},
		{"TE not chunked with CL", "POST / HTTP/1.1|Host: a|Transfer-Encoding: gzip|Content-Length: 5||", "conflict"},
		{"TE chunked not last (TE.TE)", "POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked, gzip||", "unsupportedte"},
		{"TE chunked not last across headers", "POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked|Transfer-Encoding: gzip||", "unsupportedte"},
		{"TE only gzip", "POST / HTTP/1.1|Host: a|Transfer-Encoding: gzip||", "unsupportedte"},
		{"TE obfuscated name xchunked", "POST / HTTP/1.1|Host: a|Transfer-Encoding: xchunked||", "unsupportedte"},
		{"TE chunked with parameter", "POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked;q=1||", "unsupportedte"},
		{"TE identity (obsolete)", "POST / HTTP/1.1|Host: a|Transfer-Encoding: identity||", "unsupportedte"},
		{"TE chunked twice in list", "POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked, chunked||", "syntax"},
		{"TE chunked twice across headers", "POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked|Transfer-Encoding: chunked||", "syntax"},
		{"TE empty value", "POST / HTTP/1.1|Host: a|Transfer-Encoding: ||", "syntax"},
		{"TE empty list element", "POST / HTTP/1.1|Host: a|Transfer-Encoding: , chunked||", "syntax"},
		{"TE trailing comma", "POST / HTTP/1.1|Host: a|Transfer-Encoding: chunked,||", "syntax"},
		{"TE junk inside coding", "POST / HTTP/1.1|Host: a|Transfer-Encoding: chu nked||", "syntax"},
		{"TE quoted coding", "POST / HTTP/1.1|Host: a|Transfer-Encoding: \"chunked\"||", "syntax"},
		{"TE in HTTP/1.0 request", "POST / HTTP/1.0|Transfer-Encoding: chunked||", "syntax"},
		// Host.
		{"HTTP/1.1 without Host", "GET / HTTP/1.1|X: y||", "host"},
		{"two Host headers (routing confusion)", "GET / HTTP/1.1|Host: a|Host: b||", "host"},
		{"two Host headers in HTTP/1.0", "GET / HTTP/1.0|Host: a|Host: a||", "host"},
		{"Host with path", "GET / HTTP/1.1|Host: a/b||", "syntax"},
		{"Host with space", "GET / HTTP/1.1|Host: a b||", "syntax"},
		{"Host with userinfo", "GET / HTTP/1.1|Host: u@a||", "syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.technique, func(t *testing.T) {
			var r Request
			n, err := ParseRequest([]byte(crlf(tt.in)), &r)
			if got := errKind(err); got != tt.want {
				t.Fatalf("err = %v (%s), want %s", err, got, tt.want)
			}
			if n != 0 {
				t.Errorf("n = %d on error", n)
			}
		})
	}
}

func TestParseRequestTooManyHeaders(t *testing.T) {
	head := func(n int) []byte {
		var b strings.Builder
		b.WriteString("GET / HTTP/1.1\r\nHost: a\r\n")
		for i := 1; i < n; i++ {
			b.WriteString("X-H: v\r\n")
		}
		b.WriteString("\r\n")
		return []byte(b.String())
	}
	var r Request
	if _, err := ParseRequest(head(MaxHeaders), &r); err != nil || r.NumHeaders != MaxHeaders {
		t.Fatalf("MaxHeaders headers: %v, %d", err, r.NumHeaders)
	}
	if _, err := ParseRequest(head(MaxHeaders+1), &r); err != ErrTooManyHeaders {
		t.Fatalf("MaxHeaders+1 headers: %v", err)
	}
	// Refused as soon as the 101st line is seen, before the head is complete.
	b := head(MaxHeaders + 1)
	if _, err := ParseRequest(b[:len(b)-2], &r); err != ErrTooManyHeaders {
		t.Fatalf("incomplete: %v", err)
	}
	// The owner sizes the index (server.max_headers): the bound is len(Headers).
	for _, max := range []int{1, 7, 200, 1000} {
		r := NewRequest(max)
		if _, err := ParseRequest(head(max), r); err != nil || r.NumHeaders != max {
			t.Fatalf("%d headers into an index of %d: %v, %d", max, max, err, r.NumHeaders)
		}
		if _, err := ParseRequest(head(max+1), r); err != ErrTooManyHeaders {
			t.Fatalf("%d headers into an index of %d: %v", max+1, max, err)
		}
	}
	if r := NewRequest(0); len(r.Headers) != MaxHeaders {
		t.Fatalf("NewRequest(0) takes %d headers, want MaxHeaders", len(r.Headers))
	}
}

func TestResponseMaxHeadersIsTheIndexLength(t *testing.T) {
	head := func(n int) []byte {
		var b strings.Builder
		b.WriteString("HTTP/1.1 200 OK\r\n")
		for i := 0; i < n; i++ {
			b.WriteString("X-H: v\r\n")
		}
		b.WriteString("\r\n")
		return []byte(b.String())
	}
	var zero Response // nil Headers: MaxHeaders, made by the first parse
	if _, err := ParseResponse(head(MaxHeaders), &zero); err != nil || zero.NumHeaders != MaxHeaders {
		t.Fatalf("MaxHeaders headers: %v %d", err, zero.NumHeaders)
	}
	if _, err := ParseResponse(head(150), &zero); err != ErrTooManyHeaders {
		t.Fatalf("150 headers by default: %v", err)
	}
	r := NewResponse(200)
	if _, err := ParseResponse(head(150), r); err != nil || r.NumHeaders != 150 || string(r.Headers[149].Name) != "X-H" {
		t.Fatalf("150 headers into an index of 200: %v %d", err, r.NumHeaders)
	}
	if _, err := ParseResponse(head(201), r); err != ErrTooManyHeaders {
		t.Fatalf("201 headers into an index of 200: %v", err)
	}
}

// Every proper prefix of a valid head must ask for more: the caller rescans the growing head.
func TestParseRequestNeedMoreOnEveryPrefix(t *testing.T) {
	in := []byte(crlf("POST /upload?x=1 HTTP/1.1|Host: a.example|Transfer-Encoding: gzip, chunked|X-Long: " + strings.Repeat("v", 50) + "||"))
	var r Request
	for i := 0; i < len(in); i++ {
		if _, err := ParseRequest(in[:i], &r); err != ErrNeedMore {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	if n, err := ParseRequest(in, &r); err != nil || n != len(in) {
		t.Fatalf("whole: %d %v", n, err)
	}
}

func TestParseRequestReuseResets(t *testing.T) {
	var r Request
	if _, err := ParseRequest([]byte(crlf("POST / HTTP/1.1|Host: a|Content-Length: 3|Connection: close||")), &r); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseRequest([]byte(crlf("GET / HTTP/1.0||")), &r); err != nil {
		t.Fatal(err)
	}
	if r.Flags != 0 || r.ContentLength != -1 || r.Host != nil || r.NumHeaders != 0 || r.Minor != 0 {
		t.Fatalf("stale state: %+v", r.Flags)
	}
}

func TestSyntaxErrorText(t *testing.T) {
	var r Request
	_, err := ParseRequest([]byte("GET / HTTP/1.1\r\nHost: a\r\nX: secret\x00\r\n\r\n"), &r)
	se, ok := err.(*SyntaxError)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	if se.Offset != 34 || se.State != StateHeaderValue {
		t.Errorf("offset/state = %d %v", se.Offset, se.State)
	}
	if got := err.Error(); got != "codec: syntax error at offset 34 in header-value" {
		t.Errorf("Error() = %q", got)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Error("error echoes input")
	}
	for s := State(0); s <= StateBodyDone; s++ {
		if s.String() == "" || strings.HasPrefix(s.String(), "state(") {
			t.Errorf("state %d has no name", s)
		}
	}
}

func TestRequestMethods(t *testing.T) {
	for _, tt := range []struct {
		method     string
		idempotent bool
	}{{"GET", true}, {"HEAD", true}, {"OPTIONS", true}, {"TRACE", true}, {"PUT", true}, {"DELETE", true}, {"POST", false}, {"PATCH", false}, {"get", false}} {
		r := Request{Method: []byte(tt.method)}
		if r.Idempotent() != tt.idempotent {
			t.Errorf("%s: Idempotent = %v", tt.method, r.Idempotent())
		}
		if r.IsHead() != (tt.method == "HEAD") {
			t.Errorf("%s: IsHead", tt.method)
		}
	}
}

// The word-at-a-time check must agree with the table for every byte at every position in a word.
func TestInvalidValueByteMatchesTable(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 11; pos++ {
			b := []byte("abcdefghijk")
			b[pos] = byte(c)
			want := -1
			if byteClass[c]&clsValue == 0 {
				want = pos
			}
			if got := invalidValueByte(b); got != want {
				t.Fatalf("byte %#x at %d: got %d, want %d", c, pos, got, want)
			}
		}
	}
}

// Empty lines before the request line are skipped but stay part of the head: a head made only of them
// asks for more (the caller's buffer bound turns a flood into 431), and errors count from the buffer start.
func TestParseRequestLeadingEmptyLines(t *testing.T) {
	var r Request
	for _, in := range []string{"", "\r", "\n", "\r\n", "\r\n\r", "\n\n\n", strings.Repeat("\r\n", 500), "\r\nGET / HTTP/1.1\r\nHost: a\r\n"} {
		if n, err := ParseRequest([]byte(in), &r); err != ErrNeedMore || n != 0 {
			t.Errorf("%q (%d bytes): %d %v, want ErrNeedMore", in[:min(len(in), 40)], len(in), n, err)
		}
	}
	_, err := ParseRequest([]byte("\r\n\nG(T / HTTP/1.1\r\nHost: a\r\n\r\n"), &r)
	if se, ok := err.(*SyntaxError); !ok || se.Offset != 4 || se.State != StateMethod {
		t.Errorf("bad method after empty lines: %v, want a method error at offset 4", err)
	}
	if got := EmptyLinesLen([]byte("\r\n\n\r\rGET")); got != 3 {
		t.Errorf("EmptyLinesLen = %d, want 3", got)
	}
}

func TestOversizeStatus(t *testing.T) {
	if OversizeStatus([]byte(strings.Repeat("\r\n", 50))) != 431 {
		t.Error("empty lines only")
	}
	if OversizeStatus([]byte("\r\n\r\nGET /"+strings.Repeat("a", 100))) != 414 {
		t.Error("long target after empty lines")
	}
	if OversizeStatus([]byte("GET /"+strings.Repeat("a", 100))) != 414 {
		t.Error("long target")
	}
	if OversizeStatus([]byte("GET / HTTP/1.1\r\nX: "+strings.Repeat("a", 100))) != 431 {
		t.Error("long header")
	}
}
