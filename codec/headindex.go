package codec

// HeadIndex is a parsed request head kept as offsets into the buffer it was parsed from: what a Request
// holds (method, target, Host, the header index, the message facts), without the views. A request that
// outlives the callback that parsed it (one that waits for a backend connection to be dialed or freed,
// or for another request's cache fill) keeps its head this way next to the bytes, so that later steps
// get their Request back by Restore, a copy of offsets, instead of parsing and validating the head
// again. Its header storage is reused by the next Keep. Not safe for concurrent use.
type HeadIndex struct {
	method, target, host span
	minor                uint8
	connOther            bool
	flags                uint32
	contentLength        int64
	headers              []headerSpan
}

// span is a view as an offset and a length into the parsed buffer; n < 0 stands for a nil view.
type span struct{ off, n int32 }

type headerSpan struct{ name, value span }

// Keep records r, which ParseRequest filled from buf (or from a prefix of it: the same backing array, the
// same start), as offsets into buf. The views' offsets are what buf's capacity has beyond theirs: every
// view ParseRequest stores is a plain slice of its buffer, which runs to the end of buf's capacity.
func (x *HeadIndex) Keep(r *Request, buf []byte) {
	base := cap(buf)
	x.method = spanOf(r.Method, base)
	x.target = spanOf(r.Target, base)
	x.host = spanOf(r.Host, base)
	x.minor, x.connOther, x.flags, x.contentLength = r.Minor, r.connOther, r.Flags, r.ContentLength
	hs := r.Headers[:r.NumHeaders]
	if cap(x.headers) < len(hs) {
		x.headers = make([]headerSpan, len(hs))
	}
	x.headers = x.headers[:len(hs)]
	for i := range hs {
		x.headers[i] = headerSpan{spanOf(hs[i].Name, base), spanOf(hs[i].Value, base)}
	}
}

// Restore makes r what ParseRequest left it when x was kept, its views into buf, which must hold the
// same bytes at the same offsets as the buffer given to Keep. It reports false, leaving r unusable,
// when r's header index is shorter than the head's header count or an offset falls outside buf: a
// caller's mistake, never one of the client's bytes.
func (x *HeadIndex) Restore(r *Request, buf []byte) bool {
	if len(x.headers) > len(r.Headers) {
		return false
	}
	var ok bool
	if r.Method, ok = x.method.view(buf); !ok {
		return false
	}
	if r.Target, ok = x.target.view(buf); !ok {
		return false
	}
	if r.Host, ok = x.host.view(buf); !ok {
		return false
	}
	for i := range x.headers {
		h := &r.Headers[i]
		if h.Name, ok = x.headers[i].name.view(buf); !ok {
			return false
		}
		if h.Value, ok = x.headers[i].value.view(buf); !ok {
			return false
		}
	}
	r.NumHeaders = len(x.headers)
	r.Minor, r.connOther, r.Flags, r.ContentLength = x.minor, x.connOther, x.flags, x.contentLength
	return true
}

func spanOf(v []byte, base int) span {
	if v == nil {
		return span{0, -1}
	}
	return span{int32(base - cap(v)), int32(len(v))}
}

func (s span) view(buf []byte) ([]byte, bool) {
	if s.n < 0 {
		return nil, true
	}
	end := int(s.off) + int(s.n)
	if s.off < 0 || end > len(buf) {
		return nil, false
	}
	return buf[s.off:end], true
}
