package codec

import (
	"bytes"
	"testing"
)

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nConnection: x-a, close\r\nX-A: 1\r\n\r\n",
	"GET http://h:1/x HTTP/1.0\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		var r Request
		n, err := ParseRequest(buf, &r)
		if n < 0 || n > len(buf) {
			t.Fatalf("n = %d, len = %d", n, len(buf))
		}
		if err != nil {
			if n != 0 {
				t.Fatalf("n = %d with error %v", n, err)
			}
			if se, ok := err.(*SyntaxError); ok && (se.Offset < 0 || se.Offset > len(buf)) {
				t.Fatalf("offset %d outside buffer of %d", se.Offset, len(buf))
			}
			return
		}
		if n < 4 || string(buf[n-4:n]) != "\r\n\r\n" {
			t.Fatalf("head does not end in CRLFCRLF: n = %d", n)
		}
		// The head alone parses the same; one byte less asks for more.
		var r2 Request
		if n2, err2 := ParseRequest(buf[:n], &r2); n2 != n || err2 != nil {
			t.Fatalf("head alone: %d %v", n2, err2)
		}
		if _, err2 := ParseRequest(buf[:n-1], &r2); err2 != ErrNeedMore {
			t.Fatalf("head minus one byte: %v", err2)
		}
		// What we forward parses again, with the same framing and host.
		out := AppendProxyRequest(nil, &r, r.Target, []byte("192.0.2.1"), []byte("https"), []byte("backend:80"), false)
		// The head kept as offsets comes back as the very views the parse made, and forwards the same.
		var x HeadIndex
		x.Keep(&r, buf)
		r3 := NewRequest(r.NumHeaders + 1)
		if !x.Restore(r3, buf) {
			t.Fatal("Restore refused what Keep recorded")
		}
		sameRequestViews(t, &r, r3)
		if again := AppendProxyRequest(nil, r3, r3.Target, []byte("192.0.2.1"), []byte("https"), []byte("backend:80"), false); !bytes.Equal(again, out) {
			t.Fatalf("restored head forwards differently:\n%q\n%q", out, again)
		}
		var fw Request
		_, err2 := ParseRequest(out, &fw)
		if err2 == ErrTooManyHeaders && r.NumHeaders > MaxHeaders-4 {
			return // the added Host and X-Forwarded-* headers pushed a full head over our own limit
		}
		if err2 != nil {
			t.Fatalf("forwarded head does not parse: %v\n%q", err2, out)
		}
		if fw.Body() != r.Body() || fw.ContentLength != r.ContentLength || fw.Flags&FlagChunked != r.Flags&FlagChunked {
			t.Fatalf("framing changed: %v/%d -> %v/%d", r.Body(), r.ContentLength, fw.Body(), fw.ContentLength)
		}
		if r.Flags&FlagHasHost != 0 && !bytes.Equal(fw.Host, r.Host) {
			t.Fatalf("host changed: %q -> %q", r.Host, fw.Host)
		}
	})
}

var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n",
	"HTTP/1.0 404 Not Found\r\nConnection: keep-alive, X-B\r\nX-B: 1\r\n\r\n",
	"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
	"HTTP/1.1 204\r\n\r\n",
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		var r Response
		n, err := ParseResponse(buf, &r)
		if n < 0 || n > len(buf) {
			t.Fatalf("n = %d, len = %d", n, len(buf))
		}
		if err != nil {
			if n != 0 {
				t.Fatalf("n = %d with error %v", n, err)
			}
			return
		}
		if n < 4 || string(buf[n-4:n]) != "\r\n\r\n" {
			t.Fatalf("head does not end in CRLFCRLF: n = %d", n)
		}
		var r2 Response
		if _, err2 := ParseResponse(buf[:n-1], &r2); err2 != ErrNeedMore {
			t.Fatalf("head minus one byte: %v", err2)
		}
		out := AppendProxyResponse(nil, &r, 1, true, false, false)
		var fw Response
		_, err2 := ParseResponse(out, &fw)
		if err2 == ErrTooManyHeaders && r.NumHeaders == MaxHeaders {
			return // the added Connection header pushed a full head over our own limit
		}
		if err2 != nil {
			t.Fatalf("forwarded head does not parse: %v\n%q", err2, out)
		}
		if fw.Status != r.Status || fw.Body(false) != r.Body(false) || fw.ContentLength != r.ContentLength {
			t.Fatalf("framing changed")
		}
		if r.Verbatim(1, true) {
			// Forwarding the head as it came must be what the rebuild would say: same status line,
			// the same header lines in the same order, nothing dropped or merged.
			if string(fw.Reason) != string(r.Reason) || fw.NumHeaders != r.NumHeaders {
				t.Fatalf("Verbatim, but the rebuilt head differs:\n%q\n%q", buf[:n], out)
			}
			for i := range r.NumHeaders {
				a, b := r.Headers[i], fw.Headers[i]
				if string(a.Name) != string(b.Name) || string(a.Value) != string(b.Value) {
					t.Fatalf("Verbatim, but header %d differs: %q: %q against %q: %q", i, a.Name, a.Value, b.Name, b.Value)
				}
			}
		}
	})
}

var chunkedSeeds = []string{
	"5\r\nhello\r\n0\r\n\r\n",
	"3;ext=\"v\"\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\nNEXT",
	"5 ;x\r\nhello\r\n0\r\n\r\n",
	"3\r\nhello\r\n0\r\n\r\n",
	"ffffffffffffffffff\r\n",
}

func FuzzChunked(f *testing.F) {
	for i, s := range chunkedSeeds {
		f.Add([]byte(s), uint(i*3))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint) {
		data, consumed, done, err := readAll(in, 0)
		if consumed > len(in) || len(data) > consumed {
			t.Fatalf("consumed %d of %d, data %d", consumed, len(in), len(data))
		}
		if done && err != nil {
			t.Fatal("done with error")
		}
		// Split at one point.
		if len(in) > 0 {
			at := int(split % uint(len(in)))
			var d ChunkedReader
			var got []byte
			total := 0
			var gotDone bool
			var gotErr error
			for _, piece := range [][]byte{in[:at], in[at:]} {
				for len(piece) > 0 && !gotDone && gotErr == nil {
					n, chunk, dn, e := d.Next(piece)
					got = append(got, chunk...)
					total += n
					piece = piece[n:]
					gotDone, gotErr = dn, e
				}
			}
			if string(got) != data || total != consumed || gotDone != done || errString(gotErr) != errString(err) {
				t.Fatalf("split at %d: (%q %d %v %v) whole: (%q %d %v %v)", at, got, total, gotDone, gotErr, data, consumed, done, err)
			}
		}
		// Byte by byte.
		data1, consumed1, done1, err1 := readAll(in, 1)
		if data1 != data || consumed1 != consumed || done1 != done || errString(err1) != errString(err) {
			t.Fatalf("byte by byte differs")
		}
		// Skip agrees with Next.
		var d ChunkedReader
		n, sdone, serr := d.Skip(in)
		if n != consumed || sdone != done || errString(serr) != errString(err) {
			t.Fatalf("Skip: %d %v %v, Next: %d %v %v", n, sdone, serr, consumed, done, err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
