package engine

import (
	"strconv"
	"time"
)

// Every response the proxy builds itself is prebuilt at start (SPEC 3.7): the status line, Server, a Date
// header whose 29 bytes are patched in place at most once a second, a short plain-text body naming the
// status, and Connection. Sending one is a single Write of ready bytes; the answer to a HEAD request is
// the same bytes cut before the body (RFC 9110 9.3.2: the same head, Content-Length included, no body).

const dateLen = len("Mon, 02 Jan 2006 15:04:05 GMT")

var builtStatuses = []int{400, 403, 404, 408, 413, 414, 417, 431, 500, 501, 502, 503, 504, 505}

var statusText = map[int]string{
	100: "Continue", 200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
	408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long", 417: "Expectation Failed",
	431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
	502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

// prebuilt is one ready response with the offset of its Date value and the length of its head.
type prebuilt struct {
	b       []byte
	dateOff int
	headLen int // b[:headLen] is the head, up to and including the blank line
}

// responseSet holds the prebuilt responses of one event loop (loop only): each loop patches its own copy
// of Date, so no loop reads memory another writes.
type responseSet struct {
	close, keep [600]*prebuilt // by status
	all         []*prebuilt
	lastSecond  int64
	date        [dateLen]byte // the current Date value, for responses assembled per request (cache hits)
}

func buildResponse(status int, keepAlive bool) *prebuilt {
	text := strconv.Itoa(status) + " " + statusText[status]
	body := text + "\n"
	conn := "close"
	if keepAlive {
		conn = "keep-alive"
	}
	head := "HTTP/1.1 " + text + "\r\nServer: switchflow\r\nDate: "
	rest := "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(body)) +
		"\r\nConnection: " + conn + "\r\n\r\n"
	b := make([]byte, 0, len(head)+dateLen+len(rest)+len(body))
	b = append(b, head...)
	b = append(b, make([]byte, dateLen)...)
	b = append(b, rest...)
	headLen := len(b)
	b = append(b, body...)
	return &prebuilt{b: b, dateOff: len(head), headLen: headLen}
}

func newResponseSet(now time.Time) *responseSet {
	rs := &responseSet{}
	for _, st := range builtStatuses {
		rs.close[st] = buildResponse(st, false)
		rs.keep[st] = buildResponse(st, true)
		rs.all = append(rs.all, rs.close[st], rs.keep[st])
	}
	rs.refreshDate(now)
	return rs
}

// refreshDate rewrites Date in every prebuilt response if the second changed. Loop only.
func (rs *responseSet) refreshDate(now time.Time) {
	sec := now.Unix()
	if sec == rs.lastSecond {
		return
	}
	rs.lastSecond = sec
	now.UTC().AppendFormat(rs.date[:0], "Mon, 02 Jan 2006 15:04:05 GMT")
	for _, p := range rs.all {
		copy(p.b[p.dateOff:], rs.date[:])
	}
}

// get returns the prebuilt response for status; unknown statuses fall back to 500. headOnly (the
// request was HEAD) returns the head alone, a subslice of the same bytes.
func (rs *responseSet) get(status int, keepAlive, headOnly bool) []byte {
	set := &rs.close
	if keepAlive {
		set = &rs.keep
	}
	p := set[500]
	if status >= 0 && status < len(set) && set[status] != nil {
		p = set[status]
	}
	if headOnly {
		return p.b[:p.headLen]
	}
	return p.b
}

// headLen is the length of the head of the prebuilt response get returns for status.
func (rs *responseSet) headLen(status int, keepAlive bool) int {
	set := &rs.close
	if keepAlive {
		set = &rs.keep
	}
	if status >= 0 && status < len(set) && set[status] != nil {
		return set[status].headLen
	}
	return set[500].headLen
}

// appendDate adds "Date: date" to a head that ends in the blank line: a forwarded response whose backend
// sent none gets the loop's current Date (RFC 9110 6.6.1), with no allocation once headBuf has grown.
func appendDate(head, date []byte) []byte {
	head = append(head[:len(head)-2], "Date: "...)
	head = append(head, date...)
	return append(head, "\r\n\r\n"...)
}
