// Tunnels: after a 101 to a WebSocket upgrade, bytes pass both ways untouched.

package engine

import "github.com/panjf2000/gnet/v2"

// startTunnel switches an upgraded exchange to byte passing (SPEC 3.1: Upgrade after a 101). The
// backend connection is spent: it is closed with the tunnel, never pooled. The tunnel lives until either
// side closes or both stay silent for idle_timeout.
func (ls *loopState) startTunnel(cc *clientConn, be *backendConn) {
	ls.endCount(be)
	be.headDone = true
	be.state = bsTunnel
	be.held = false
	ls.armBackend(be) // no clock: the tunnel's is the client's
	cc.state = csTunnel
	cc.respStarted = true
	cc.status = 101 // recorded when the tunnel ends
	// Bytes the client sent after its request head (the first frames of the new protocol) go first.
	if cc.pos < cc.filled {
		_, _ = be.gc.Write(cc.buf()[cc.pos:cc.filled])
		cc.pos = cc.filled
	}
	ls.tunnelCopy(cc.gc, be.gc, cc)
	ls.tunnelCopy(be.gc, cc.gc, cc)
}

// capTunnel closes a tunnel whose queue grows past 8 × io_buffer in one direction anyway: holdTunnel
// pauses reading long before that, so this is a last bound, not the flow control. Loop only.
func (ls *loopState) capTunnel(cc *clientConn, be *backendConn) {
	if cc.state != csTunnel || be.state != bsTunnel {
		return
	}
	limit := 8 * ls.s.ioBuffer
	if cc.gc.OutboundBuffered() <= limit && be.gc.OutboundBuffered() <= limit {
		return
	}
	ls.s.log.Warn("tunnel closed: both ends send faster than they read",
		"client", cc.ip.String(), "upstream", be.srv.Upstream, "server", be.srv.Name)
	ls.dropClient(cc)
}

// tunnelCopy moves whatever from has buffered to to, and restarts the tunnel's idle clock.
func (ls *loopState) tunnelCopy(from, to gnet.Conn, cc *clientConn) {
	if in, _ := from.Peek(-1); len(in) > 0 {
		_, _ = to.Write(in)
		discard(from, len(in))
		if to == cc.gc {
			cc.bodySent += int64(len(in))
			ls.st.bytesOut.Add(uint64(len(in)))
		} else {
			ls.st.bytesIn.Add(uint64(len(in)))
		}
	}
	ls.armClient(cc)
}

// holdTunnel stops reading from while more than half of io_buffer waits to be written to to (SPEC 3.3:
// reading from the other side pauses until the slow side catches up). Server.OnDrained resumes it once
// to's queue is written out; meanwhile TCP flow control holds from's sender back. Loop only.
func (ls *loopState) holdTunnel(from, to gnet.Conn) {
	if to.OutboundBuffered() > ls.s.ioBuffer/2 {
		_ = from.PauseRead()
	}
}
