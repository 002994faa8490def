package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// How a TLS backend connection reaches its loop, until the record layer runs on the loops: the dialer
// worker runs the handshake over the TCP socket, then a unix socketpair carries the plaintext; one end
// is Enrolled on the client's loop, which takes it for an ordinary backend connection, and two copies
// move the bytes between the other end and the tls.Conn (the same shape as the client side's, design (b)
// of docs/ARCHITECTURE.md). The engine pools, reuses and closes it as any backend connection: a backend
// that closes ends the copy into the socketpair, which the loop sees as the close of its connection, and
// a connection the loop closes ends the copy out of it, which closes the TLS connection.
//
// Backpressure: each socketpair direction holds at most its buffer; a loop that stops reading (flow.go)
// fills it, which blocks the copy from the backend, which stops reading the backend's socket: TCP holds
// the backend back. A backend that reads nothing of an upload fills the other direction the same way.

// secured is a backend connection past its TLS handshake, ready to be Enrolled (enroll). run starts its
// copies once the loop has taken it; abandon releases it when the loop did not. Both do nothing on nil
// (a plain connection).
type secured struct {
	enroll net.Conn      // the socketpair end the loop gets
	mine   *net.UnixConn // the other end, the copies'
	tc     *tls.Conn
}

// bridgeWriteTimeout bounds one write to a backend that takes nothing of it: the copy toward the backend
// would otherwise wait on it for good after the loop closed the connection (the engine itself gives up
// on a stalled upload after idle_timeout).
const bridgeWriteTimeout = 5 * time.Minute

// secure runs the client handshake of conf over conn within ctx's deadline, then makes the socketpair.
// A handshake that fails is a *HandshakeError.
func (d *Dialer) secure(ctx context.Context, conn net.Conn, conf *tls.Config) (*secured, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, handshakeFailed(err)
	}
	_ = conn.SetDeadline(time.Time{})
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	if size := d.RecvBuffer / 4; size > 0 {
		for _, fd := range fds {
			_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, size)
		}
	}
	mine, err := fileConn(fds[0])
	if err != nil {
		_ = syscall.Close(fds[1])
		return nil, err
	}
	theirs, err := fileConn(fds[1])
	if err != nil {
		_ = mine.Close()
		return nil, err
	}
	return &secured{enroll: theirs, mine: mine, tc: tc}, nil
}

// fileConn wraps a socketpair descriptor in a *net.UnixConn; fd is its own after.
func fileConn(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "tls-backend")
	c, err := net.FileConn(f) // a dup of fd
	_ = f.Close()
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		_ = c.Close()
		return nil, errors.New("socketpair: not a unix socket")
	}
	return uc, nil
}

// abandon closes what a loop never took.
func (s *secured) abandon() {
	if s == nil {
		return
	}
	_ = s.mine.Close()
	_ = s.tc.Close()
}

// run starts the copies of a connection the loop took.
func (s *secured) run() {
	if s == nil {
		return
	}
	go s.copies()
}

func (s *secured) copies() {
	fromBackend := make(chan struct{})
	go func() {
		defer close(fromBackend)
		buf := make([]byte, 16<<10) // tls.Conn.Read returns at most one record's plaintext
		for {
			n, err := s.tc.Read(buf)
			if n > 0 {
				if _, werr := s.mine.Write(buf[:n]); werr != nil {
					return // the loop closed the connection
				}
			}
			if err != nil {
				_ = s.mine.CloseWrite() // the loop reads the backend's close after its last byte
				return
			}
		}
	}()
	buf := make([]byte, 16<<10)
	for {
		n, err := s.mine.Read(buf)
		if n > 0 {
			_ = s.tc.SetWriteDeadline(time.Now().Add(bridgeWriteTimeout))
			if _, werr := s.tc.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break // the loop closed the connection
		}
	}
	_ = s.tc.Close() // ends the copy from the backend too
	<-fromBackend
	_ = s.mine.Close()
}
