package codec

import (
	"bytes"
	"math"
)

// MaxHeaders is the default size of the header index of a Request or Response: the header lines one
// head may have. The index is Headers, allocated by its owner (NewRequest, NewResponse, or a make of
// its own) or, when Headers is nil, by the first parse into the struct, with MaxHeaders entries; the
// parse itself never allocates. A head with more header lines than len(Headers) is refused with
// ErrTooManyHeaders (431 for requests, 502 for responses).
const MaxHeaders = 100

// Header is one header line: views into the parsed buffer. Name is the field name as sent (original
// case); Value has its surrounding OWS trimmed and may be empty.
type Header struct{ Name, Value []byte }

// Message facts, kept as a flag word in the manner of HAProxy's h1m flags.
const (
	FlagContentLength    uint32 = 1 << iota // a valid Content-Length header was present
	FlagChunked                             // Transfer-Encoding present and its last coding is chunked
	FlagTransferEncoding                    // any Transfer-Encoding header present
	FlagConnClose                           // Connection header has the token "close"
	FlagConnKeepAlive                       // Connection header has the token "keep-alive"
	FlagConnUpgrade                         // Connection header has the token "upgrade"
	FlagUpgrade                             // an Upgrade header is present
	FlagUpgradeWebSocket                    // an Upgrade header lists the protocol "websocket"
	FlagExpectContinue                      // Expect: 100-continue
	FlagHasHost                             // a Host header is present
	FlagHasDate                             // a Date header is present (responses only)
)

// BodyKind says how the body that follows a head is framed.
type BodyKind uint8

const (
	BodyNone       BodyKind = iota // no body
	BodyLength                     // ContentLength bytes
	BodyChunked                    // chunked framing; use a ChunkedReader
	BodyUntilClose                 // everything until the backend closes (responses only)
)

func (k BodyKind) String() string {
	switch k {
	case BodyNone:
		return "none"
	case BodyLength:
		return "length"
	case BodyChunked:
		return "chunked"
	case BodyUntilClose:
		return "until-close"
	}
	return "unknown"
}

// headFacts collects what the header lines of one head say about framing and connection handling.
type headFacts struct {
	flags         uint32
	contentLength int64
	host          []byte
	hostCount     int
	chunkedCount  int
	lastChunked   bool
	connOther     bool // a Connection token other than close/keep-alive/upgrade: it names a header to drop
	rewrite       bool // a line forwarding drops or merges: a hop-by-hop header, a repeated Content-Length
	teOffset      int  // offset of the first Transfer-Encoding value, for errors found after the head
}

// nextLine finds the line starting at pos. cr is the index of its terminating CR, next the index after
// the LF. A LF not preceded by CR is a SyntaxError: bare-LF line endings are the classic way to make
// two parsers disagree on where a header ends. Bare CRs inside the line are caught by the byte classes
// of whichever element contains them.
func nextLine(buf []byte, pos int, se *SyntaxError) (cr, next int, err error) {
	i := bytes.IndexByte(buf[pos:], '\n')
	if i < 0 {
		return 0, 0, ErrNeedMore
	}
	lf := pos + i
	if lf == pos || buf[lf-1] != '\r' {
		return 0, 0, fail(se, lf, StateLineEnd)
	}
	return lf - 1, lf + 1, nil
}

// parseVersion checks an "HTTP/x.y" version: 1.0 and 1.1 are accepted, any other well-formed x.y is
// ErrUnsupportedVersion, anything else is a SyntaxError at off. The name is case-sensitive (RFC 9112 2.3).
func parseVersion(v []byte, off int, se *SyntaxError) (minor uint8, err error) {
	if len(v) != 8 || string(v[:5]) != "HTTP/" || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return 0, fail(se, off, StateVersion)
	}
	if v[5] != '1' || (v[7] != '0' && v[7] != '1') {
		return 0, ErrUnsupportedVersion
	}
	return v[7] - '0', nil
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// parseHeaders parses header lines from pos up to and including the empty line that ends the head.
// It returns the head length and the number of headers stored in hs.
func parseHeaders(buf []byte, pos int, hs []Header, f *headFacts, se *SyntaxError, isRequest bool) (n, count int, err error) {
	for {
		cr, next, err := nextLine(buf, pos, se)
		if err != nil {
			return 0, count, err
		}
		if cr == pos {
			return next, count, nil
		}
		line := buf[pos:cr]
		if c := line[0]; c == ' ' || c == '\t' {
			// obs-fold: a continuation line may be glued to the previous value by one parser and
			// read as a new header by another.
			return 0, count, fail(se, pos, StateObsFold)
		}
		i := 0
		for i < len(line) && byteClass[line[i]]&clsToken != 0 {
			i++
		}
		if i == 0 || i == len(line) || line[i] != ':' {
			// Covers "Name : v" and "Name\t: v": whitespace before the colon lets
			// "Transfer-Encoding : chunked" be seen by some parsers and not by others.
			return 0, count, fail(se, pos+i, StateHeaderName)
		}
		value := line[i+1:]
		voff := pos + i + 1
		if j := invalidValueByte(value); j >= 0 {
			return 0, count, fail(se, voff+j, StateHeaderValue)
		}
		if count == len(hs) {
			return 0, count, ErrTooManyHeaders
		}
		name := line[:i]
		value = trimOWS(value)
		hs[count] = Header{Name: name, Value: value}
		count++
		if err := f.observe(name, value, voff, se, isRequest); err != nil {
			return 0, count, err
		}
		pos = next
	}
}

// observe records the facts carried by one header line.
func (f *headFacts) observe(name, value []byte, voff int, se *SyntaxError, isRequest bool) error {
	switch len(name) {
	case 2:
		if equalFoldLower(name, "te") {
			f.rewrite = true
		}
	case 4:
		if !isRequest {
			if equalFoldLower(name, "date") {
				f.flags |= FlagHasDate // a proxy adds one when it is missing (RFC 9110 6.6.1)
			}
			return nil
		}
		if equalFoldLower(name, "host") {
			f.flags |= FlagHasHost
			f.hostCount++
			if f.hostCount == 1 {
				f.host = value
			}
			for j := 0; j < len(value); j++ {
				if byteClass[value[j]]&clsHost == 0 {
					// A Host the router reads differently from the backend ("a.com/x", "a b").
					return fail(se, voff, StateHost)
				}
			}
		}
	case 6:
		if isRequest && equalFoldLower(name, "expect") && equalFoldLower(value, "100-continue") {
			f.flags |= FlagExpectContinue
		}
	case 7:
		if equalFoldLower(name, "upgrade") {
			f.flags |= FlagUpgrade
			f.rewrite = true
			it := listIter{list: value}
			for tok, ok := it.next(); ok; tok, ok = it.next() {
				if equalFoldLower(tok, "websocket") {
					f.flags |= FlagUpgradeWebSocket
				}
			}
		}
	case 10:
		if equalFoldLower(name, "keep-alive") {
			f.rewrite = true
		} else if equalFoldLower(name, "connection") {
			f.rewrite = true
			it := listIter{list: value}
			for tok, ok := it.next(); ok; tok, ok = it.next() {
				switch {
				case len(tok) == 0:
				case equalFoldLower(tok, "close"):
					f.flags |= FlagConnClose
				case equalFoldLower(tok, "keep-alive"):
					f.flags |= FlagConnKeepAlive
				case equalFoldLower(tok, "upgrade"):
					f.flags |= FlagConnUpgrade
				default:
					f.connOther = true
				}
			}
		}
	case 14:
		if equalFoldLower(name, "content-length") {
			return f.contentLengthValue(value)
		}
	case 16:
		if equalFoldLower(name, "proxy-connection") {
			f.rewrite = true
		}
	case 17:
		if equalFoldLower(name, "transfer-encoding") {
			return f.transferEncodingValue(value, voff, se)
		}
	}
	return nil
}

// contentLengthValue accepts digits only (no sign, no OWS inside, no hex), at most int63, and a list or
// repetition only of identical values (RFC 9110 8.6). Everything else is ErrBadContentLength.
func (f *headFacts) contentLengthValue(value []byte) error {
	it := listIter{list: value}
	for elem, ok := it.next(); ok; elem, ok = it.next() {
		if len(elem) == 0 {
			return ErrBadContentLength
		}
		var n int64
		for _, b := range elem {
			if !isDigit(b) {
				return ErrBadContentLength
			}
			d := int64(b - '0')
			if n > (math.MaxInt64-d)/10 {
				return ErrBadContentLength
			}
			n = n*10 + d
		}
		if f.flags&FlagContentLength != 0 {
			if n != f.contentLength {
				return ErrBadContentLength
			}
			f.rewrite = true // forwarded as one
		}
		f.contentLength = n
		f.flags |= FlagContentLength
	}
	return nil
}

// transferEncodingValue walks the codings of one Transfer-Encoding line. The list continues across
// repeated headers (RFC 9110 5.3), so lastChunked is decided by the last coding of the last header.
// Empty elements and a second "chunked" are SyntaxErrors (400), not 501: they are malformed rather
// than merely unsupported, and "chunked, chunked" is a known desync probe.
func (f *headFacts) transferEncodingValue(value []byte, voff int, se *SyntaxError) error {
	if f.flags&FlagTransferEncoding == 0 {
		f.teOffset = voff
	}
	f.flags |= FlagTransferEncoding
	it := listIter{list: value}
	for elem, ok := it.next(); ok; elem, ok = it.next() {
		k := 0
		for k < len(elem) && byteClass[elem[k]]&clsToken != 0 {
			k++
		}
		if k == 0 {
			return fail(se, voff, StateTransferEncoding)
		}
		if k < len(elem) {
			// Only parameters may follow the coding name: "gzip;q=1" is a coding, "chu nked" is not.
			if rest := trimOWS(elem[k:]); len(rest) == 0 || rest[0] != ';' {
				return fail(se, voff, StateTransferEncoding)
			}
			f.lastChunked = false
			continue
		}
		if equalFoldLower(elem, "chunked") {
			f.chunkedCount++
			if f.chunkedCount > 1 {
				return fail(se, voff, StateTransferEncoding)
			}
			f.lastChunked = true
		} else {
			f.lastChunked = false
		}
	}
	return nil
}

// getHeader returns the value of the first header named name (compared case-insensitively).
func getHeader(hs []Header, name string) []byte {
	for i := range hs {
		if equalFoldString(hs[i].Name, name) {
			return hs[i].Value
		}
	}
	return nil
}

// equalFoldString compares b and s ignoring ASCII case; s may have any case.
func equalFoldString(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lowerTable[b[i]] != lowerTable[s[i]] {
			return false
		}
	}
	return true
}
