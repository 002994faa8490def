// The request body: checked where it arrived with its head, then streamed to the backend behind the head
// as it comes (forwardBody), held back by the flow control of flow.go when the backend reads slowly.

package engine

import "switchflow/codec"

// precheckChunked validates the chunked framing of every body byte already received, before the head goes
// to a backend: a bad chunk size or an oversized body that arrived with the head is answered here, so the
// backend never sees any part of that request (SPEC 3.2). Bytes that arrive later are checked as they
// stream; an error there aborts the half-sent request by closing the backend connection, so the backend
// still never sees a complete request.
func (ls *loopState) precheckChunked(cc *clientConn, max int64) int {
	var d codec.ChunkedReader
	var seen int64
	for i, src := range [2][]byte{cc.buf()[cc.pos:cc.filled], nil} {
		if i == 1 {
			src, _ = cc.gc.Peek(-1)
		}
		_, payload, done, err := scanChunked(&d, src)
		seen += payload
		switch {
		case err != nil:
			return 400
		case max > 0 && seen > max:
			return 413
		case done:
			return 0
		}
	}
	return 0
}

// scanChunked runs d over buf as far as the body goes, reporting the bytes consumed (framing included) and
// the payload bytes among them.
func scanChunked(d *codec.ChunkedReader, buf []byte) (consumed int, payload int64, done bool, err error) {
	for consumed < len(buf) {
		n, data, fin, err := d.Next(buf[consumed:])
		consumed += n
		payload += int64(len(data))
		if err != nil || fin {
			return consumed, payload, fin, err
		}
		if n == 0 {
			break
		}
	}
	return consumed, payload, false, nil
}

// forwardBody streams request body bytes to the backend: those already in the slab, then those in gnet's
// buffer, each cut where the body ends, in one write; head, when not nil, goes first in the same write (the
// start of an exchange). A chunked body's trailer section goes without the fields that must not travel in
// trailers (codec.ChunkedReader.Forward): its kept lines are copied into ls.trailers and written last. One
// write instead of one per piece: a small upload reaches the backend in one segment with its head, a large
// one no longer goes out in slab-sized and buffer-sized parts. It reports false when the request ended
// here (a bad body) or the write failed: then nothing was consumed, and the backend's close, which follows
// this callback (patch 14), may retry the request from the slab. Loop only.
func (ls *loopState) forwardBody(cc *clientConn, head []byte) bool {
	be := cc.be
	out := ls.iov[:0]
	if head != nil {
		out = append(out, head)
	}
	ls.trailers = ls.trailers[:0]
	fromSlab, fromConn := 0, 0
	for i := 0; i < 2 && !cc.reqDone; i++ {
		var src []byte
		if i == 0 {
			src = cc.buf()[cc.pos:cc.filled]
		} else {
			src, _ = cc.gc.Peek(-1)
		}
		if len(src) == 0 {
			continue
		}
		var n, pass int // consumed, and forwarded as it came (the rest of n: trailers, in ls.trailers)
		switch cc.reqBody {
		case codec.BodyLength:
			n = len(src)
			if int64(n) > cc.reqRemaining {
				n = int(cc.reqRemaining)
			}
			cc.reqRemaining -= int64(n)
			cc.reqDone = cc.reqRemaining == 0
			pass = n
		case codec.BodyChunked:
			var payload int64
			var done bool
			var err error
			n, pass, payload, ls.trailers, done, err = cc.chunked.Forward(src, ls.trailers)
			if err != nil {
				clear(ls.iov[:])
				ls.abortRequest(cc, 400)
				return false
			}
			cc.reqDone = done
			cc.reqSeen += payload
			if max := cc.lt.tbl.maxBodySize; max > 0 && cc.reqSeen > max {
				clear(ls.iov[:])
				ls.abortRequest(cc, 413)
				return false
			}
		default:
			cc.reqDone = true
		}
		if pass > 0 {
			out = append(out, src[:pass])
		}
		if i == 0 {
			fromSlab = n
			if n < len(src) {
				break // the body ended in the slab (what follows is the next request)
			}
		} else {
			fromConn = n
		}
	}
	if len(ls.trailers) > 0 {
		// The slab's trailer bytes, then gnet's: a trailer line split between them was put together.
		out = append(out, ls.trailers)
	}
	if ls.send(be.gc, out) != nil {
		return false
	}
	cc.pos += fromSlab
	if fromConn > 0 {
		cc.bodyFromConn = true
		discard(cc.gc, fromConn)
		ls.st.bytesIn.Add(uint64(fromConn))
	}
	// A body that stops coming must not hold the client's slot and a backend connection forever
	// (nginx: client_body_timeout, 408): idle_timeout runs from the last bytes forwarded.
	ls.armClient(cc)
	if cc.reqDone {
		ls.requestSent(be)
	}
	return true
}
