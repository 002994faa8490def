package codec

import (
	"bytes"
	"testing"
)

// sameRequestViews fails unless b holds the views a holds, at the same addresses: what Restore must give
// back is the parse itself, not bytes that compare equal.
func sameRequestViews(t *testing.T, a, b *Request) {
	t.Helper()
	sameView(t, "method", a.Method, b.Method)
	sameView(t, "target", a.Target, b.Target)
	sameView(t, "host", a.Host, b.Host)
	if a.NumHeaders != b.NumHeaders {
		t.Fatalf("headers: %d, restored %d", a.NumHeaders, b.NumHeaders)
	}
	for i := 0; i < a.NumHeaders; i++ {
		sameView(t, "header name", a.Headers[i].Name, b.Headers[i].Name)
		sameView(t, "header value", a.Headers[i].Value, b.Headers[i].Value)
	}
	if a.Minor != b.Minor || a.Flags != b.Flags || a.ContentLength != b.ContentLength || a.connOther != b.connOther {
		t.Fatalf("facts: %d %#x %d %v, restored %d %#x %d %v", a.Minor, a.Flags, a.ContentLength, a.connOther,
			b.Minor, b.Flags, b.ContentLength, b.connOther)
	}
}

func sameView(t *testing.T, what string, a, b []byte) {
	t.Helper()
	if (a == nil) != (b == nil) || !bytes.Equal(a, b) || cap(a) != cap(b) {
		t.Fatalf("%s: %q (nil %v), restored %q (nil %v)", what, a, a == nil, b, b == nil)
	}
}

func TestHeadIndexRestoresTheParse(t *testing.T) {
	heads := []string{
		"POST /up?x=1 HTTP/1.1|Host: a.example|Content-Length: 5|Connection: keep-alive, X-Hop|X-Hop: 1|X-Empty:||hello",
		"GET http://b.example:8080/p HTTP/1.1|Host: ignored|Transfer-Encoding: chunked||",
		"||GET / HTTP/1.0|User-Agent: old||", // no Host: the nil view must stay nil
		"GET /ws HTTP/1.1|Host: c|Upgrade: websocket|Connection: Upgrade||",
	}
	for _, h := range heads {
		slab := make([]byte, 512) // as a connection's slab: the head at its start, room behind it
		n := copy(slab, crlf(h))
		r := NewRequest(16)
		if _, err := ParseRequest(slab[:n], r); err != nil {
			t.Fatalf("%q: %v", h, err)
		}
		want := AppendProxyRequest(nil, r, r.Target, []byte("192.0.2.1"), []byte("http"), []byte("be:80"), true)
		var x HeadIndex
		x.Keep(r, slab)
		clobber := NewRequest(16)
		if _, err := ParseRequest([]byte(crlf("PUT /other HTTP/1.1|Host: z|Content-Length: 9|A: b|C: d||")), clobber); err != nil {
			t.Fatal(err)
		}
		if !x.Restore(clobber, slab) {
			t.Fatalf("%q: Restore refused", h)
		}
		sameRequestViews(t, r, clobber)
		if got := AppendProxyRequest(nil, clobber, clobber.Target, []byte("192.0.2.1"), []byte("http"), []byte("be:80"), true); !bytes.Equal(got, want) {
			t.Fatalf("%q forwards as\n%q\nafter Restore, as\n%q after the parse", h, got, want)
		}
		// The same bytes at the same offsets in another buffer (a slab moved to a larger one) serve too.
		moved := make([]byte, 1024)
		copy(moved, slab)
		if !x.Restore(clobber, moved) || &clobber.Target[0] != &moved[x.target.off] || !bytes.Equal(clobber.Target, r.Target) {
			t.Fatalf("%q: Restore into a copy of the slab", h)
		}
	}
}

func TestHeadIndexRefusesWhatDoesNotFit(t *testing.T) {
	slab := make([]byte, 256)
	n := copy(slab, crlf("GET /a HTTP/1.1|Host: a|B: 1|C: 2||"))
	r := NewRequest(8)
	if _, err := ParseRequest(slab[:n], r); err != nil {
		t.Fatal(err)
	}
	var x HeadIndex
	x.Keep(r, slab)
	if x.Restore(NewRequest(2), slab) {
		t.Fatal("restored 3 header lines into an index of 2")
	}
	if x.Restore(NewRequest(8), slab[:n-10]) {
		t.Fatal("restored views past the end of the buffer")
	}
	if !x.Restore(NewRequest(3), slab[:n]) {
		t.Fatal("refused a buffer holding the whole head and an index of exactly its lines")
	}
}
