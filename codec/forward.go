package codec

import "strconv"

// Forwarding helpers. Each appends to dst and returns the extended slice, like strconv.AppendInt: they
// allocate only when cap(dst) is too small. The result holds copies, so it does not depend on the
// parsed buffer once returned.

// AppendProxyRequest appends the head to send to the backend:
//
//   - "METHOD target HTTP/1.1\r\n" (backends are always spoken to in HTTP/1.1); target is the origin
//     form the caller derived from r.Target (OriginForm), rewritten or not;
//   - "Host: ..." first when the request target is in absolute form: its authority, which replaces any
//     Host the client sent (RFC 9112 3.2.2: a Host header naming another site cannot ride past the
//     routing done by the authority); or when the client sent no Host (HTTP/1.0): defaultHost (the
//     upstream server address, as nginx's $proxy_host), since HTTP/1.1 requires one;
//   - every header except the hop-by-hop ones (Connection, Keep-Alive, Proxy-Connection, TE, Upgrade
//     unless keepUpgrade, and every header named in a Connection header) and the client's
//     X-Forwarded-For/-Proto/-Host; Transfer-Encoding and Trailer are kept because the body is passed
//     through with its framing; repeated or listed identical Content-Lengths become one;
//   - X-Forwarded-For: the client's values joined with ", ", then clientIP (one header; clientIP alone
//     when the client's Connection names X-Forwarded-For);
//   - X-Forwarded-Proto: proto, and X-Forwarded-Host: the Host sent, when the client gave one (in the
//     Host header or the target's authority);
//   - "Connection: upgrade\r\n" when keepUpgrade, then the final "\r\n".
//
// Content-Length, Transfer-Encoding and Host are never dropped on a Connection header's say-so: the body
// is forwarded with the client's framing, and "Connection: Content-Length" would otherwise make the
// backend read that body as the next request.
func AppendProxyRequest(dst []byte, r *Request, target, clientIP, proto, defaultHost []byte, keepUpgrade bool) []byte {
	hs := r.Headers[:r.NumHeaders]
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	dst = append(dst, target...)
	dst = append(dst, " HTTP/1.1\r\n"...)
	host := r.Host
	var authority []byte
	if len(r.Target) > 0 && r.Target[0] != '/' { // not the origin form: an absolute form names the host
		authority, _, _ = OriginForm(r.Target)
	}
	if authority != nil {
		host = authority
	}
	if authority != nil || r.Flags&FlagHasHost == 0 {
		dst = append(dst, "Host: "...)
		if host != nil {
			dst = append(dst, host...)
		} else {
			dst = append(dst, defaultHost...) // as nginx's $proxy_host: the upstream server's address
		}
		dst = append(dst, "\r\n"...)
	}
	dst = appendEndToEnd(dst, hs, r.ContentLength, r.connOther, keepUpgrade, true, false, authority != nil)

	dst = append(dst, "X-Forwarded-For: "...)
	for i := range hs {
		if len(hs[i].Value) > 0 && equalFoldLower(hs[i].Name, "x-forwarded-for") {
			if r.connOther && namedInConnection(hs, hs[i].Name) {
				break // hop-by-hop by the client's say-so: only this hop's address goes on
			}
			dst = append(dst, hs[i].Value...)
			dst = append(dst, ", "...)
		}
	}
	dst = append(dst, clientIP...)
	dst = append(dst, "\r\nX-Forwarded-Proto: "...)
	dst = append(dst, proto...)
	dst = append(dst, "\r\n"...)
	if host != nil {
		dst = appendHeader(dst, xForwardedHost, host)
	}
	if keepUpgrade {
		dst = append(dst, "Connection: upgrade\r\n"...)
	}
	return append(dst, "\r\n"...)
}

var xForwardedHost = []byte("X-Forwarded-Host")

// AppendProxyResponse appends the head to send to the client:
//
//   - "HTTP/1.1 <status> <reason>\r\n", from a prebuilt line when the status is common and the reason
//     is the standard one;
//   - every header except the hop-by-hop ones (as for requests; Upgrade kept when keepUpgrade), and
//     except Transfer-Encoding and Trailer when omitTE (the body goes de-chunked, without trailers);
//     identical Content-Lengths become one;
//   - "Connection: upgrade\r\n" when keepUpgrade; otherwise "Connection: close\r\n" when !keepAlive, or
//     "Connection: keep-alive\r\n" when keepAlive and the client speaks HTTP/1.0; then "\r\n".
//
// keepUpgrade wins over keepAlive: a 101 response switching protocols must not also say "close".
func AppendProxyResponse(dst []byte, r *Response, clientMinor uint8, keepAlive, omitTE, keepUpgrade bool) []byte {
	hs := r.Headers[:r.NumHeaders]
	dst = appendStatusLine(dst, r.Status, r.Reason)
	dst = appendEndToEnd(dst, hs, r.ContentLength, r.connOther, keepUpgrade, false, omitTE, false)
	switch {
	case keepUpgrade:
		dst = append(dst, "Connection: upgrade\r\n"...)
	case !keepAlive:
		dst = append(dst, "Connection: close\r\n"...)
	case clientMinor == 0:
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	return append(dst, "\r\n"...)
}

func appendHeader(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

func appendContentLength(dst []byte, n int64, done bool) ([]byte, bool) {
	if done {
		return dst, true
	}
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, "\r\n"...), true
}

// dropHopByHop reports whether the header called name must not cross the proxy (RFC 9110 7.6.1).
func dropHopByHop(hs []Header, name []byte, connOther, keepUpgrade bool) bool {
	switch len(name) {
	case 2:
		if equalFoldLower(name, "te") {
			return true
		}
	case 7:
		if equalFoldLower(name, "upgrade") {
			return !keepUpgrade
		}
	case 10:
		if equalFoldLower(name, "connection") || equalFoldLower(name, "keep-alive") {
			return true
		}
	case 14:
		if equalFoldLower(name, "http2-settings") {
			return true // connection-specific (RFC 9113 3.1 of the h2c upgrade): never forwarded
		}
	case 16:
		if equalFoldLower(name, "proxy-connection") {
			return true
		}
	}
	if !connOther || framingHeader(name) {
		return false
	}
	return namedInConnection(hs, name)
}

// framingHeader reports the headers a Connection token may not remove (see AppendProxyRequest).
func framingHeader(name []byte) bool {
	return equalFoldLower(name, "content-length") || equalFoldLower(name, "transfer-encoding") ||
		equalFoldLower(name, "host")
}

func namedInConnection(hs []Header, name []byte) bool {
	for i := range hs {
		if !equalFoldLower(hs[i].Name, "connection") {
			continue
		}
		it := listIter{list: hs[i].Value}
		for tok, ok := it.next(); ok; tok, ok = it.next() {
			if equalFold(tok, name) {
				return true
			}
		}
	}
	return false
}

// OriginForm splits a request target into the authority of an absolute-form target and the rest:
// "http://a.example:8080/x?q" gives "a.example:8080" and "/x?q"; "http://a.example?q" gives
// "a.example" and "?q" (the caller puts a "/" in front: RFC 9112 3.2.1); an origin-form target gives
// nil and itself. ok is false for an absolute-form target whose authority is empty or not a valid Host
// value (userinfo included: "user@host" is refused rather than forwarded as a Host).
func OriginForm(target []byte) (authority, rest []byte, ok bool) {
	if len(target) > 0 && target[0] == '/' {
		return nil, target, true
	}
	switch {
	case hasPrefixFold(target, "http://"):
		rest = target[len("http://"):]
	case hasPrefixFold(target, "https://"):
		rest = target[len("https://"):]
	default:
		return nil, target, true // "*" (OPTIONS) and the like
	}
	end := 0
	for end < len(rest) && rest[end] != '/' && rest[end] != '?' && rest[end] != '#' {
		if byteClass[rest[end]]&clsHost == 0 {
			return nil, nil, false
		}
		end++
	}
	if end == 0 {
		return nil, nil, false
	}
	return rest[:end], rest[end:], true
}

// statusLines holds prebuilt "HTTP/1.1 NNN Reason\r\n" lines for common codes; statusReasons their
// reason phrases. Both are filled once at initialisation and only read afterwards.
var statusReasons = [...]string{
	100: "Continue", 101: "Switching Protocols", 103: "Early Hints",
	200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information", 204: "No Content",
	206: "Partial Content",
	301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
	307: "Temporary Redirect", 308: "Permanent Redirect",
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	406: "Not Acceptable", 408: "Request Timeout", 409: "Conflict", 410: "Gone", 411: "Length Required",
	412: "Precondition Failed", 413: "Content Too Large", 414: "URI Too Long",
	415: "Unsupported Media Type", 416: "Range Not Satisfiable", 422: "Unprocessable Content",
	429: "Too Many Requests", 431: "Request Header Fields Too Large",
	500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
	504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

var statusLines = buildStatusLines()

func buildStatusLines() (lines [len(statusReasons)]string) {
	for code, reason := range statusReasons {
		if reason != "" {
			lines[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + reason + "\r\n"
		}
	}
	return lines
}

// StatusReason returns the standard reason phrase for code, or "" when codec has none prebuilt.
func StatusReason(code int) string {
	if code >= 0 && code < len(statusReasons) {
		return statusReasons[code]
	}
	return ""
}

func appendStatusLine(dst []byte, status int, reason []byte) []byte {
	if status >= 0 && status < len(statusLines) && statusLines[status] != "" && string(reason) == statusReasons[status] {
		return append(dst, statusLines[status]...)
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = append(dst, byte('0'+status/100%10), byte('0'+status/10%10), byte('0'+status%10), ' ')
	dst = append(dst, reason...)
	return append(dst, "\r\n"...)
}

// appendEndToEnd appends every end-to-end header of hs: hop-by-hop ones are dropped, identical
// Content-Lengths become one, the client's X-Forwarded-* are dropped when dropForwarded (the proxy writes
// its own), and Transfer-Encoding and Trailer are dropped when omitTE.
func appendEndToEnd(dst []byte, hs []Header, contentLength int64, connOther, keepUpgrade, dropForwarded, omitTE, dropHost bool) []byte {
	clDone := false
	for i := range hs {
		name := hs[i].Name
		if dropHopByHop(hs, name, connOther, keepUpgrade) {
			continue
		}
		switch len(name) {
		case 4:
			if dropHost && equalFoldLower(name, "host") {
				continue // replaced by the absolute-form target's authority
			}
		case 7:
			if omitTE && equalFoldLower(name, "trailer") {
				continue // announces trailers that a de-chunked body cannot carry
			}
		case 14:
			if equalFoldLower(name, "content-length") {
				dst, clDone = appendContentLength(dst, contentLength, clDone)
				continue
			}
		case 15:
			if dropForwarded && equalFoldLower(name, "x-forwarded-for") {
				continue
			}
		case 16:
			if dropForwarded && equalFoldLower(name, "x-forwarded-host") {
				continue
			}
		case 17:
			if (dropForwarded && equalFoldLower(name, "x-forwarded-proto")) ||
				(omitTE && equalFoldLower(name, "transfer-encoding")) {
				continue
			}
		}
		dst = appendHeader(dst, name, hs[i].Value)
	}
	return dst
}

// AppendStoredResponse appends the head of a response as a cache keeps it: the status line and every
// end-to-end header, without the final "\r\n" and without the headers a cache writes itself — Date
// and Age (patched in when served), Transfer-Encoding and Content-Length (the stored body is de-chunked
// and its length known only at its end) and any X-Cache of the backend's. The caller appends those.
func AppendStoredResponse(dst []byte, r *Response) []byte {
	hs := r.Headers[:r.NumHeaders]
	dst = appendStatusLine(dst, r.Status, r.Reason)
	for i := range hs {
		name := hs[i].Name
		if dropHopByHop(hs, name, r.connOther, false) {
			continue
		}
		switch len(name) {
		case 3:
			if equalFoldLower(name, "age") {
				continue
			}
		case 4:
			if equalFoldLower(name, "date") {
				continue
			}
		case 7:
			if equalFoldLower(name, "x-cache") {
				continue
			}
		case 14:
			if equalFoldLower(name, "content-length") {
				continue
			}
		case 17:
			if equalFoldLower(name, "transfer-encoding") {
				continue
			}
		}
		dst = appendHeader(dst, name, hs[i].Value)
	}
	return dst
}
