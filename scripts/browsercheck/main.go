// Command browsercheck is the origin of scripts/browser-check.sh: the test peer that a headless Chromium
// reaches through SwitchFlow. It serves a page that loads 60 assets (images, scripts, stylesheets and
// fetched bodies, two of each kind about 1 MiB), sets a cookie jar of about 7.5 KB so that every later
// request carries it (plus a ~700-byte Referer or X-Pad header), talks to a WebSocket echo endpoint and
// listens to Server-Sent Events sent 300 ms apart. The page posts its verdict to /verdict (without the
// cookies, so that the verdict gets through even when the proxy refuses the large heads); the origin adds
// what it saw itself (the full cookie jar on every checked request), prints a summary and exits: 0 on
// PASS, 1 on FAIL, 1 when no verdict came within -timeout.
//
// Usage:
//
//	browsercheck -listen 127.0.0.1:9001 [-timeout 120s] [-sse-events 5] [-sse-interval 300ms] [-min-gap 100ms]
//	browsercheck -free-ports 2    # prints two free loopback ports (the script's helper)
//
// Endpoints:
//
//	/            the page; without ?pad= it redirects to /?pad=<700 bytes> (the Referer of every asset)
//	/a/NAME      the assets; /ws the WebSocket echo; /sse the events
//	/verdict     POST: the page's JSON verdict
//	/favicon.ico 204
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	cookieCount = 3
	cookieValue = 2555 // bytes per value: 3 × (6 + 2555) + 2 × 2 separators = 7687 bytes of Cookie header
	padLen      = 700  // the extra header: Referer (the page URL's query), X-Pad on fetches, query on ws/sse
)

func cookieName(i int) string { return fmt.Sprintf("sfbc%d", i) }

// cookieVal is cookie i's value: letters and digits only, different per cookie, so a truncated or
// reordered jar is seen.
func cookieVal(i int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, cookieValue)
	for j := range b {
		b[j] = alphabet[(j*7+i*13+j/len(alphabet))%len(alphabet)]
	}
	return string(b)
}

// cookieHeaderLen is the length of the Cookie header that carries the whole jar.
func cookieHeaderLen() int {
	n := 0
	for i := 0; i < cookieCount; i++ {
		n += len(cookieName(i)) + 1 + cookieValue
	}
	return n + 2*(cookieCount-1)
}

func padString() string { return strings.Repeat("p", padLen) }

// verdict is what the page posts.
type verdict struct {
	Failures     []string  `json:"failures"`
	Assets       int       `json:"assets"`
	AssetsLoaded int       `json:"assetsLoaded"`
	AssetBytes   int64     `json:"assetBytes"`
	CookieBytes  int       `json:"cookieBytes"` // document.cookie's length in the browser
	WSSent       int       `json:"wsSent"`
	WSEchoed     int       `json:"wsEchoed"`
	WSLargest    int       `json:"wsLargest"`
	SSEEvents    int       `json:"sseEvents"`
	SSEGaps      []float64 `json:"sseGapsMs"`
	ElapsedMs    float64   `json:"elapsedMs"`
	UserAgent    string    `json:"userAgent"`
}

type checker struct {
	assets      []*asset
	byURL       map[string]*asset
	sseEvents   int
	sseInterval time.Duration
	minGap      time.Duration
	page        []byte

	mu          sync.Mutex
	problems    []string        // requests that arrived without the whole jar or the extra header
	assetsOK    map[string]bool // asset URLs that arrived with the whole jar
	checked     int             // requests checked for the jar
	minCookie   int             // Cookie header bytes, over checked requests
	maxCookie   int
	maxHead     int // the largest request head seen (approximate: as net/http parsed it)
	wsHandshake bool
	wsEchoed    int
	sseSent     int
	gotVerdict  bool

	verdict chan verdict
}

// headSize approximates the request head's size as it arrived: request line, headers, blank line.
func headSize(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// check verifies that r carries the whole cookie jar and a ~700-byte extra header, and records it.
func (c *checker) check(r *http.Request) bool {
	var ps []string
	for i := 0; i < cookieCount; i++ {
		ck, err := r.Cookie(cookieName(i))
		switch {
		case err != nil:
			ps = append(ps, "cookie "+cookieName(i)+" missing")
		case ck.Value != cookieVal(i):
			ps = append(ps, fmt.Sprintf("cookie %s changed (%d bytes, want %d)", cookieName(i), len(ck.Value), cookieValue))
		}
	}
	extra := max(len(r.Referer()), len(r.Header.Get("X-Pad")), len(r.URL.RawQuery))
	if extra < padLen {
		ps = append(ps, fmt.Sprintf("no %d-byte extra header (Referer %d bytes, X-Pad %d, query %d)",
			padLen, len(r.Referer()), len(r.Header.Get("X-Pad")), len(r.URL.RawQuery)))
	}
	cl := 0
	for _, v := range r.Header.Values("Cookie") {
		cl += len(v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked++
	if c.checked == 1 || cl < c.minCookie {
		c.minCookie = cl
	}
	c.maxCookie = max(c.maxCookie, cl)
	c.maxHead = max(c.maxHead, headSize(r))
	if len(ps) > 0 {
		c.problems = append(c.problems, fmt.Sprintf("%s %s: %s", r.Method, r.URL.Path, strings.Join(ps, "; ")))
		return false
	}
	return true
}

func (c *checker) servePage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.URL.Query().Get("pad") == "" {
		// The page's URL is every asset's Referer: a long query makes each asset request carry ~700
		// more bytes, as a long custom header would.
		http.Redirect(w, r, "/?pad="+padString(), http.StatusFound)
		return
	}
	for i := 0; i < cookieCount; i++ {
		http.SetCookie(w, &http.Cookie{Name: cookieName(i), Value: cookieVal(i), Path: "/", MaxAge: 600, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(c.page)
}

func (c *checker) serveAsset(w http.ResponseWriter, r *http.Request) {
	a := c.byURL[r.URL.Path]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	if c.check(r) {
		c.mu.Lock()
		c.assetsOK[a.URL] = true
		c.mu.Unlock()
	}
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(a.body)
}

func (c *checker) serveWS(w http.ResponseWriter, r *http.Request) {
	ok := c.check(r)
	rw, closeConn, err := wsUpgrade(w, r)
	if err != nil {
		return
	}
	defer closeConn()
	c.mu.Lock()
	c.wsHandshake = c.wsHandshake || ok
	c.mu.Unlock()
	err = wsEcho(rw, func(int) {
		c.mu.Lock()
		c.wsEchoed++
		c.mu.Unlock()
	})
	if err != nil && !isClosed(err) {
		log.Printf("websocket: %v", err)
	}
}

func isClosed(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "closed"))
}

// serveSSE sends -sse-events events -sse-interval apart, flushing each, then holds the stream a little
// so that the page closes it (an ended stream makes an EventSource reconnect).
func (c *checker) serveSSE(w http.ResponseWriter, r *http.Request) {
	c.check(r)
	f, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "no flusher", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 60000\n\n")
	f.Flush()
	start := time.Now()
	for i := 0; i < c.sseEvents; i++ {
		select {
		case <-time.After(time.Until(start.Add(time.Duration(i+1) * c.sseInterval))):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "id: %d\ndata: %d %d\n\n", i, i, time.Since(start).Milliseconds())
		f.Flush()
		c.mu.Lock()
		c.sseSent++
		c.mu.Unlock()
	}
	select {
	case <-r.Context().Done():
	case <-time.After(3 * time.Second):
	}
}

func (c *checker) serveVerdict(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var v verdict
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
	c.mu.Lock()
	first := !c.gotVerdict
	c.gotVerdict = true
	c.mu.Unlock()
	if first {
		c.verdict <- v
	}
}

// sharedAssets builds the assets once per process (the tests make several checkers; the noise images
// take seconds under the race detector). Checkers only read them.
var sharedAssets = sync.OnceValues(buildAssets)

func newChecker(sseEvents int, sseInterval, minGap time.Duration) (*checker, error) {
	assets, err := sharedAssets()
	if err != nil {
		return nil, err
	}
	c := &checker{
		assets: assets, byURL: map[string]*asset{}, assetsOK: map[string]bool{},
		sseEvents: sseEvents, sseInterval: sseInterval, minGap: minGap,
		verdict: make(chan verdict, 1),
	}
	for _, a := range assets {
		c.byURL[a.URL] = a
	}
	c.page, err = renderPage(c)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *checker) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", c.servePage)
	mux.HandleFunc("/a/", c.serveAsset)
	mux.HandleFunc("/ws", c.serveWS)
	mux.HandleFunc("/sse", c.serveSSE)
	mux.HandleFunc("/verdict", c.serveVerdict)
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	return mux
}

// report prints the summary and returns whether the check passed. v is nil when no verdict came.
func (c *checker) report(v *verdict, waited time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var fails []string
	if v == nil {
		fails = append(fails, fmt.Sprintf("no verdict from the page within %s (did the page itself load?)", waited))
	} else {
		fails = append(fails, v.Failures...)
	}
	if n := len(c.assetsOK); n != len(c.assets) {
		fails = append(fails, fmt.Sprintf("origin: %d of %d assets arrived with the whole cookie jar", n, len(c.assets)))
	}
	if !c.wsHandshake {
		fails = append(fails, "origin: no WebSocket handshake arrived with the whole cookie jar")
	}
	if c.sseSent != c.sseEvents {
		fails = append(fails, fmt.Sprintf("origin: sent %d of %d events", c.sseSent, c.sseEvents))
	}
	for _, p := range c.problems {
		fails = append(fails, "origin: "+p)
	}
	pass := len(fails) == 0

	kinds := map[string]int{}
	var total int64
	for _, a := range c.assets {
		kinds[a.Kind]++
		total += int64(a.Size)
	}
	var ks []string
	for _, k := range assetCounts {
		ks = append(ks, fmt.Sprintf("%s %d", k.kind, kinds[k.kind]))
	}
	if pass {
		fmt.Println("browser-check: PASS")
	} else {
		fmt.Println("browser-check: FAIL")
	}
	if v != nil {
		fmt.Printf("  assets:     %d of %d loaded and verified in the page (%s; %.1f MB)\n", v.AssetsLoaded, v.Assets, strings.Join(ks, ", "), float64(total)/1e6)
	} else {
		fmt.Printf("  assets:     %d (%s; %.1f MB); no verdict from the page\n", len(c.assets), strings.Join(ks, ", "), float64(total)/1e6)
	}
	fmt.Printf("  origin:     %d of %d assets arrived with the whole jar; %d requests checked\n", len(c.assetsOK), len(c.assets), c.checked)
	fmt.Printf("  cookies:    %d cookies, Cookie header %d bytes expected; seen by the origin: %d..%d bytes",
		cookieCount, cookieHeaderLen(), c.minCookie, c.maxCookie)
	if v != nil {
		fmt.Printf("; document.cookie %d bytes", v.CookieBytes)
	}
	fmt.Printf("\n  heads:      largest request head at the origin %d bytes (with a %d-byte Referer/X-Pad/query)\n", c.maxHead, padLen)
	if v != nil {
		fmt.Printf("  websocket:  %d of %d messages echoed, checked in the page (largest %d bytes); origin echoed %d\n", v.WSEchoed, v.WSSent, v.WSLargest, c.wsEchoed)
		gaps := "none"
		for i, g := range v.SSEGaps {
			if i == 0 {
				gaps = ""
			} else {
				gaps += ", "
			}
			gaps += fmt.Sprintf("%.0f", g)
		}
		if len(v.SSEGaps) > 0 {
			gaps += " ms"
		}
		fmt.Printf("  sse:        %d of %d events; arrival gaps %s (sent %s apart; each must be >= %s)\n",
			v.SSEEvents, c.sseEvents, gaps, c.sseInterval, c.minGap)
		fmt.Printf("  page:       done in %.0f ms; %s\n", v.ElapsedMs, v.UserAgent)
	} else {
		fmt.Printf("  websocket:  origin echoed %d messages\n  sse:        origin sent %d of %d events\n", c.wsEchoed, c.sseSent, c.sseEvents)
	}
	if !pass {
		fmt.Printf("  failures (%d):\n", len(fails))
		// At most two of each kind (img, js, css, fetch, websocket, sse, origin, ...), so that one
		// cause that fails all 60 assets does not hide the others.
		perKind, hidden := map[string]int{}, map[string]int{}
		var kinds []string
		for _, f := range fails {
			k, _, _ := strings.Cut(f, " ")
			if perKind[k] == 0 {
				kinds = append(kinds, k)
			}
			if perKind[k]++; perKind[k] <= 2 {
				fmt.Println("    - " + f)
			} else {
				hidden[k]++
			}
		}
		for _, k := range kinds {
			if hidden[k] > 0 {
				fmt.Printf("    ... and %d more %q failures\n", hidden[k], strings.TrimSuffix(k, ":"))
			}
		}
		summarizeStatuses(fails)
	}
	return pass
}

// summarizeStatuses counts the "→ NNN" statuses that the page's failure lines name.
func summarizeStatuses(fails []string) {
	counts := map[string]int{}
	for _, f := range fails {
		if i := strings.Index(f, "→ "); i >= 0 {
			s := f[i+len("→ "):]
			if j := strings.IndexByte(s, ')'); j >= 0 {
				s = s[:j]
			}
			counts[s]++
		}
	}
	if len(counts) == 0 {
		return
	}
	var ss []string
	for s, n := range counts {
		ss = append(ss, fmt.Sprintf("%d × %s", n, s))
	}
	sort.Strings(ss)
	fmt.Printf("  statuses of the failed requests (re-fetched by the page): %s\n", strings.Join(ss, "; "))
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	timeout := flag.Duration("timeout", 120*time.Second, "how long to wait for the page's verdict")
	sseEvents := flag.Int("sse-events", 5, "events on /sse")
	sseInterval := flag.Duration("sse-interval", 300*time.Millisecond, "time between events")
	minGap := flag.Duration("min-gap", 100*time.Millisecond, "the smallest arrival gap between events the page accepts")
	freePorts := flag.Int("free-ports", 0, "print this many free 127.0.0.1 ports, one a line, and exit")
	flag.Parse()
	log.SetPrefix("browsercheck: ")
	log.SetFlags(0)

	if *freePorts > 0 {
		// Held together until all are known, so that they differ; the caller binds them right after.
		var lns []net.Listener
		for i := 0; i < *freePorts; i++ {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				log.Fatal(err)
			}
			lns = append(lns, ln)
			fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		}
		for _, ln := range lns {
			ln.Close()
		}
		return
	}

	c, err := newChecker(*sseEvents, *sseInterval, *minGap)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.Default()}
	go srv.Serve(ln)
	log.Printf("origin on %s; waiting up to %s for the page's verdict", ln.Addr(), *timeout)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var v *verdict
	select {
	case got := <-c.verdict:
		v = &got
	case <-time.After(*timeout):
	case s := <-sig:
		log.Printf("stopped by %v", s)
		os.Exit(2)
	}
	if !c.report(v, *timeout) {
		os.Exit(1)
	}
}
