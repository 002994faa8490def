package cache

import (
	"strconv"
	"sync/atomic"

	"switchflow/codec"
)

// entryOverhead is what an Entry costs beyond its bytes and key, counted against max_size.
const entryOverhead = 256

// Entry is one stored response. Head and Body never change once built, so every loop may read them
// without a lock.
type Entry struct {
	Key    string
	Status int
	// Head is the status line and headers, Content-Length included, without Date, Age, X-Cache,
	// Connection and the final "\r\n" (see AppendServeHeaders).
	Head []byte
	Body []byte

	stored  int64 // when it was stored (ns)
	expires int64 // when it stops being fresh (ns)
	age     int64 // the Age it had when stored, in seconds
	size    int64

	ref     atomic.Bool // hit since the store last looked (CLOCK's reference bit)
	evicted atomic.Bool

	prev, next *Entry // Store's LRU list; Store.mu only
}

// Fresh reports whether e may still be served at now.
func (e *Entry) Fresh(now int64) bool { return now < e.expires && !e.evicted.Load() }

// Size is what e counts against max_size.
func (e *Entry) Size() int64 { return e.size }

// Age returns the Age header's value at now: the age the response had when stored plus its time here.
func (e *Entry) Age(now int64) int64 {
	d := now - e.stored
	if d < 0 {
		d = 0
	}
	return e.age + d/1e9
}

// AppendServeHeaders appends the per-response part of a hit's head after e.Head: Date (29 bytes the
// caller keeps current), Age, "X-Cache: HIT", the Connection header the client needs (as
// codec.AppendProxyResponse writes it) and the final "\r\n". It allocates only if dst is too small.
func (e *Entry) AppendServeHeaders(dst, date []byte, now int64, clientMinor uint8, keepAlive bool) []byte {
	dst = append(dst, "Date: "...)
	dst = append(dst, date...)
	dst = append(dst, "\r\nAge: "...)
	dst = strconv.AppendInt(dst, e.Age(now), 10)
	dst = append(dst, "\r\nX-Cache: HIT\r\n"...)
	switch {
	case !keepAlive:
		dst = append(dst, "Connection: close\r\n"...)
	case clientMinor == 0:
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// Builder collects a response as the proxy forwards it. Write takes body bytes as they come off the
// wire; a chunked body is de-chunked as it goes. A body over the limit, or bad framing, spoils the
// builder and Finish returns nil.
type Builder struct {
	key      string
	status   int
	head     []byte
	body     []byte
	limit    int
	chunked  bool
	dec      codec.ChunkedReader
	ttl      int64
	age      int64
	failed   bool
	finished bool
}

// NewBuilder starts an entry for key from a parsed response head that ResponseTTL allowed to be kept
// for keep (ns) with age seconds already on it. sizeHint is the body length when known (else -1);
// limit is the largest body it will hold.
func NewBuilder(key string, r *codec.Response, keep, age int64, limit int) *Builder {
	b := &Builder{key: key, status: r.Status, ttl: keep, age: age, limit: limit}
	b.head = codec.AppendStoredResponse(make([]byte, 0, 512), r)
	b.chunked = r.Flags&codec.FlagChunked != 0
	if n := r.ContentLength; n > int64(limit) {
		b.failed = true
	} else if n > 0 {
		b.body = make([]byte, 0, n)
	}
	return b
}

// Write adds body bytes, in their wire framing.
func (b *Builder) Write(p []byte) {
	if b.failed {
		return
	}
	if !b.chunked {
		b.add(p)
		return
	}
	for len(p) > 0 && !b.failed {
		n, piece, done, err := b.dec.Next(p)
		if err != nil {
			b.failed = true
			return
		}
		b.add(piece)
		p = p[n:]
		if done {
			b.finished = true
			return
		}
		if n == 0 {
			return
		}
	}
}

func (b *Builder) add(p []byte) {
	if len(b.body)+len(p) > b.limit {
		b.failed, b.body = true, nil
		return
	}
	b.body = append(b.body, p...)
}

// Finish returns the entry, or nil when the builder was spoiled or a chunked body did not end.
func (b *Builder) Finish(now int64) *Entry {
	if b.failed || (b.chunked && !b.finished) {
		return nil
	}
	head := make([]byte, 0, len(b.head)+40)
	head = append(head, b.head...)
	head = append(head, "Content-Length: "...)
	head = strconv.AppendInt(head, int64(len(b.body)), 10)
	head = append(head, "\r\n"...)
	body := b.body
	if cap(body) > len(body) {
		body = append([]byte(nil), body...) // do not keep the slack of a grown buffer against max_size
	}
	e := &Entry{
		Key: b.key, Status: b.status, Head: head, Body: body,
		stored: now, expires: now + b.ttl, age: b.age,
	}
	e.size = int64(len(head)+len(body)+len(b.key)) + entryOverhead
	return e
}
