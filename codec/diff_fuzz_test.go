package codec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Differential fuzzing of ParseRequest against net/http's http.ReadRequest (see DIFFERENTIAL.md).
//
// Each input ends in one of these outcomes:
//
//	both-accept      both parse a head; method, target and framing must then agree exactly
//	both-reject      both refuse it (or neither has a complete head)
//	codec-only       codec accepts, net/http refuses
//	nethttp-only     net/http accepts, codec refuses
//
// A one-sided outcome fails the fuzz target unless one of the named predicates below explains it. Every
// predicate is a documented, deliberate difference; a disagreement no predicate explains is either a
// codec bug or a new class to study and document before it is added here.

// diffClass is one known class of disagreement.
type diffClass struct {
	name string
	// who accepts: "nethttp" (codec rejects) or "codec" (net/http rejects).
	who string
	// match reports whether buf (with the codec error cerr, or net/http's error nerr) is in the class.
	match func(buf []byte, cerr, nerr error) bool
}

// headOf returns the bytes up to and including the first blank line net/http would see (LF or CRLF
// endings), or all of buf.
func headOf(buf []byte) []byte {
	for i := 0; i < len(buf); i++ {
		if buf[i] != '\n' {
			continue
		}
		if i+1 < len(buf) && buf[i+1] == '\n' {
			return buf[:i+2]
		}
		if i+2 < len(buf) && buf[i+1] == '\r' && buf[i+2] == '\n' {
			return buf[:i+3]
		}
	}
	return buf
}

// headLines splits a head net/http's way: on LF, with one trailing CR removed.
func headLines(buf []byte) []string {
	h := string(headOf(buf))
	lines := strings.Split(h, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

func requestLineFields(buf []byte) (method, target, version string) {
	l := headLines(buf)[0]
	method, rest, _ := strings.Cut(l, " ")
	target, version, _ = strings.Cut(rest, " ")
	return
}

func isSyntax(err error, st State) bool {
	var se *SyntaxError
	return errors.As(err, &se) && se.State == st
}

// knownDiffs are the explained disagreements. Order does not matter; the first match names the class.
var knownDiffs = []diffClass{
	// --- net/http accepts, codec refuses (codec is stricter: SPEC 3.2) ---
	{"bare-LF line ending", "nethttp", func(buf []byte, cerr, _ error) bool {
		// net/textproto splits lines on LF and drops an optional CR; codec demands CRLF. A hop that
		// honours bare LF and one that does not see different header boundaries.
		h := headOf(buf)
		for i := 0; i < len(h); i++ {
			if h[i] == '\n' && (i == 0 || h[i-1] != '\r') {
				return true
			}
		}
		return false
	}},
	{"obs-fold continuation line", "nethttp", func(buf []byte, cerr, _ error) bool {
		// net/textproto glues a line starting with SP/HTAB onto the previous value (obs-fold);
		// codec refuses it (RFC 9112 5.2 allows a server to reject). "X: a\r\n Transfer-Encoding: chunked"
		// is a header to one parser and part of a value to another.
		return isSyntax(cerr, StateObsFold)
	}},
	{"space inside or before the colon of a header name", "nethttp", func(buf []byte, cerr, _ error) bool {
		// net/textproto accepts a field name containing SP ("Transfer-Encoding : chunked", "X A: b") and
		// keeps it as an uncanonicalised, unrecognised key (go.dev/issue/34540), so Go sees no TE while
		// a lenient backend that trims the name sees "chunked": the classic TE.TE obfuscation. codec
		// refuses (RFC 9112 5.1: a server MUST reject whitespace between field name and colon).
		if !isSyntax(cerr, StateHeaderName) {
			return false
		}
		for _, l := range headLines(buf)[1:] {
			k, _, ok := strings.Cut(l, ":")
			if ok && strings.Contains(k, " ") && strings.Trim(k, " ") != "" {
				return true
			}
		}
		return false
	}},
	{"Transfer-Encoding and Content-Length together", "nethttp", func(_ []byte, cerr, _ error) bool {
		// net/http lets chunked win and drops Content-Length; codec refuses the pair (CL.TE / TE.CL):
		// the proxy must never forward a message whose length two hops may compute differently.
		return cerr == ErrConflictingFraming
	}},
	{"Transfer-Encoding in HTTP/1.0", "nethttp", func(buf []byte, cerr, _ error) bool {
		// net/http ignores TE in HTTP/1.0 (and frames by Content-Length or no body); codec refuses:
		// a 1.1 backend may still honour it.
		_, _, v := requestLineFields(buf)
		return v == "HTTP/1.0" && isSyntax(cerr, StateTransferEncoding)
	}},
	{"missing Host in HTTP/1.1", "nethttp", func(_ []byte, cerr, _ error) bool {
		// http.ReadRequest leaves the Host requirement to http.Server (which answers 400 too);
		// codec enforces it in the parser (RFC 9112 3.2). Two Host headers are refused by both.
		return cerr == ErrMissingHost
	}},
	{"Host value with bytes outside uri-host", "nethttp", func(_ []byte, cerr, _ error) bool {
		// http.ReadRequest does not validate Host (http.Server does, later); codec refuses a Host
		// that the router and the backend could read differently ("a/b", "a b", "a@b").
		return isSyntax(cerr, StateHost)
	}},
	{"HTTP version other than 1.0/1.1", "nethttp", func(_ []byte, cerr, _ error) bool {
		// http.ReadRequest parses any HTTP/d.d (http.Server answers 505 later); codec says 505 itself.
		return cerr == ErrUnsupportedVersion
	}},
	{"request-target form not allowed for the method", "nethttp", func(buf []byte, cerr, _ error) bool {
		// net/http accepts "*" with any method, CONNECT with a path, any scheme in absolute form
		// ("ftp://x") and bare authority for any method; codec applies RFC 9112 3.2 (origin-form,
		// http(s) absolute-form, "*" only for OPTIONS, authority only and always for CONNECT).
		return isSyntax(cerr, StateTarget)
	}},
	{"more than MaxHeaders header lines", "nethttp", func(_ []byte, cerr, _ error) bool {
		// net/http limits header bytes, not lines; codec's fixed index holds 100 (431).
		return cerr == ErrTooManyHeaders
	}},
	// --- codec accepts, net/http refuses (net/http is stricter; codec forwards, the backend decides) ---
	{"request-target that url.ParseRequestURI refuses", "codec", func(buf []byte, _, nerr error) bool {
		// codec treats the target as opaque VCHAR/obs-text (it never decodes it); net/url refuses bad
		// percent-escapes, odd hosts in absolute form, and so on. The target does not frame the
		// message, and the proxy forwards it byte for byte, so both hops still agree on the length.
		var ue *url.Error
		return errors.As(nerr, &ue)
	}},
	{"Transfer-Encoding other than exactly one \"chunked\"", "codec", func(buf []byte, _, nerr error) bool {
		// net/http supports only a single "Transfer-Encoding: chunked" (501 otherwise). codec accepts a
		// list whose last coding is chunked ("gzip, chunked", or split over lines, or with parameters):
		// it frames it as chunked, exactly like RFC 9112 6.3 and like the backend must.
		return nerr != nil && strings.Contains(nerr.Error(), "transfer encoding")
	}},
	{"Content-Length list or differing spellings of one value", "codec", func(buf []byte, _, nerr error) bool {
		// "Content-Length: 5, 5" and "Content-Length: 5" + "Content-Length: 05" denote one length
		// (RFC 9110 8.6 allows the list); codec accepts identical values, net/http compares strings and
		// parses one value only. codec forwards one canonical Content-Length, so the backend agrees.
		return nerr != nil && (strings.Contains(nerr.Error(), "Content-Length"))
	}},
}

// The one class that judges by classifying the rest of the input, so it is added at init (a predicate in
// knownDiffs' own initializer that calls classifyDiff would be an initialization cycle).
func init() {
	knownDiffs = append(knownDiffs, diffClass{"empty lines before the request line", "codec", func(buf []byte, _, _ error) bool {
		// RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line; codec
		// skips CRLFs and bare LFs there (as nginx and HAProxy do), http.ReadRequest refuses them.
		// The rest must then be a request the two agree on, or one of the explained classes.
		k := EmptyLinesLen(buf)
		if k == 0 {
			return false
		}
		o := classifyDiff(buf[k:])
		return (o.kind == "both-accept" && o.detail == "") || (o.kind == "codec-only" && o.class != "")
	}})
}

type diffOutcome struct {
	kind   string // both-accept, both-reject, codec-only, nethttp-only
	class  string // for one-sided outcomes: the knownDiffs name, or "" when unexplained
	detail string // what disagreed, for both-accept mismatches
	cerr   error
	nerr   error
}

// netHTTPRead runs http.ReadRequest on buf. incomplete is true when it ran out of bytes.
func netHTTPRead(buf []byte) (req *http.Request, incomplete bool, err error) {
	req, err = http.ReadRequest(bufio.NewReader(bytes.NewReader(buf)))
	if err != nil {
		return nil, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), err
	}
	return req, false, nil
}

func classifyDiff(buf []byte) diffOutcome {
	var r Request
	_, cerr := ParseRequest(buf, &r)
	req, nIncomplete, nerr := netHTTPRead(buf)
	if req != nil && req.Body != nil {
		req.Body.Close()
	}
	o := diffOutcome{cerr: cerr, nerr: nerr}
	cOK, nOK := cerr == nil, nerr == nil
	switch {
	case cOK && nOK:
		o.kind = "both-accept"
		var d []string
		if string(r.Method) != req.Method {
			d = append(d, "method "+strconv.Quote(string(r.Method))+" vs "+strconv.Quote(req.Method))
		}
		if string(r.Target) != req.RequestURI {
			d = append(d, "target "+strconv.Quote(string(r.Target))+" vs "+strconv.Quote(req.RequestURI))
		}
		cChunked := r.Flags&FlagChunked != 0
		nChunked := len(req.TransferEncoding) > 0 && req.TransferEncoding[len(req.TransferEncoding)-1] == "chunked"
		if cChunked != nChunked {
			d = append(d, "chunked "+strconv.FormatBool(cChunked)+" vs "+strconv.FormatBool(nChunked))
		}
		if !cChunked {
			want := r.ContentLength
			if want < 0 {
				want = 0
			}
			if req.ContentLength != want {
				d = append(d, "content-length "+strconv.FormatInt(r.ContentLength, 10)+" vs "+strconv.FormatInt(req.ContentLength, 10))
			}
		}
		if int(r.Minor) != req.ProtoMinor || req.ProtoMajor != 1 {
			d = append(d, "version")
		}
		o.detail = strings.Join(d, "; ")
		return o
	case !cOK && !nOK:
		o.kind = "both-reject"
		return o
	case cerr == ErrNeedMore:
		// codec has no complete head; net/http accepted one. It may only have done so by ending the
		// head on a bare LF, which the bare-LF class explains.
		o.kind = "nethttp-only"
	case nIncomplete && cOK:
		// Cannot happen for a complete CRLF head: net/http reads no body in ReadRequest.
		o.kind = "codec-only"
	case cOK:
		o.kind = "codec-only"
	default:
		o.kind = "nethttp-only"
	}
	who := "codec"
	if o.kind == "nethttp-only" {
		who = "nethttp"
	}
	for _, k := range knownDiffs {
		if k.who == who && k.match(buf, cerr, nerr) {
			o.class = k.name
			break
		}
	}
	return o
}

// diffSeeds: well-formed requests and the smuggling families of engine/smuggling_test.go.
var diffSeeds = []string{
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a?b=c HTTP/1.0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
	"GET http://x/abs?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n Transfer-Encoding: chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
	"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n",
	"GET / HTTP/1.1\nHost: x\n\n",
	"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x80b\r\n\r\n",
	"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
	"GET / http/1.1\r\nHost: x\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
	"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
	"\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x/y\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: 1\r\n\r\nA",
}

func FuzzDifferentialRequest(f *testing.F) {
	for _, s := range diffSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		o := classifyDiff(buf)
		switch o.kind {
		case "both-accept":
			if o.detail != "" {
				t.Fatalf("both accept but disagree: %s\ninput %q", o.detail, buf)
			}
		case "codec-only", "nethttp-only":
			if o.class == "" {
				t.Fatalf("unexplained disagreement (%s): codec err %v, net/http err %v\ninput %q", o.kind, o.cerr, o.nerr, buf)
			}
		}
	})
}

// TestDifferentialSeedsAndCorpus runs the seeds and the stored corpus and logs how many inputs fall in
// each class (go test -run TestDifferentialSeedsAndCorpus -v ./codec).
func TestDifferentialSeedsAndCorpus(t *testing.T) {
	inputs := append([]string(nil), diffSeeds...)
	dirs := []string{"testdata/fuzz/FuzzDifferentialRequest", "testdata/fuzz/FuzzParseRequest"}
	if d := os.Getenv("SWITCHFLOW_DIFF_CORPUS"); d != "" {
		// e.g. $(go env GOCACHE)/fuzz/switchflow/codec/FuzzDifferentialRequest after a fuzz run
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		inputs = append(inputs, readCorpusDir(t, dir)...)
	}
	counts := map[string]int{}
	for _, in := range inputs {
		o := classifyDiff([]byte(in))
		key := o.kind
		if o.class != "" {
			key += ": " + o.class
		}
		if counts[key] == 0 && testing.Verbose() {
			t.Logf("first of %s: %q (codec: %v; net/http: %v)", key, in, o.cerr, o.nerr)
		}
		counts[key]++
		switch {
		case o.kind == "both-accept" && o.detail != "":
			t.Errorf("both accept but disagree: %s\ninput %q", o.detail, in)
		case (o.kind == "codec-only" || o.kind == "nethttp-only") && o.class == "":
			t.Errorf("unexplained disagreement (%s): codec %v, net/http %v\ninput %q", o.kind, o.cerr, o.nerr, in)
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%4d  %s", counts[k], k)
	}
}

// readCorpusDir reads the []byte inputs of a go fuzz corpus directory (missing directory: none).
func readCorpusDir(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "[]byte("); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				out = append(out, s)
			}
		}
	}
	return out
}
