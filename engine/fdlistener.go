package engine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"
)

// fdListener is a net.Listener over an inherited listening socket (a binary upgrade, handover.go), for the
// [tls] and [admin] listeners. net.FileListener will not do: it takes the descriptor with os.File.Fd,
// which puts the socket in blocking mode until it sets its duplicate non-blocking again, and that flag
// belongs to the socket that the old process is still accepting on with Go's poller: an accept of the old
// process in that window could block a thread until a connection comes, and its Close wait for that.
// fdListener never changes the flag: it waits for readability through the file's RawConn and accepts
// with accept4 itself.
type fdListener struct {
	f      *os.File
	rc     syscall.RawConn
	addr   net.Addr
	closed atomic.Bool
}

// newFDListener takes fd, which must be a listening TCP socket; the listener owns it from then on (also
// when it fails: fd is closed).
func newFDListener(fd int) (*fdListener, error) {
	if on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || on == 0 {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("inherited descriptor %d is not a listening socket (%v)", fd, err)
	}
	syscall.CloseOnExec(fd)
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		_ = syscall.Close(fd)
		return nil, os.NewSyscallError("getsockname", err)
	}
	var addr net.Addr
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		addr = &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *syscall.SockaddrInet6:
		addr = &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	default:
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("inherited descriptor %d is not a TCP socket", fd)
	}
	// Non-blocking already (the old process's Go runtime or gnet made it so); NewFile then puts it
	// on Go's poller, which RawConn.Read waits on.
	f := os.NewFile(uintptr(fd), "listener")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &fdListener{f: f, rc: rc, addr: addr}, nil
}

// Accept waits for a connection and accepts it.
func (l *fdListener) Accept() (net.Conn, error) {
	var nfd int
	var aerr error
	err := l.rc.Read(func(fd uintptr) bool {
		for {
			nfd, _, aerr = syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			if aerr != syscall.EINTR && aerr != syscall.ECONNABORTED {
				break
			}
		}
		return aerr != syscall.EAGAIN // false: wait for the socket to be readable
	})
	if err != nil && l.closed.Load() {
		return nil, net.ErrClosed
	}
	if err == nil {
		err = aerr // a connection accepted as Close ran is still served
	}
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: os.NewSyscallError("accept4", err)}
	}
	f := os.NewFile(uintptr(nfd), "tcp")
	c, err := net.FileConn(f) // a dup of nfd; the flags it changes are this connection's own
	_ = f.Close()
	return c, err
}

// Close stops accepting: Accept returns net.ErrClosed. The socket itself stays open in any other
// process that holds it.
func (l *fdListener) Close() error {
	if l.closed.Swap(true) {
		return net.ErrClosed
	}
	return l.f.Close()
}

// Addr is the address the socket is bound to.
func (l *fdListener) Addr() net.Addr { return l.addr }

// SyscallConn gives the descriptor, for passing it on to the next process (dupListener).
func (l *fdListener) SyscallConn() (syscall.RawConn, error) {
	if l.closed.Load() {
		return nil, errors.New("listener closed")
	}
	return l.rc, nil
}
