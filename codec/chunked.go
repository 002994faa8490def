package codec

import "math"

// MaxChunkLineBytes bounds one chunk-size line (size plus extensions) and one trailer line. The reader
// buffers nothing, but without a bound a peer could stream extensions forever and never send data.
const MaxChunkLineBytes = 8192

// MaxTrailerBytes bounds the whole trailer section: every trailer line and the final CRLF, counted
// from the byte after the last chunk's size line. Without it a peer could send trailer lines forever
// after the last chunk, each one within MaxChunkLineBytes. It is the default header_buffer, the bound
// of a request head; a longer trailer section is a SyntaxError in a trailer state.
const MaxTrailerBytes = 8192

// ChunkedReader is a streaming state machine for a chunked body (RFC 9112 7.1). The body may arrive in
// any number of pieces, with chunk-size lines and CRLFs split anywhere; the reader keeps its place in
// its own state, so unlike the head parsers it never rescans. It accepts chunk extensions (BWS before
// ";" only), the last chunk, and trailer lines validated like header lines, up to the final CRLF.
//
// The zero value is ready. Reset it before reusing it for another body. Loop only: not safe for
// concurrent use.
type ChunkedReader struct {
	state     State
	failed    bool
	remaining int64 // data bytes left in the current chunk, or the size being accumulated
	lineLen   int   // bytes so far in the current size or trailer line
	off       int   // body bytes consumed before the current call, for error offsets
	synErr    SyntaxError

	// The trailer section: where it began (a body offset), its length so far, and Forward's filter.
	trailerAt  int
	trailerLen int
	filter     trailerFilter
}

// Reset makes d ready for a new body.
func (d *ChunkedReader) Reset() { *d = ChunkedReader{} }

// Consumed reports the bytes of the body consumed so far, framing included.
func (d *ChunkedReader) Consumed() int64 { return int64(d.off) }

// Done reports whether the final CRLF has been consumed.
func (d *ChunkedReader) Done() bool { return d.state == StateBodyDone }

// Next consumes bytes from the front of buf: framing plus at most one run of chunk data, which it
// returns as data, a view into buf[:consumed] valid as long as buf is. done is true once the final CRLF
// after the trailers is consumed; bytes after it are not consumed. err is a *SyntaxError (bad chunk
// size, overflow, junk after data, bare LF or CR, bad trailer, line over MaxChunkLineBytes) embedded in
// d; after an error every call returns it again. consumed == len(buf) or done or err is always true
// when Next returns without data, so a caller that gets consumed < len(buf) and data != nil calls again.
func (d *ChunkedReader) Next(buf []byte) (consumed int, data []byte, done bool, err error) {
	if d.failed {
		return 0, nil, false, &d.synErr
	}
	if d.state == StateBodyDone {
		return 0, nil, true, nil
	}
	if d.state < StateChunkSize {
		d.state = StateChunkSize
	}
	i := 0
	for i < len(buf) {
		c := buf[i]
		switch d.state {
		case StateChunkData:
			n := len(buf) - i
			if int64(n) > d.remaining {
				n = int(d.remaining)
			}
			data = buf[i : i+n]
			d.remaining -= int64(n)
			if d.remaining == 0 {
				d.state = StateChunkDataCR
			}
			i += n
			d.off += i
			return i, data, false, nil

		case StateChunkSize:
			v := hexValue[c]
			if v == 0xff {
				return d.fail(i)
			}
			d.remaining = int64(v)
			d.lineLen = 1
			d.state = StateChunkSizeDigits

		case StateChunkSizeDigits:
			if v := hexValue[c]; v != 0xff {
				if d.remaining > (math.MaxInt64-int64(v))>>4 {
					return d.fail(i) // chunk size overflows int63
				}
				d.remaining = d.remaining<<4 | int64(v)
			} else {
				switch c {
				case '\r':
					d.state = StateChunkSizeLF
				case ';':
					d.state = StateChunkExt
				case ' ', '\t':
					d.state = StateChunkSizeWS
				default:
					return d.fail(i)
				}
			}
			if d.lineLen++; d.lineLen > MaxChunkLineBytes {
				return d.fail(i)
			}

		case StateChunkSizeWS:
			switch c {
			case ';':
				d.state = StateChunkExt
			case ' ', '\t':
			default:
				// "5 \r\n" or "5 x": whitespace may only precede an extension.
				return d.fail(i)
			}
			if d.lineLen++; d.lineLen > MaxChunkLineBytes {
				return d.fail(i)
			}

		case StateChunkExt:
			if c == '\r' {
				d.state = StateChunkSizeLF
			} else if byteClass[c]&clsValue == 0 {
				return d.fail(i)
			}
			if d.lineLen++; d.lineLen > MaxChunkLineBytes {
				return d.fail(i)
			}

		case StateChunkSizeLF:
			if c != '\n' {
				return d.fail(i)
			}
			if d.remaining == 0 {
				d.state = StateTrailerStart
				d.trailerAt = d.off + i + 1
			} else {
				d.state = StateChunkData
			}
			d.lineLen = 0

		case StateChunkDataCR:
			if c != '\r' {
				// Data longer than its declared size: the classic chunk-size smuggling payload.
				return d.fail(i)
			}
			d.state = StateChunkDataLF

		case StateChunkDataLF:
			if c != '\n' {
				return d.fail(i)
			}
			d.state = StateChunkSize

		case StateTrailerStart:
			if d.trailerLen++; d.trailerLen > MaxTrailerBytes {
				return d.fail(i)
			}
			switch {
			case c == '\r':
				d.state = StateFinalLF
			case byteClass[c]&clsToken != 0:
				d.state = StateTrailerName
				d.lineLen = 1
			default:
				return d.fail(i) // obs-fold, bare LF, empty name
			}

		case StateTrailerName:
			if d.trailerLen++; d.trailerLen > MaxTrailerBytes {
				return d.fail(i)
			}
			if c == ':' {
				d.state = StateTrailerValue
			} else if byteClass[c]&clsToken == 0 {
				return d.fail(i) // includes whitespace before the colon
			}
			if d.lineLen++; d.lineLen > MaxChunkLineBytes {
				return d.fail(i)
			}

		case StateTrailerValue:
			if d.trailerLen++; d.trailerLen > MaxTrailerBytes {
				return d.fail(i)
			}
			if c == '\r' {
				d.state = StateTrailerLF
			} else if byteClass[c]&clsValue == 0 {
				return d.fail(i)
			}
			if d.lineLen++; d.lineLen > MaxChunkLineBytes {
				return d.fail(i)
			}

		case StateTrailerLF:
			if d.trailerLen++; d.trailerLen > MaxTrailerBytes {
				return d.fail(i)
			}
			if c != '\n' {
				return d.fail(i)
			}
			d.state = StateTrailerStart
			d.lineLen = 0

		case StateFinalLF:
			if d.trailerLen++; d.trailerLen > MaxTrailerBytes {
				return d.fail(i)
			}
			if c != '\n' {
				return d.fail(i)
			}
			d.state = StateBodyDone
			i++
			d.off += i
			return i, nil, true, nil
		}
		i++
	}
	d.off += i
	return i, nil, false, nil
}

// fail records a SyntaxError at buf[i] in the current state and makes it sticky. The bytes before i are
// reported as consumed so that offsets agree however the input was split.
func (d *ChunkedReader) fail(i int) (int, []byte, bool, error) {
	d.synErr.Offset = d.off + i
	d.synErr.State = d.state
	d.failed = true
	d.off += i
	return i, nil, false, &d.synErr
}

// Skip is Next in a loop: it consumes as much of buf as belongs to the body, for pass-through
// forwarding of the framing as received. consumed < len(buf) only when done or err.
func (d *ChunkedReader) Skip(buf []byte) (consumed int, done bool, err error) {
	for {
		n, _, done, err := d.Next(buf[consumed:])
		consumed += n
		if done || err != nil || consumed == len(buf) {
			return consumed, done, err
		}
	}
}
