package engine

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"switchflow/codec"
	"switchflow/config"
	"switchflow/upstream"
)

// The access log (log.access, log.access_format). Each loop formats its lines into a buffer of its own
// (append-style, no fmt, no allocation) and hands full buffers, and whatever it holds at each sweep
// (every 100 ms), to one writer goroutine through a channel. The buffers circulate between the loops and
// the writer, a fixed number allocated at start: a loop that finds none free (the writer lags behind
// the disk) drops the line and counts it (switchflow_access_log_dropped_total), so the loops never block
// on the log and its memory never grows. The writer is the only goroutine that touches the file; SIGHUP
// makes it reopen the file (logrotate's "move, then signal").

const (
	accessFieldMax = 2048      // request line, Referer and User-Agent are cut to this many bytes
	accessNameMax  = 512       // route and server names too
	accessBufSize  = 128 << 10 // one buffer; at least two worst-case lines fit
	// accessLineMax bounds one line: every field escaped at its worst (\u00XX, 6 bytes a byte).
	accessLineMax = 6*(3*accessFieldMax+2*accessNameMax) + 512
)

// accessLog is the shared side: the writer goroutine and the buffers.
type accessLog struct {
	json   bool
	path   string // a file to reopen on SIGHUP; "" for stdout and stderr
	w      io.Writer
	file   *os.File // the writer goroutine's, once started
	log    *slog.Logger
	full   chan []byte // buffers to write, from the loops
	free   chan []byte // empty buffers, for the loops
	reopen chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// newAccessLog opens log.access; nil when it is "off".
func newAccessLog(cfg config.Log, loops int, log *slog.Logger) (*accessLog, error) {
	a := &accessLog{json: cfg.AccessFormat == "json", log: log}
	switch cfg.Access {
	case "", config.AccessOff:
		return nil, nil
	case config.AccessStdout:
		a.w = os.Stdout
	case config.AccessStderr:
		a.w = os.Stderr
	default:
		f, err := openAccessFile(cfg.Access)
		if err != nil {
			return nil, fmt.Errorf("log.access: %w", err)
		}
		a.path, a.file, a.w = cfg.Access, f, f
	}
	n := max(8, 3*loops)
	a.full = make(chan []byte, n)
	a.free = make(chan []byte, n)
	for i := 0; i < n; i++ {
		a.free <- make([]byte, 0, accessBufSize)
	}
	a.reopen = make(chan struct{}, 1)
	a.stop = make(chan struct{})
	a.done = make(chan struct{})
	return a, nil
}

func openAccessFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// start runs the writer goroutine (one per server).
func (a *accessLog) start() { go a.run() }

func (a *accessLog) run() {
	defer close(a.done)
	failed := false
	write := func(b []byte) {
		if _, err := a.w.Write(b); err != nil {
			if !failed { // once per failure streak, not once per buffer
				a.log.Error("access log write failed", "error", err)
			}
			failed = true
		} else {
			failed = false
		}
		a.free <- b[:0]
	}
	for {
		select {
		case b := <-a.full:
			write(b)
		case <-a.reopen:
			if a.path == "" {
				continue
			}
			f, err := openAccessFile(a.path)
			if err != nil {
				a.log.Error("access log not reopened; writing on to the old file", "file", a.path, "error", err)
				continue
			}
			_ = a.file.Close()
			a.file, a.w = f, f
		case <-a.stop:
			for {
				select {
				case b := <-a.full:
					write(b)
				default:
					if a.file != nil {
						_ = a.file.Close()
					}
					return
				}
			}
		}
	}
}

// reopenFile asks the writer to reopen the file (SIGHUP). Safe from any goroutine; never blocks.
func (a *accessLog) reopenFile() {
	select {
	case a.reopen <- struct{}{}:
	default:
	}
}

// close writes what the loops handed over and stops the writer. The loops must have stopped.
func (a *accessLog) close() {
	close(a.stop)
	<-a.done
}

// accessBuf is one loop's side. Loop only.
type accessBuf struct {
	a   *accessLog
	cur []byte // the buffer being filled; nil when none is held

	sec     int64 // the wall-clock second timeBuf holds
	timeBuf [40]byte
	timeLen int
}

// room makes sure cur can take a line of accessLineMax bytes, handing a fuller buffer to the writer. It
// reports false when no empty buffer is free: the line is dropped.
func (b *accessBuf) room(st *loopStats) bool {
	if b.cur != nil && cap(b.cur)-len(b.cur) >= accessLineMax {
		return true
	}
	b.flush(st)
	select {
	case b.cur = <-b.a.free:
		return true
	default:
		return false
	}
}

// flush hands cur to the writer, if it holds anything.
func (b *accessBuf) flush(st *loopStats) {
	if len(b.cur) == 0 {
		return
	}
	select {
	case b.a.full <- b.cur:
	default:
		// Cannot happen (full has room for every buffer there is); if it did, the lines are dropped.
		st.logDropped.Add(uint64(bytes.Count(b.cur, []byte{'\n'})))
	}
	b.cur = nil
}

// accessTime is the wall-clock time of now (monotonic ns since s.base) as the log format writes it,
// formatted once a second.
func (ls *loopState) accessTime(b *accessBuf, now int64) []byte {
	wall := ls.s.base.Add(time.Duration(now))
	if sec := wall.Unix(); sec != b.sec || b.timeLen == 0 {
		b.sec = sec
		layout := "02/Jan/2006:15:04:05 -0700" // nginx's $time_local
		if b.a.json {
			layout = time.RFC3339 // $time_iso8601
		}
		b.timeLen = len(wall.AppendFormat(b.timeBuf[:0], layout))
	}
	return b.timeBuf[:b.timeLen]
}

// logAccess writes cc's line. Loop only; allocates nothing.
func (ls *loopState) logAccess(cc *clientConn, parsed bool, status int, body, dur int64, route *routeRT, srv *upstream.Server, now int64) {
	b := ls.alog
	if !b.room(&ls.st) {
		ls.st.logDropped.Add(1)
		return
	}
	line, ua, ref := requestFields(cc, parsed)
	var routeName, server string
	if route != nil {
		routeName = route.name
	}
	if srv != nil {
		server = srv.Name
	}
	t := ls.accessTime(b, now)
	out := b.cur
	if b.a.json {
		out = append(out, `{"time":"`...)
		out = append(out, t...)
		out = append(out, `","remote_addr":"`...)
		if cc.ip.IsValid() {
			out = cc.ip.AppendTo(out)
		}
		out = append(out, `","request":"`...)
		out = appendJSONText(out, line, accessFieldMax)
		out = append(out, `","status":`...)
		out = strconv.AppendInt(out, int64(status), 10)
		out = append(out, `,"body_bytes_sent":`...)
		out = strconv.AppendInt(out, body, 10)
		out = append(out, `,"http_referer":"`...)
		out = appendJSONText(out, ref, accessFieldMax)
		out = append(out, `","http_user_agent":"`...)
		out = appendJSONText(out, ua, accessFieldMax)
		out = append(out, `","request_time":`...)
		out = appendSeconds(out, dur)
		out = append(out, `,"upstream":"`...)
		out = appendJSONText(out, server, accessNameMax)
		out = append(out, `","route":"`...)
		out = appendJSONText(out, routeName, accessNameMax)
		if parsed && cc.exchange != nil && cc.cause != 0 {
			out = append(out, `","termination":"`...)
			out = append(out, failures[cc.cause].cause...)
		}
		out = appendTLSFields(out, cc) // tls.go: tls_version, tls_cipher
		out = append(out, "\"}\n"...)
	} else {
		// nginx's combined: $remote_addr - $remote_user [$time_local] "$request" $status
		// $body_bytes_sent "$http_referer" "$http_user_agent"
		if cc.ip.IsValid() {
			out = cc.ip.AppendTo(out)
		} else {
			out = append(out, '-')
		}
		out = append(out, " - - ["...)
		out = append(out, t...)
		out = append(out, `] "`...)
		out = appendLogText(out, line)
		out = append(out, `" `...)
		out = strconv.AppendInt(out, int64(status), 10)
		out = append(out, ' ')
		out = strconv.AppendInt(out, body, 10)
		out = append(out, ` "`...)
		out = appendLogText(out, ref)
		out = append(out, `" "`...)
		out = appendLogText(out, ua)
		out = append(out, "\"\n"...)
	}
	b.cur = out
}

// requestFields finds, in cc's header slab, the request line and the User-Agent and Referer values: of
// the parsed head, or for a request refused before its head parsed, the request line as far as it came.
func requestFields(cc *clientConn, parsed bool) (line, ua, ref []byte) {
	buf := cc.buf()
	n := cc.filled
	if parsed {
		n = cc.headLen
	}
	if buf == nil || n <= 0 || n > len(buf) {
		return nil, nil, nil
	}
	head := buf[:n]
	head = head[codec.EmptyLinesLen(head):]
	line, rest := cutLine(head)
	if !parsed {
		return line, nil, nil
	}
	for len(rest) > 0 {
		var h []byte
		h, rest = cutLine(rest)
		if len(h) == 0 {
			break
		}
		if v, ok := headerValue(h, "user-agent"); ok && ua == nil {
			ua = v
		} else if v, ok := headerValue(h, "referer"); ok && ref == nil {
			ref = v
		}
	}
	return line, ua, ref
}

// cutLine splits b at its first LF, without the line's CR.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		line = b
	} else {
		line, rest = b[:i], b[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// headerValue returns the value of header line h if it is named name (lower case), without its
// surrounding whitespace.
func headerValue(h []byte, name string) ([]byte, bool) {
	if len(h) <= len(name) || h[len(name)] != ':' {
		return nil, false
	}
	for i := 0; i < len(name); i++ {
		c := h[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return nil, false
		}
	}
	v := h[len(name)+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v, true
}

const hexDigits = "0123456789ABCDEF"

// appendLogText appends s for the combined format, as nginx escapes it: '"', '\' and bytes outside
// printable ASCII as \xHH; an empty value as "-". At most accessFieldMax bytes of s are written.
func appendLogText(dst, s []byte) []byte {
	if len(s) == 0 {
		return append(dst, '-')
	}
	if len(s) > accessFieldMax {
		s = s[:accessFieldMax]
	}
	for _, c := range s {
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// appendJSONText appends s as the inside of a JSON string: '"' and '\' escaped, control bytes as
// \u00XX, UTF-8 passed through and bytes that are not UTF-8 as \ufffd. At most max bytes of s.
func appendJSONText[T string | []byte](dst []byte, s T, max int) []byte {
	if len(s) > max {
		s = s[:max]
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
			i++
		case c < 0x20 || c == 0x7f:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			i++
		case c < 0x80:
			dst = append(dst, c)
			i++
		default:
			var tmp [utf8.UTFMax]byte
			r, n := utf8.DecodeRune(tmp[:copy(tmp[:], s[i:])])
			if r == utf8.RuneError && n <= 1 {
				dst = append(dst, `\ufffd`...)
				i++
				continue
			}
			dst = append(dst, tmp[:n]...)
			i += n
		}
	}
	return dst
}

// appendSeconds appends ns as seconds with millisecond resolution, as nginx's $request_time: "0.013".
func appendSeconds(dst []byte, ns int64) []byte {
	ms := ns / int64(time.Millisecond)
	dst = strconv.AppendInt(dst, ms/1000, 10)
	f := ms % 1000
	return append(dst, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}
