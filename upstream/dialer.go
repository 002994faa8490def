package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// ErrDialQueueFull is returned by Dial when more dials wait than the queue holds.
var ErrDialQueueFull = errors.New("upstream: dial queue full")

// ErrDialerClosed is returned by Dial after Close.
var ErrDialerClosed = errors.New("upstream: dialer closed")

// DescriptorShortage reports whether err is the proxy running out of file descriptors (EMFILE for the
// process, ENFILE for the system): a dial or a health check that fails so failed before reaching the
// server, and says nothing about it (SPEC 3.3).
func DescriptorShortage(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// DialFailure is called on the loop that asked for the dial when it failed; ctx is the value given to Dial.
type DialFailure func(ctx any, err error)

type dialJob struct {
	loop     gnet.EventLoop
	addr     *net.TCPAddr
	tls      *tls.Config // nil: plain TCP
	deadline time.Time
	ctx      any
	onFail   DialFailure
}

// Dialer opens backend connections without blocking an event loop. gnet's EventLoop.Register dials with
// no timeout on a pool goroutine and reports a failure only on a channel that no callback may wait on, so
// SwitchFlow does the same thing in two halves it controls: a fixed set of workers dials with
// connect_timeout, then EventLoop.Enroll hands the socket to the client's loop, which calls OnOpen there
// with ctx as the connection's context. A failure comes back to the same loop through EventLoop.Execute.
//
// For an HTTPS server the worker also runs the TLS handshake, right after the TCP connect and within the
// same connect_timeout (one budget for "a usable connection", whatever its parts cost), so that no loop
// ever waits for a handshake's round trips or spends its 0.1-0.3 ms of CPU; a failed handshake comes back
// as a *HandshakeError. The socket then goes to the loop with the record layer (tlsrec) for the loop to
// install as its transform (Secured, tls.go).
type Dialer struct {
	// RecvBuffer, when > 0, fixes each backend socket's receive buffer (SO_RCVBUF, set before connecting
	// so the window scale fits it), which turns the kernel's autotuning off: what a backend can have
	// queued in the kernel for a client that reads slowly stays bounded. Set before the first Dial.
	RecvBuffer int

	jobs   chan dialJob
	quit   chan struct{} // closed by Close: the loops are gone, nothing in flight will be answered
	ctx    context.Context
	cancel context.CancelFunc // ends connects and handshakes in flight at Close
	wg     sync.WaitGroup
	mu     sync.RWMutex
	closed bool
}

// NewDialer starts workers dialing goroutines with a queue of queue jobs.
func NewDialer(workers, queue int) *Dialer {
	d := &Dialer{jobs: make(chan dialJob, queue), quit: make(chan struct{})}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for i := 0; i < workers; i++ {
		d.wg.Add(1)
		go d.work()
	}
	return d
}

// Dial asks for a connection to addr on loop, over TLS with conf when conf is not nil. Exactly one of two
// things follows, both on loop: OnOpen for a connection whose Context() is ctx (a *Secured holding ctx
// for a TLS connection), or onFail(ctx, err). An error returned here means neither follows. Safe from
// any goroutine; never blocks.
func (d *Dialer) Dial(loop gnet.EventLoop, addr *net.TCPAddr, conf *tls.Config, timeout time.Duration, ctx any, onFail DialFailure) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return ErrDialerClosed
	}
	select {
	case d.jobs <- dialJob{loop: loop, addr: addr, tls: conf, deadline: time.Now().Add(timeout), ctx: ctx, onFail: onFail}:
		return nil
	default:
		return ErrDialQueueFull
	}
}

// Close stops the workers; call it once the engine has stopped. Queued jobs are dropped, and a worker
// waiting for a loop to take a connection gives up: gnet (v2.9.7) never answers an Enroll whose loop
// stopped before registering it, and waiting for that answer would hang shutdown for good.
func (d *Dialer) Close() {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.quit)
		d.cancel()
		close(d.jobs)
	}
	d.mu.Unlock()
	d.wg.Wait()
}

func (d *Dialer) work() {
	defer d.wg.Done()
	for j := range d.jobs {
		d.dial(j)
	}
}

var (
	errConnectTimeout = &net.OpError{Op: "dial", Net: "tcp", Err: errTimeout{}}
	errEnrollFailed   = errors.New("upstream: the event loop did not take the connection")
)

type errTimeout struct{}

func (errTimeout) Error() string { return "connect timeout" }
func (errTimeout) Timeout() bool { return true }

func (d *Dialer) dial(j dialJob) {
	fail := func(err error) {
		// Execute fails only when the engine is shutting down; the loop is gone then and nobody waits.
		_ = j.loop.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			j.onFail(j.ctx, err)
			return nil
		}))
	}
	select {
	case <-d.quit:
		return
	default:
	}
	timeout := time.Until(j.deadline)
	if timeout <= 0 {
		fail(errConnectTimeout) // waited in the queue for the whole connect_timeout
		return
	}
	nd := net.Dialer{Timeout: timeout}
	if d.RecvBuffer > 0 {
		size := d.RecvBuffer
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
			})
		}
	}
	ctx, cancel := context.WithDeadline(d.ctx, j.deadline)
	defer cancel()
	conn, err := nd.DialContext(ctx, "tcp", j.addr.String())
	if err != nil {
		fail(err)
		return
	}
	open := j.ctx
	if j.tls != nil {
		rec, err := secure(ctx, conn, j.tls)
		if err != nil {
			_ = conn.Close()
			fail(err)
			return
		}
		open = &Secured{Ctx: j.ctx, Rec: rec}
	}
	res, err := j.loop.Enroll(gnet.NewContext(context.Background(), open), conn)
	if err != nil {
		_ = conn.Close()
		fail(err)
		return
	}
	// Waiting here is safe: this is a dialer goroutine, not a loop callback. Enroll closes conn itself.
	select {
	case r, ok := <-res:
		switch {
		case !ok || (r.Err == nil && r.Conn == nil):
			// gnet's enroll runs on its worker pool, which swallows a panic and closes the channel
			// empty; nothing was registered, so the loop must hear of a failure.
			fail(errEnrollFailed)
		case r.Err != nil:
			fail(r.Err)
		}
	case <-d.quit:
	}
}
