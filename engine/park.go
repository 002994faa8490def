package engine

import (
	"net"
	"os"
	"syscall"

	"github.com/panjf2000/gnet/v2"
)

// Backpressure, upload direction (SPEC 3.3; the response direction is parkBackend in backend.go, and
// doc.go says why parking). When more than half of io_buffer of a request body waits in gnet's buffer for a
// backend that reads slowly, the client's socket is parked: duplicated, gnet's conn for it closed from
// its own OnTraffic (gnet's close does not shut the socket down), and nobody reads the duplicate, so TCP
// flow control holds the client back. The sweep hands the socket back to the loop once the backend has
// drained to a quarter of io_buffer. A parked client keeps its slab, its backend and its place on the loop's
// client list; only its gnet conn is gone (cc.gc is nil and cc.parked is set), so everything that would
// write to it or close it goes through closeParked instead.
//
// Parking happens only with gnet's inbound buffer for the client empty (everything read has been
// forwarded), so no byte is lost; bytes the client sends while parked wait in the kernel. A client that
// closes or resets while parked is seen when it is resumed, as gnet reads the EOF or the error.

// parkClient parks cc from its own OnTraffic; the returned Close makes gnet drop its conn.
func (ls *loopState) parkClient(cc *clientConn) gnet.Action {
	fd, err := cc.gc.Dup()
	if err != nil {
		return gnet.None // cannot park: keep forwarding, bounded only by the backend
	}
	cc.parked, cc.parkedFD, cc.gc = true, fd, nil
	cc.deadline = ls.clock() + int64(ls.lt.tbl.idleTimeout) // a backend that stops reading altogether
	return gnet.Close
}

// maybeResumeClient runs from the sweep, and from backendTraffic when the backend answers while its
// client is parked (force): the client socket goes back to the loop once the backend has drained.
func (ls *loopState) maybeResumeClient(cc *clientConn, force bool) {
	if cc.parkedFD < 0 {
		return // already on its way back
	}
	be := cc.be
	if be == nil || be.gc == nil || (be.state != bsActive && be.state != bsTunnel) {
		ls.closeParked(cc, 502)
		return
	}
	if !force && be.gc.OutboundBuffered() > ls.s.ioBuffer/4 {
		return
	}
	fd := cc.parkedFD
	cc.parkedFD = -1
	if err := ls.adoptFD(fd, "parked-client", cc, ls.onClientResumeFail); err != nil {
		ls.clientResumeFailed(cc, err)
	}
}

// adoptFD hands a parked socket back to the loop: OnOpen follows with ctx as its context, or onFail.
// The descriptor is consumed either way.
func (ls *loopState) adoptFD(fd int, name string, ctx any, onFail func(any, error)) error {
	f := os.NewFile(uintptr(fd), name)
	nc, err := net.FileConn(f) // dups the descriptor; f's own is closed next
	_ = f.Close()
	if err != nil {
		return err
	}
	if err = ls.s.dialer.Adopt(ls.loop, nc, ctx, onFail); err != nil {
		_ = nc.Close()
	}
	return err
}

// clientResumed runs in OnOpen of a parked client socket handed back to the loop.
func (ls *loopState) clientResumed(cc *clientConn, c gnet.Conn) {
	if cc.state == csClosed {
		_ = c.Close() // given up while on its way back; OnClose finds it closed and does nothing
		return
	}
	cc.gc, cc.parked = c, false
	cc.deadline = 0
	// The backend may have answered while the client was parked: its bytes wait in gnet's buffer.
	if be := cc.be; be != nil && be.gc != nil && (be.state == bsActive || be.state == bsTunnel) && be.gc.InboundBuffered() > 0 {
		ls.backendTraffic(be)
	}
}

// clientResumeFailed: the parked socket could not be handed back; the request is lost.
func (ls *loopState) clientResumeFailed(ctx any, err error) {
	cc := ctx.(*clientConn)
	if cc.state == csClosed {
		return
	}
	ls.s.log.Warn("cannot resume a parked client connection", "error", err)
	ls.clientGone(cc)
}

// closeParked ends a parked client: status (0 for none), if no response has started, is written straight
// to the socket — a prebuilt answer of a few hundred bytes to a socket whose send buffer is empty — and
// the socket closed. Then everything the client held is released as OnClose would.
func (ls *loopState) closeParked(cc *clientConn, status int) {
	if fd := cc.parkedFD; fd >= 0 {
		if status != 0 && !cc.respStarted {
			b := ls.rs.get(status, false, cc.headRequest())
			ls.recordPrebuilt(cc, status, b, false)
			_, _ = syscall.Write(fd, b)
		}
		_ = syscall.Close(fd)
		cc.parkedFD = -1
	}
	// A client on its way back (parkedFD already handed over) is closed when its OnOpen arrives.
	ls.clientGone(cc)
}
