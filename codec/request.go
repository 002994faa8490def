package codec

import "bytes"

// Request is a parsed request head. Every []byte field (Method, Target, Host, Headers[i].Name/Value)
// is a view into the buffer given to ParseRequest and is valid only while that buffer is neither
// modified nor reused; a request that must outlive the read callback copies its head into its
// connection's slab first and parses it there. A Request is reused across requests: ParseRequest
// resets it. Not safe for concurrent use.
type Request struct {
	Method, Target []byte // views
	Minor          uint8  // 0 for HTTP/1.0, 1 for HTTP/1.1
	Flags          uint32
	ContentLength  int64    // -1 when absent
	Host           []byte   // Host header value (view), nil if absent
	Headers        []Header // the header index: its length is the most header lines a head may have
	NumHeaders     int

	connOther bool        // Connection names headers beyond close/keep-alive/upgrade
	synErr    SyntaxError // returned by pointer so the error path does not allocate
}

// NewRequest returns a Request whose header index takes maxHeaders header lines (MaxHeaders when
// maxHeaders < 1).
func NewRequest(maxHeaders int) *Request {
	if maxHeaders < 1 {
		maxHeaders = MaxHeaders
	}
	return &Request{Headers: make([]Header, maxHeaders)}
}

// ParseRequest parses one request head at the start of buf. It never allocates (but for the header
// index of a Request whose Headers is nil, made once with MaxHeaders entries) and keeps no reference
// to buf beyond the views it stores in r.
//
// Empty lines (CRLF or bare LF) before the request line are skipped (RFC 9112 2.2) and counted in n.
// On success n is the length of the head including the final CRLFCRLF; bytes after it (a body or a
// pipelined request) are left alone. On error n is 0 and err is one of:
//
//	ErrNeedMore                     head incomplete: read more, call again with the whole head prefix
//	*SyntaxError                    malformed request line or header, bare CR/LF, obs-fold, CTLs (400)
//	ErrTooManyHeaders               more than len(r.Headers) header lines (431)
//	ErrBadContentLength             invalid or differing Content-Length (400)
//	ErrConflictingFraming           Content-Length and Transfer-Encoding both present (400)
//	ErrUnsupportedTransferEncoding  last transfer coding is not chunked (501)
//	ErrUnsupportedVersion           well-formed HTTP/x.y other than 1.0 and 1.1 (505)
//	ErrMissingHost                  HTTP/1.1 without Host, or more than one Host (400)
//
// Errors are reported as soon as they are seen, so a bad request line fails before its headers arrive.
func ParseRequest(buf []byte, r *Request) (n int, err error) {
	r.Method, r.Target, r.Host = nil, nil, nil
	r.Minor, r.Flags, r.ContentLength, r.NumHeaders, r.connOther = 0, 0, -1, 0, false
	se := &r.synErr

	// RFC 9112 2.2: empty lines before the request line are skipped (as nginx and HAProxy do). They are
	// part of the head as far as n and the caller's buffer bound are concerned, so a flood of them ends
	// in ErrNeedMore with a full buffer (431), never in an endless read.
	start := EmptyLinesLen(buf)
	cr, next, err := nextLine(buf, start, se)
	if err != nil {
		return 0, err
	}
	if err := r.parseRequestLine(buf[start:cr], se); err != nil {
		if err == se {
			se.Offset += start // parseRequestLine counts from the start of the line
		}
		return 0, err
	}

	if r.Headers == nil {
		r.Headers = make([]Header, MaxHeaders)
	}
	f := headFacts{contentLength: -1}
	n, count, err := parseHeaders(buf, next, r.Headers, &f, se, true)
	r.NumHeaders = count
	if err != nil {
		return 0, err
	}
	if err := f.checkTransferEncoding(r.Minor, se); err != nil {
		return 0, err
	}
	if f.hostCount > 1 || (r.Minor == 1 && f.hostCount == 0) {
		return 0, ErrMissingHost
	}
	if r.Minor == 0 {
		// RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request must be ignored.
		f.flags &^= FlagExpectContinue
	}
	r.Flags = f.flags
	r.ContentLength = f.contentLength
	r.Host = f.host
	r.connOther = f.connOther
	return n, nil
}

// parseRequestLine parses "method SP request-target SP HTTP-version" (CRLF already removed).
func (r *Request) parseRequestLine(line []byte, se *SyntaxError) error {
	if len(line) == 0 {
		return fail(se, 0, StateRequestLine) // cannot happen: ParseRequest skips empty lines
	}
	i := 0
	for i < len(line) && byteClass[line[i]]&clsToken != 0 {
		i++
	}
	switch {
	case i == 0:
		return fail(se, 0, StateMethod)
	case i == len(line):
		return fail(se, i, StateRequestLine)
	case line[i] != ' ':
		return fail(se, i, StateMethod)
	}
	r.Method = line[:i]

	t0 := i + 1
	sp := bytes.IndexByte(line[t0:], ' ')
	if sp < 0 {
		// "GET /" with no version: HTTP/0.9 style.
		return fail(se, len(line), StateRequestLine)
	}
	target := line[t0 : t0+sp]
	if len(target) == 0 {
		return fail(se, t0, StateTarget)
	}
	for j := 0; j < len(target); j++ {
		if byteClass[target[j]]&clsTarget == 0 {
			return fail(se, t0+j, StateTarget)
		}
	}
	v0 := t0 + sp + 1
	minor, err := parseVersion(line[v0:], v0, se)
	if err != nil {
		return err
	}
	if !targetFormOK(r.Method, target) {
		return fail(se, t0, StateTarget)
	}
	r.Target = target
	r.Minor = minor
	return nil
}

// targetFormOK applies RFC 9112 3.2: origin-form or absolute-form (http/https) for most methods,
// authority-form only and always for CONNECT, "*" only for OPTIONS.
func targetFormOK(method, target []byte) bool {
	if string(method) == "CONNECT" {
		if bytes.IndexByte(target, ':') <= 0 {
			return false
		}
		for _, b := range target {
			if byteClass[b]&clsHost == 0 {
				return false
			}
		}
		return true
	}
	switch {
	case target[0] == '/':
		return true
	case len(target) == 1 && target[0] == '*':
		return string(method) == "OPTIONS"
	case hasPrefixFold(target, "http://"):
		return len(target) > len("http://")
	case hasPrefixFold(target, "https://"):
		return len(target) > len("https://")
	}
	return false
}

func hasPrefixFold(b []byte, lowerPrefix string) bool {
	return len(b) >= len(lowerPrefix) && equalFoldLower(b[:len(lowerPrefix)], lowerPrefix)
}

// IsHead reports whether the method is HEAD.
func (r *Request) IsHead() bool { return string(r.Method) == "HEAD" }

// KeepAlive reports whether the client wants the connection kept open after this exchange: HTTP/1.1
// unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive" (and no close).
func (r *Request) KeepAlive() bool {
	if r.Flags&FlagConnClose != 0 {
		return false
	}
	return r.Minor == 1 || r.Flags&FlagConnKeepAlive != 0
}

// Body says how the request body is framed: chunked, Content-Length > 0, or none.
func (r *Request) Body() BodyKind {
	switch {
	case r.Flags&FlagChunked != 0:
		return BodyChunked
	case r.ContentLength > 0:
		return BodyLength
	}
	return BodyNone
}

// Idempotent reports whether the method is idempotent (RFC 9110 9.2.2), i.e. safe to retry on another
// server when the backend failed before answering.
func (r *Request) Idempotent() bool {
	switch string(r.Method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// HeaderList returns the headers that were parsed (a view of r.Headers[:r.NumHeaders]).
func (r *Request) HeaderList() []Header { return r.Headers[:r.NumHeaders] }

// Get returns the value of the first header named name (case-insensitive), or nil. The result is a
// view with the same lifetime as the parsed buffer.
func (r *Request) Get(name string) []byte { return getHeader(r.Headers[:r.NumHeaders], name) }

// Has reports whether a header named name (case-insensitive) is present.
func (r *Request) Has(name string) bool {
	for i := 0; i < r.NumHeaders; i++ {
		if equalFoldString(r.Headers[i].Name, name) {
			return true
		}
	}
	return false
}

// EmptyLinesLen returns the length of the empty lines (CRLF, or a bare LF) at the start of buf, which
// ParseRequest skips before a request line (RFC 9112 2.2). A CR not followed by LF ends them.
func EmptyLinesLen(buf []byte) int {
	i := 0
	for i < len(buf) {
		switch {
		case buf[i] == '\n':
			i++
		case buf[i] == '\r' && i+1 < len(buf) && buf[i+1] == '\n':
			i += 2
		default:
			return i
		}
	}
	return i
}

// OversizeStatus is the status for a request head that filled the whole head buffer while
// ParseRequest still returned ErrNeedMore: 414 when the request line has started but is not complete
// (the target is too long), 431 otherwise (SPEC 3.2), a buffer of nothing but empty lines included.
func OversizeStatus(buf []byte) int {
	buf = buf[EmptyLinesLen(buf):]
	if len(buf) == 0 || string(buf) == "\r" {
		return 431 // empty lines only: no request line has started
	}
	if bytes.IndexByte(buf, '\n') < 0 {
		return 414
	}
	return 431
}
