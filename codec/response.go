package codec

// Response is a parsed response head. Reason and Headers[i].Name/Value are views into the buffer given
// to ParseResponse, valid while that buffer is neither modified nor reused. Not safe for concurrent use.
type Response struct {
	Minor         uint8
	Status        int
	Reason        []byte // view; may be empty
	Flags         uint32
	ContentLength int64    // -1 when absent
	Headers       []Header // the header index: its length is the most header lines a head may have
	NumHeaders    int

	connOther bool
	rewrite   bool // see Verbatim
	synErr    SyntaxError
}

// NewResponse returns a Response whose header index takes maxHeaders header lines (MaxHeaders when
// maxHeaders < 1).
func NewResponse(maxHeaders int) *Response {
	if maxHeaders < 1 {
		maxHeaders = MaxHeaders
	}
	return &Response{Headers: make([]Header, maxHeaders)}
}

// ParseResponse parses one response head at the start of buf, with the same contract as ParseRequest
// (it never allocates but for a nil Headers; n is the head length; ErrNeedMore means read more and call
// again; more than len(r.Headers) header lines is ErrTooManyHeaders). 1xx heads
// parse like any other; the caller loops for the final response. Any error is a malformed response
// (502), except ErrNeedMore and ErrTooManyHeaders (also 502 at the proxy, but distinguishable).
//
// Differences from requests: no Host rules. As for requests, a Transfer-Encoding whose last coding is not
// chunked is ErrUnsupportedTransferEncoding (RFC 9112 6.3 would let the body run until the backend
// closes, but a client that does not know the coding cannot read it; nginx and HAProxy answer 502 too);
// Transfer-Encoding in an HTTP/1.0 response is a SyntaxError (faulty framing, RFC 9112 6.1);
// Content-Length with Transfer-Encoding is ErrConflictingFraming.
func ParseResponse(buf []byte, r *Response) (n int, err error) {
	r.Minor, r.Status, r.Reason, r.Flags, r.ContentLength, r.NumHeaders, r.connOther, r.rewrite = 0, 0, nil, 0, -1, 0, false, false
	se := &r.synErr

	cr, next, err := nextLine(buf, 0, se)
	if err != nil {
		return 0, err
	}
	if err := r.parseStatusLine(buf[:cr], se); err != nil {
		return 0, err
	}

	if r.Headers == nil {
		r.Headers = make([]Header, MaxHeaders)
	}
	f := headFacts{contentLength: -1}
	n, count, err := parseHeaders(buf, next, r.Headers, &f, se, false)
	r.NumHeaders = count
	if err != nil {
		return 0, err
	}
	if err := f.checkTransferEncoding(r.Minor, se); err != nil {
		return 0, err
	}
	r.Flags = f.flags
	r.ContentLength = f.contentLength
	r.connOther = f.connOther
	r.rewrite = f.rewrite
	return n, nil
}

// parseStatusLine parses "HTTP-version SP 3DIGIT [SP reason-phrase]" (CRLF already removed). A missing
// SP before an empty reason is tolerated, as most clients do; it cannot change framing.
func (r *Response) parseStatusLine(line []byte, se *SyntaxError) error {
	if len(line) < 8 {
		return fail(se, 0, StateVersion)
	}
	minor, err := parseVersion(line[:8], 0, se)
	if err != nil {
		return err
	}
	if len(line) < 12 || line[8] != ' ' {
		return fail(se, 8, StateStatusCode)
	}
	c := line[9:12]
	if c[0] < '1' || c[0] > '9' || !isDigit(c[1]) || !isDigit(c[2]) {
		return fail(se, 9, StateStatusCode)
	}
	status := int(c[0]-'0')*100 + int(c[1]-'0')*10 + int(c[2]-'0')
	var reason []byte
	if len(line) > 12 {
		if line[12] != ' ' {
			return fail(se, 12, StateStatusCode)
		}
		reason = line[13:]
		if j := invalidValueByte(reason); j >= 0 {
			return fail(se, 13+j, StateReason)
		}
	} else {
		reason = line[12:12]
	}
	r.Minor, r.Status, r.Reason = minor, status, reason
	return nil
}

// Verbatim reports whether AppendProxyResponse(dst, r, clientMinor, keepAlive, false, false) would write
// the head's own status line and header lines, up to the whitespace around header values: the client
// speaks HTTP/1.1 and keeps the connection (so no Connection header is added), the head is HTTP/1.1 and
// has no hop-by-hop header (Connection, Keep-Alive, Proxy-Connection, TE, Upgrade) and no repeated
// Content-Length. A proxy may then forward the head's bytes as they are instead of rebuilding them.
func (r *Response) Verbatim(clientMinor uint8, keepAlive bool) bool {
	return clientMinor == 1 && keepAlive && r.Minor == 1 && !r.rewrite
}

// KeepAlive reports whether the backend allows reuse of the connection after this response, judged by
// version and Connection only: HTTP/1.1 unless "close", HTTP/1.0 only with "keep-alive". A response
// whose Body is BodyUntilClose can never be reused whatever this says.
func (r *Response) KeepAlive() bool {
	if r.Flags&FlagConnClose != 0 {
		return false
	}
	return r.Minor == 1 || r.Flags&FlagConnKeepAlive != 0
}

// Body says how the response body is framed (RFC 9112 6.3): none for a HEAD request, 1xx, 204 and 304;
// chunked; Content-Length (0 is none); otherwise until the backend closes.
func (r *Response) Body(requestWasHead bool) BodyKind {
	switch {
	case requestWasHead, r.Status < 200, r.Status == 204, r.Status == 304:
		return BodyNone
	case r.Flags&FlagChunked != 0:
		return BodyChunked
	case r.Flags&FlagContentLength != 0:
		if r.ContentLength == 0 {
			return BodyNone
		}
		return BodyLength
	}
	return BodyUntilClose
}

// HeaderList returns the headers that were parsed (a view of r.Headers[:r.NumHeaders]).
func (r *Response) HeaderList() []Header { return r.Headers[:r.NumHeaders] }

// Get returns the value of the first header named name (case-insensitive), or nil.
func (r *Response) Get(name string) []byte { return getHeader(r.Headers[:r.NumHeaders], name) }

// Has reports whether a header named name (case-insensitive) is present.
func (r *Response) Has(name string) bool {
	for i := 0; i < r.NumHeaders; i++ {
		if equalFoldString(r.Headers[i].Name, name) {
			return true
		}
	}
	return false
}

// checkTransferEncoding applies the framing rules every message with Transfer-Encoding shares, and sets
// FlagChunked when the last coding is chunked. A message whose last coding is not chunked is refused: a
// request has no determinable length (501), and a response's body, which RFC 9112 6.3 lets run until
// the backend closes, would reach a client that cannot decode it (502, as nginx and HAProxy).
func (f *headFacts) checkTransferEncoding(minor uint8, se *SyntaxError) error {
	if f.flags&FlagTransferEncoding == 0 {
		return nil
	}
	switch {
	case minor == 0:
		// HTTP/1.0 has no chunked coding; a 1.0 hop may ignore TE and read the body as
		// Content-Length or as the next message (RFC 9112 6.1).
		return fail(se, f.teOffset, StateTransferEncoding)
	case f.flags&FlagContentLength != 0:
		return ErrConflictingFraming
	case !f.lastChunked:
		return ErrUnsupportedTransferEncoding
	}
	if f.lastChunked {
		f.flags |= FlagChunked
	}
	return nil
}
