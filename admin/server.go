package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// MaxConns bounds the admin listener's open connections (SPEC 4: it shares the process's descriptors with
// the proxy and must never take those the proxy needs). Past it, new connections wait in the kernel's
// accept queue until one closes; the timeouts of Serve close those that hold a slot doing nothing.
const MaxConns = 64

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
			IdleTimeout:       15 * time.Second, // a keep-alive scraper's next request comes sooner
			MaxHeaderBytes:    16 << 10,
		},
		ln:   newLimitListener(ln, MaxConns),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.hs.Serve(s.ln) // http.ErrServerClosed after Close; a failed listener ends it too
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

// limitListener accepts only while fewer than cap of its connections are open, and rides out a lack of
// descriptors itself: net/http would retry at once after 5 ms and log every failure.
type limitListener struct {
	net.Listener
	slots     chan struct{} // one token per open connection
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection. While accept fails for lack of descriptors it
// retries after a pause that doubles from 10 ms to 1 s: the connection waits in the kernel's queue.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	pause := 10 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return &limitConn{Conn: c, free: l.free}, nil
		}
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) &&
			!errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.ENOMEM) {
			l.free()
			return nil, err
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			l.free()
			return nil, net.ErrClosed
		}
		pause = min(2*pause, time.Second)
	}
}

func (l *limitListener) free() { <-l.slots }

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back on its first Close.
type limitConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}
