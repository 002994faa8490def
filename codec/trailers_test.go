package codec

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// forwardPieces runs Forward over in cut into the given pieces and returns what a proxy writes (each
// call's buf[:pass] followed by its kept trailer bytes), the bytes consumed, done and the error.
func forwardPieces(pieces [][]byte) (out []byte, consumed int, done bool, err error) {
	var d ChunkedReader
	for _, p := range pieces {
		n, pass, _, kept, dn, e := d.Forward(p, nil)
		consumed += n
		if e != nil {
			return out, consumed, false, e
		}
		out = append(out, p[:pass]...)
		out = append(out, kept...)
		if dn {
			return out, consumed, true, nil
		}
		if n != len(p) {
			panic("Forward left bytes of a piece without being done")
		}
	}
	return out, consumed, false, nil
}

// cut splits in into pieces of size step, the last one shorter.
func cut(in []byte, step int) [][]byte {
	var pieces [][]byte
	for len(in) > step {
		pieces = append(pieces, in[:step])
		in = in[step:]
	}
	return append(pieces, in)
}

func TestForwardDropsForbiddenTrailers(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"issue 21",
			"5|hello|0|X-Ok: 1|Content-Length: 5|Host: evil|Transfer-Encoding: chunked|X-Also-Ok: 2||",
			"5|hello|0|X-Ok: 1|X-Also-Ok: 2||"},
		{"no trailers", "5|hello|3;e=1|abc|0;last||", "5|hello|3;e=1|abc|0;last||"},
		{"empty body", "0||", "0||"},
		{"only forbidden", "0|Host: a|content-LENGTH: 1|TRAILER: x||", "0||"},
		{"case kept as sent", "1|x|0|x-SUM: AbC|Te: trailers||", "1|x|0|x-SUM: AbC||"},
		{"every forbidden name", "0|" + strings.Join([]string{
			"Content-Length: 1", "Transfer-Encoding: chunked", "Trailer: a", "Host: h", "Connection: close",
			"Keep-Alive: 1", "Proxy-Connection: x", "TE: trailers", "Upgrade: h2c", "HTTP2-Settings: AA",
			"Cache-Control: no-store", "Expect: 100-continue", "Max-Forwards: 1", "Pragma: no-cache",
			"Range: bytes=0-1", "Authorization: x", "Proxy-Authorization: x", "Proxy-Authenticate: x",
			"WWW-Authenticate: x", "Realm: x", "Content-Encoding: gzip", "Content-Range: x", "Content-Type: x",
		}, "|") + "|X: 1||", "0|X: 1||"},
		{"prefixes and longer names kept",
			"0|Hos: a|Hostx: a|Content-Lengthy: 1|Proxy-Authorizations: x|X-Transfer-Encoding: a|A-Very-Long-Trailer-Field-Name: v||",
			"0|Hos: a|Hostx: a|Content-Lengthy: 1|Proxy-Authorizations: x|X-Transfer-Encoding: a|A-Very-Long-Trailer-Field-Name: v||"},
		{"empty values", "0|Host:|X:||", "0|X:||"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(crlf(tt.in) + "NEXT")
			want := crlf(tt.want)
			body := len(in) - len("NEXT")
			check := func(how string, pieces [][]byte) {
				t.Helper()
				out, consumed, done, err := forwardPieces(pieces)
				if err != nil || !done || consumed != body || string(out) != want {
					t.Fatalf("%s: out %q consumed %d/%d done %v err %v, want %q", how, out, consumed, body, done, err, want)
				}
			}
			check("whole", [][]byte{in})
			for step := 1; step <= len(in); step++ {
				check("pieces of "+strconv.Itoa(step), cut(in, step))
			}
			for at := 0; at <= len(in); at++ {
				check("split at "+strconv.Itoa(at), [][]byte{in[:at], in[at:]})
			}
		})
	}
}

// TestForwardPassIsTheInput: up to the trailer section Forward hands back spans of the caller's buffer,
// never copies; kept holds trailer bytes only.
func TestForwardPassIsTheInput(t *testing.T) {
	in := []byte(crlf("5|hello|0|Host: x|X: 1||"))
	var d ChunkedReader
	scratch := make([]byte, 0, 64)
	n, pass, payload, kept, done, err := d.Forward(in, scratch)
	if n != len(in) || !done || err != nil || payload != 5 {
		t.Fatalf("%d %v %v payload %d", n, done, err, payload)
	}
	if string(in[:pass]) != crlf("5|hello|0|") || string(kept) != crlf("X: 1||") || &kept[:1][0] != &scratch[:1][0] {
		t.Fatalf("pass %q kept %q (scratch reused: %v)", in[:pass], kept, &kept[:1][0] == &scratch[:1][0])
	}
	if d.Dropped() != int64(len("Host: x\r\n")) {
		t.Errorf("Dropped %d", d.Dropped())
	}
	if d.Consumed() != int64(len(in)) {
		t.Errorf("Consumed %d", d.Consumed())
	}
}

func TestForwardErrorsAsSkip(t *testing.T) {
	for _, in := range []string{"5|helloXX", "0|Host : x||", "0|X: a| b||", "0|Host: a\n|"} {
		b := []byte(crlf(in))
		var d1, d2 ChunkedReader
		n1, _, e1 := d1.Skip(b)
		n2, _, _, _, _, e2 := d2.Forward(b, nil)
		if e1 == nil || errString(e1) != errString(e2) || n1 != n2 {
			t.Errorf("%q: Skip %d %v, Forward %d %v", in, n1, e1, n2, e2)
		}
	}
}

// TestTrailerSectionBound: the trailer section, every line within MaxChunkLineBytes, is refused once it
// passes MaxTrailerBytes, however it is split; one that fits passes.
func TestTrailerSectionBound(t *testing.T) {
	line := "X-Pad: " + strings.Repeat("p", 1000) + "\r\n"
	var fits bytes.Buffer
	fits.WriteString("0\r\n")
	for fits.Len()-3+len(line)+2 <= MaxTrailerBytes {
		fits.WriteString(line)
	}
	pad := MaxTrailerBytes - (fits.Len() - 3) - 2 // bytes still free in the section
	if pad >= len("Z: \r\n") {
		fits.WriteString("Z: " + strings.Repeat("z", pad-len("Z: \r\n")) + "\r\n")
	}
	fits.WriteString("\r\n")
	if got := fits.Len() - 3; got != MaxTrailerBytes {
		t.Fatalf("test body's trailer section is %d bytes, want %d", got, MaxTrailerBytes)
	}
	for _, step := range []int{len(fits.Bytes()), 1, 7, 4096} {
		if _, consumed, done, err := forwardPieces(cut(fits.Bytes(), step)); !done || err != nil || consumed != fits.Len() {
			t.Fatalf("section of exactly MaxTrailerBytes, pieces of %d: done %v err %v", step, done, err)
		}
	}
	over := append(append([]byte(nil), fits.Bytes()[:fits.Len()-2]...), "A: 1\r\n\r\n"...)
	for _, step := range []int{len(over), 1, 7, 4096} {
		_, _, done, err := forwardPieces(cut(over, step))
		se, ok := err.(*SyntaxError)
		if done || !ok || se.Offset != 3+MaxTrailerBytes {
			t.Fatalf("section over MaxTrailerBytes, pieces of %d: done %v err %v", step, done, err)
		}
	}
	var d ChunkedReader
	if _, _, err := d.Skip(over); err == nil {
		t.Fatal("Skip accepted a trailer section over MaxTrailerBytes")
	}
}

// FuzzChunkedForward: whatever the input and wherever it is split, Forward consumes what Skip does, its
// output does not depend on the split, and a completed body's output re-parses as a valid chunked body
// with the same data and no trailer field that forbiddenTrailer names.
func FuzzChunkedForward(f *testing.F) {
	for i, s := range chunkedSeeds {
		f.Add([]byte(s), uint(i*5))
	}
	f.Add([]byte(crlf("5|hello|0|X-Ok: 1|Content-Length: 5|Host: evil|Transfer-Encoding: chunked|X-Also-Ok: 2||")), uint(40))
	f.Add([]byte(crlf("1|x|0|Proxy-Authorization: a|Proxy-Authorizationx: b|T:||")), uint(17))
	f.Fuzz(func(t *testing.T, in []byte, split uint) {
		var sk ChunkedReader
		skipped, skipDone, skipErr := sk.Skip(in)
		out, consumed, done, err := forwardPieces([][]byte{in})
		if consumed != skipped || done != skipDone || errString(err) != errString(skipErr) {
			t.Fatalf("Forward %d %v %v, Skip %d %v %v", consumed, done, err, skipped, skipDone, skipErr)
		}
		if len(in) > 0 {
			at := int(split % uint(len(in)+1))
			out2, consumed2, done2, err2 := forwardPieces([][]byte{in[:at], in[at:]})
			if consumed2 != consumed || done2 != done || errString(err2) != errString(err) || (done && !bytes.Equal(out2, out)) {
				t.Fatalf("split at %d: %q %d %v %v, whole: %q %d %v %v", at, out2, consumed2, done2, err2, out, consumed, done, err)
			}
		}
		if !done {
			return
		}
		data, _, _, _ := readAll(in, 0)
		var d ChunkedReader
		var got []byte
		n := 0
		for n < len(out) {
			k, chunk, dn, e := d.Next(out[n:])
			got = append(got, chunk...)
			n += k
			if e != nil {
				t.Fatalf("output %q does not parse: %v", out, e)
			}
			if dn {
				break
			}
		}
		if !d.Done() || n != len(out) || string(got) != data {
			t.Fatalf("output %q: done %v, %d of %d bytes, data %q want %q", out, d.Done(), n, len(out), got, data)
		}
		// The trailer lines of the output: after the last chunk's size line, up to the final CRLF.
		tr := out[d.trailerAt : len(out)-2]
		for len(tr) > 0 {
			end := bytes.Index(tr, []byte("\r\n"))
			line := tr[:end]
			name := line[:bytes.IndexByte(line, ':')]
			if forbiddenTrailer(name) {
				t.Fatalf("output %q forwards trailer %q", out, line)
			}
			tr = tr[end+2:]
		}
	})
}
