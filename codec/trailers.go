package codec

// Trailer fields a proxy does not pass on. RFC 9110 6.5.1: fields that describe message framing,
// routing, authentication, request modifiers, response controls or the content's format are needed
// before the content arrives and must not be sent in trailers; a recipient that merges trailers into
// the header section (RFC 9110 6.5.2 lets it, for fields whose definition allows) would otherwise take
// a "Content-Length", "Transfer-Encoding" or "Host" that no framing or routing decision of ours saw.
// The list is net/http's (its badTrailer: the fields it refuses to declare as trailers), plus the
// hop-by-hop fields it lacks (Upgrade, HTTP2-Settings):
//
//	framing       Content-Length, Transfer-Encoding, Trailer
//	routing       Host
//	hop-by-hop    Connection, Keep-Alive, Proxy-Connection, TE, Upgrade, HTTP2-Settings
//	modifiers     Cache-Control, Expect, Max-Forwards, Pragma, Range
//	auth          Authorization, Proxy-Authorization, Proxy-Authenticate, WWW-Authenticate, Realm
//	content       Content-Encoding, Content-Range, Content-Type
//
// Every other trailer field is forwarded as it came.
func forbiddenTrailer(name []byte) bool {
	if len(name) > maxForbiddenName {
		return false
	}
	var buf [maxForbiddenName]byte
	lower := buf[:len(name)]
	for i, c := range name {
		lower[i] = lowerTable[c]
	}
	switch string(lower) { // the compiler compares in place: no allocation
	case "content-length", "transfer-encoding", "trailer",
		"host",
		"connection", "keep-alive", "proxy-connection", "te", "upgrade", "http2-settings",
		"cache-control", "expect", "max-forwards", "pragma", "range",
		"authorization", "proxy-authorization", "proxy-authenticate", "www-authenticate", "realm",
		"content-encoding", "content-range", "content-type":
		return true
	}
	return false
}

// maxForbiddenName is the length of the longest name forbiddenTrailer knows ("proxy-authorization"):
// a name longer than that is decided (kept) without waiting for its colon.
const maxForbiddenName = 19

// trailerFilter follows the trailer lines that ChunkedReader.Next has validated, to tell the bytes
// to keep from those to drop. A line's fate is known once its name is (at the colon, or as soon as
// it is longer than any forbidden name); until then its name is held here, as sent, so that a
// name split across reads needs nothing of the caller's buffers.
type trailerFilter struct {
	pos     uint8 // tfLineStart ...
	nameLen uint8
	name    [maxForbiddenName]byte // the name so far, while tfName
	dropped int                    // trailer bytes dropped, for Dropped
}

const (
	tfLineStart uint8 = iota // the next byte starts a trailer line or the final CRLF
	tfName                   // inside a name, undecided
	tfKeep                   // the rest of a kept line, up to its LF
	tfDrop                   // the rest of a dropped line, up to its LF
	tfFinal                  // the LF of the final CRLF
)

// run appends to kept the bytes of b (validated trailer bytes, following on from the previous call's)
// that are to be forwarded, the held name of a line that turns out kept included.
func (f *trailerFilter) run(b, kept []byte) []byte {
	for i := 0; i < len(b); {
		switch f.pos {
		case tfLineStart:
			if b[i] == '\r' {
				kept = append(kept, '\r')
				f.pos = tfFinal
				i++
				continue
			}
			f.pos, f.nameLen = tfName, 0
		case tfName:
			c := b[i]
			if c == ':' {
				if forbiddenTrailer(f.name[:f.nameLen]) {
					f.pos = tfDrop
					f.dropped += int(f.nameLen)
					continue // the colon is dropped with the rest of the line
				}
				kept = append(kept, f.name[:f.nameLen]...)
				f.pos = tfKeep
				continue
			}
			if int(f.nameLen) == len(f.name) {
				// Longer than every forbidden name: kept.
				kept = append(kept, f.name[:f.nameLen]...)
				f.pos = tfKeep
				continue
			}
			f.name[f.nameLen] = c
			f.nameLen++
			i++
		case tfKeep, tfDrop:
			j := i
			for j < len(b) && b[j] != '\n' {
				j++
			}
			if j < len(b) {
				j++ // the LF ends the line
			}
			if f.pos == tfKeep {
				kept = append(kept, b[i:j]...)
			} else {
				f.dropped += j - i
			}
			if b[j-1] == '\n' {
				f.pos = tfLineStart
			}
			i = j
		case tfFinal:
			kept = append(kept, b[i]) // the final LF; Next stopped after it
			i++
		}
	}
	return kept
}

// Forward is Skip for a proxy that passes a chunked body on with its framing but without the trailer
// fields that forbiddenTrailer names. It consumes what Skip would (consumed) and splits it in two:
// buf[:pass], everything up to and including the last chunk's size line, goes on as it came — the
// chunk data is never copied or looked at twice — and what remains, buf[pass:consumed], is trailer
// section, of which the bytes to keep are appended to kept (the caller's scratch: Forward allocates
// only if kept lacks the capacity). What the caller writes, buf[:pass] then kept, is a valid chunked
// body however the input is split: a trailer line's name split across calls is held in d until its fate
// is known. kept takes at most MaxTrailerBytes per body. payload counts the chunk data bytes among the
// consumed ones. done and err are Skip's; on err nothing of buf need be forwarded.
func (d *ChunkedReader) Forward(buf, kept []byte) (consumed, pass int, payload int64, keptOut []byte, done bool, err error) {
	for consumed < len(buf) {
		inTrailers := d.state >= StateTrailerStart
		before := d.off
		n, data, fin, e := d.Next(buf[consumed:])
		payload += int64(len(data))
		switch {
		case e != nil:
			return consumed + n, pass, payload, kept, false, e
		case inTrailers:
			kept = d.filter.run(buf[consumed:consumed+n], kept)
		case d.state >= StateTrailerStart:
			// The last chunk's size line ended in this piece: the trailer section starts at trailerAt.
			pass = consumed + (d.trailerAt - before)
			kept = d.filter.run(buf[pass:consumed+n], kept)
		default:
			pass = consumed + n
		}
		consumed += n
		if fin {
			return consumed, pass, payload, kept, true, nil
		}
		if n == 0 {
			break
		}
	}
	return consumed, pass, payload, kept, false, nil
}

// Dropped reports the trailer bytes Forward has left out so far.
func (d *ChunkedReader) Dropped() int64 { return int64(d.filter.dropped) }
