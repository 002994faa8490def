package admin

import (
	"context"
	"net"
	"net/http"
	"time"
)

// NewHandler answers /metrics, /healthz and /status from src; any other path is 404 and any method
// but GET and HEAD on those paths 405.
func NewHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics", "/healthz", "/status":
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		switch r.URL.Path {
		case "/healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			if src.Draining() {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("draining\n"))
				return
			}
			_, _ = w.Write([]byte("ok\n"))
		case "/metrics":
			w.Header().Set("Content-Type", ContentType)
			_, _ = w.Write(AppendMetrics(make([]byte, 0, 8<<10), src.Snapshot()))
		case "/status":
			b, err := statusJSON(src.Snapshot())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		}
	})
}

// Listener is a running admin listener.
type Listener struct {
	hs   *http.Server
	ln   net.Listener
	done chan struct{}
}

// Serve answers on ln from src, on one goroutine of its own (net/http's, plus one per admin connection),
// until Close.
func Serve(ln net.Listener, src Source) *Listener {
	s := &Listener{
		hs: &http.Server{
			Handler:           NewHandler(src),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.hs.Serve(ln) // http.ErrServerClosed after Close; a failed listener ends it too
	}()
	return s
}

// Addr is the address the admin listener accepts on.
func (s *Listener) Addr() net.Addr { return s.ln.Addr() }

// Close stops the listener, lets answers being written finish for up to a second, and returns once the
// server's goroutine has ended.
func (s *Listener) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.hs.Shutdown(ctx); err != nil {
		_ = s.hs.Close()
	}
	<-s.done
}
