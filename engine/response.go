// The response path: a backend's response head parsed and sent on (as it came or rebuilt), interim
// responses, and the body streamed to the client in its framing.

package engine

import (
	"switchflow/codec"

	"github.com/panjf2000/gnet/v2"
)

// backendTraffic parses the response head and streams the body to the client.
func (ls *loopState) backendTraffic(be *backendConn) gnet.Action {
	switch be.state {
	case bsIdle:
		// Traefik's rule: an idle pooled connection that receives unsolicited bytes is broken.
		be.lt.pools[be.group].Remove(be.srv.Index, be)
		be.state = bsClosing
		return gnet.Close
	case bsActive:
	case bsTunnel:
		cc := be.client
		if cc == nil {
			return gnet.None
		}
		ls.tunnelCopy(be.gc, cc.gc, cc)
		ls.holdTunnel(be.gc, cc.gc)
		ls.capTunnel(cc, be)
		return gnet.None
	default:
		_, _ = be.gc.Discard(-1)
		return gnet.None
	}
	cc := be.client
	if cc == nil {
		ls.closeBackend(be)
		return gnet.None
	}
	for {
		data, _ := be.gc.Peek(-1)
		if len(data) == 0 {
			return gnet.None
		}
		be.gotBytes = true
		var head []byte
		consumed := 0
		whole := data // the head's own bytes while asIs
		asIs := false
		if !be.headDone {
			resp := &ls.resp
			n, err := codec.ParseResponse(data, resp)
			if err == codec.ErrNeedMore {
				if len(data) > ls.s.largeHeaderBuffer {
					ls.backendBroken(be, "response head larger than large_header_buffer")
				}
				return gnet.None
			}
			if err != nil {
				ls.backendBroken(be, responseHeadProblem(err))
				return gnet.None
			}
			if n > ls.s.largeHeaderBuffer {
				// The same bound whether the head came in one read or in many (SPEC 3.4).
				ls.backendBroken(be, "response head larger than large_header_buffer")
				return gnet.None
			}
			if resp.Status < 200 {
				if resp.Status == 101 {
					if !cc.upgrade || !cc.reqDone {
						ls.backendBroken(be, "101 to a request that asked for no upgrade")
						return gnet.None
					}
					head := codec.AppendProxyResponse(ls.headBuf[:0], resp, cc.minor, false, false, true)
					ls.headBuf = head[:0]
					cc.write(head)
					discard(be.gc, n)
					ls.startTunnel(cc, be)
					return gnet.None
				}
				// Interim responses (100, 102, 103, ...) go to HTTP/1.1 clients with their headers and
				// to no HTTP/1.0 client (RFC 9110 15.2). A handful per request is what real servers send;
				// past that the backend is flooding a client that may not read, and has failed.
				be.interim++
				if be.interim > maxInterim {
					ls.backendBroken(be, "more than 8 interim responses to one request")
					return gnet.None
				}
				if cc.minor == 1 {
					head := codec.AppendProxyResponse(ls.headBuf[:0], resp, 1, true, false, false)
					ls.headBuf = head[:0]
					cc.write(head)
				}
				discard(be.gc, n)
				continue
			}
			be.headDone = true // response_timeout runs on from the request: OnTraffic re-arms it for a body that goes on
			be.body = resp.Body(cc.isHead && !cc.headAsGet)
			be.remaining = resp.ContentLength
			be.chunked.Reset()
			be.dechunk = be.body == codec.BodyChunked && cc.minor == 0
			// A response that has no body by its status or the request's method but declares one (a
			// 204 or 304 with a Content-Length, a HEAD answered with one) may be followed by body bytes
			// that arrive later, and would be read as the next request's response: such a connection
			// carries nothing more (SPEC 3.4).
			be.keepAlive = resp.KeepAlive() && be.body != codec.BodyUntilClose && cc.reqDone &&
				!(be.body == codec.BodyNone && declaresBody(resp))
			clientKeep := cc.keepAlive && cc.reqDone && !ls.s.draining.Load() &&
				be.body != codec.BodyUntilClose && !be.dechunk
			cc.closeAfterRes = !clientKeep
			if resp.Verbatim(cc.minor, clientKeep) && resp.Flags&codec.FlagHasDate != 0 && cc.cacheTag == "" {
				// Nothing to drop, merge or add: the head goes out as the backend wrote it, with the body
				// bytes that follow it in the same buffer, in one write and without a copy.
				head, asIs = data[:n], true
			} else {
				head = codec.AppendProxyResponse(ls.headBuf[:0], resp, cc.minor, clientKeep, be.dechunk, false)
				if resp.Flags&codec.FlagHasDate == 0 {
					// RFC 9110 6.6.1: a proxy with a clock adds the Date a backend left out.
					head = appendDate(head, ls.rs.date[:])
				}
				if cc.cacheTag != "" {
					head = appendXCache(head, cc.cacheTag)
				}
				ls.headBuf = head[:0]
			}
			if cc.cacheLeader {
				ls.startCapture(cc, be, resp)
			}
			cc.respStarted = true
			ls.noteResponse(cc, resp, len(head)) // status and sizes for the metrics and the access log
			consumed = n
			data = data[n:]
		}
		if be.dechunk {
			if head != nil {
				cc.write(head)
			}
			discard(be.gc, consumed)
			if ls.dechunkBody(be, cc) {
				ls.finishExchange(be, cc)
			} else if be.state == bsActive {
				ls.holdBackend(be, cc)
			}
			return gnet.None
		}
		// k body bytes are consumed; data[:pass] of them go to the client as they came, then ls.trailers
		// (a chunked body's trailer section without the fields that must not travel in trailers).
		k, pass, done := 0, 0, false
		ls.trailers = ls.trailers[:0]
		switch be.body {
		case codec.BodyNone:
			done = true
		case codec.BodyLength:
			k = len(data)
			if int64(k) > be.remaining {
				k = int(be.remaining)
			}
			be.remaining -= int64(k)
			done = be.remaining == 0
			pass = k
		case codec.BodyChunked:
			var err error
			k, pass, _, ls.trailers, done, err = be.chunked.Forward(data, ls.trailers)
			if err != nil {
				if head != nil {
					cc.respStarted = false
				}
				ls.backendBroken(be, "malformed chunked response body")
				return gnet.None
			}
		case codec.BodyUntilClose:
			k = len(data)
			pass = k
			cc.bodySent += int64(k) // noteProgress cannot tell these from what is left
		}
		if cc.headAsGet {
			// A HEAD whose GET fills the cache: the client gets the head, the body goes to the capture.
			if head != nil {
				cc.write(head)
			}
		} else {
			out := ls.iov[:0]
			if asIs {
				out = append(out, whole[:consumed+pass]) // the head and the body behind it, as they came
			} else {
				if head != nil {
					out = append(out, head)
				}
				if pass > 0 {
					out = append(out, data[:pass])
				}
			}
			if len(ls.trailers) > 0 {
				out = append(out, ls.trailers)
			}
			ls.toClient(cc, out)
		}
		if cc.capture != nil && k > 0 {
			cc.capture.Write(data[:k])
		}
		discard(be.gc, consumed+k)
		if done {
			ls.finishExchange(be, cc)
			return gnet.None
		}
		if ls.trySplice(be, cc) || ls.holdBackend(be, cc) || k == 0 {
			return gnet.None
		}
	}
}

// dechunkBody forwards the payload of a chunked response without its framing (for HTTP/1.0 clients, who
// then see the end of the body as the close). It reports whether the body is complete.
func (ls *loopState) dechunkBody(be *backendConn, cc *clientConn) bool {
	for {
		data, _ := be.gc.Peek(-1)
		if len(data) == 0 {
			return false
		}
		n, piece, done, err := be.chunked.Next(data)
		if err != nil {
			ls.backendBroken(be, "malformed chunked response body")
			return false
		}
		if len(piece) > 0 {
			cc.write(piece)
		}
		discard(be.gc, n)
		if done {
			return true
		}
		if n == 0 {
			return false
		}
	}
}

// maxInterim is the most interim (1xx) responses relayed for one request before the backend is taken
// to be flooding: each one costs the client's queue bytes that no final response bounds.
const maxInterim = 8

// declaresBody reports whether a response head announces a body (a Content-Length other than 0, or a
// Transfer-Encoding).
func declaresBody(resp *codec.Response) bool {
	return resp.Flags&codec.FlagTransferEncoding != 0 ||
		(resp.Flags&codec.FlagContentLength != 0 && resp.ContentLength != 0)
}
