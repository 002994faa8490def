// Copyright (c) 2021 The Gnet Authors. All rights reserved.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"github.com/panjf2000/gnet/v2/pkg/queue"
	"github.com/panjf2000/gnet/v2/pkg/socket"
)

func (el *eventloop) accept0(fd int, _ netpoll.IOEvent, _ netpoll.IOFlags) error {
	for {
		nfd, sa, err := socket.Accept(fd)
		switch err {
		case nil:
		case unix.EAGAIN: // the Accept queue has been drained out, we can return now
			return nil
		case unix.EINTR, unix.ECONNRESET, unix.ECONNABORTED:
			// ECONNRESET or ECONNABORTED could indicate that a socket
			// in the Accept queue was closed before we Accept()ed it.
			// It's a silly error, let's retry it.
			continue
		default:
			if acceptRetry(err) { // SwitchFlow patch: see acceptRetry
				continue
			}
			if acceptShortage(err) { // SwitchFlow patch: see pauseAccepting
				el.pauseAccepting(err)
				return nil
			}
			el.getLogger().Errorf("Accept() failed due to error: %v", err)
			return errors.ErrAcceptSocket
		}

		el.acceptPause = 0 // SwitchFlow patch: an accept succeeded, the next shortage backs off from the start
		remoteAddr := socket.SockaddrToTCPOrUnixAddr(sa)
		network := el.listeners[fd].network
		if opts := el.engine.opts; opts.TCPKeepAlive > 0 && network == "tcp" &&
			(runtime.GOOS != "linux" && runtime.GOOS != "freebsd" && runtime.GOOS != "dragonfly") {
			// TCP keepalive options are not inherited from the listening socket
			// on platforms other than Linux, FreeBSD, or DragonFlyBSD.
			// We therefore need to set them on the accepted socket explicitly.
			//
			// Check out https://github.com/nginx/nginx/pull/337 for details.
			if err = setKeepAlive(
				nfd,
				true,
				opts.TCPKeepAlive,
				opts.TCPKeepInterval,
				opts.TCPKeepCount); err != nil {
				el.getLogger().Errorf("failed to set TCP keepalive on fd=%d: %v", fd, err)
			}
		}

		el := el.engine.eventLoops.next(remoteAddr)
		c := newStreamConn(network, nfd, el, sa, el.listeners[fd].addr, remoteAddr)
		c.soleFD = true // SwitchFlow patch: see eventloop.close
		err = el.poller.Trigger(queue.HighPriority, el.register, c)
		if err != nil {
			el.getLogger().Errorf("failed to enqueue the accepted socket fd=%d to poller: %v", c.fd, err)
			_ = unix.Close(nfd)
			c.release()
		}
	}
}

func (el *eventloop) accept(fd int, ev netpoll.IOEvent, flags netpoll.IOFlags) error {
	network := el.listeners[fd].network
	if network == "udp" {
		return el.readUDP(fd, ev, flags)
	}

	// SwitchFlow patch (third_party/README.md): accept up to acceptBatch connections per readiness event,
	// as nginx's multi_accept does. One per event left a burst of new connections in the kernel's queue
	// for a whole pass over every ready connection each: at 1,024 busy connections, about 30 a second.
	for i := 0; i < acceptBatch; i++ {
		nfd, sa, err := socket.Accept(fd)
		switch err {
		case nil:
		case unix.EAGAIN:
			return nil
		case unix.EINTR, unix.ECONNRESET, unix.ECONNABORTED:
			// ECONNRESET or ECONNABORTED could indicate that a socket
			// in the Accept queue was closed before we Accept()ed it.
			// It's a silly error, let's retry it.
			continue
		default:
			if acceptRetry(err) { // SwitchFlow patch: see acceptRetry
				continue
			}
			if acceptShortage(err) { // SwitchFlow patch: see pauseAccepting
				el.pauseAccepting(err)
				return nil
			}
			el.getLogger().Errorf("Accept() failed due to error: %v", err)
			return errors.ErrAcceptSocket
		}

		el.acceptPause = 0 // SwitchFlow patch: an accept succeeded, the next shortage backs off from the start
		remoteAddr := socket.SockaddrToTCPOrUnixAddr(sa)
		if opts := el.engine.opts; opts.TCPKeepAlive > 0 && el.listeners[fd].network == "tcp" &&
			(runtime.GOOS != "linux" && runtime.GOOS != "freebsd" && runtime.GOOS != "dragonfly") {
			// TCP keepalive options are not inherited from the listening socket
			// on platforms other than Linux, FreeBSD, or DragonFlyBSD.
			// We therefore need to set them on the accepted socket explicitly.
			//
			// Check out https://github.com/nginx/nginx/pull/337 for details.
			if err = setKeepAlive(
				nfd,
				true,
				opts.TCPKeepAlive,
				opts.TCPKeepInterval,
				opts.TCPKeepCount); err != nil {
				el.getLogger().Errorf("failed to set TCP keepalive on fd=%d: %v", fd, err)
			}
		}

		c := newStreamConn(network, nfd, el, sa, el.listeners[fd].addr, remoteAddr)
		c.soleFD = true // SwitchFlow patch: see eventloop.close
		if err = el.register0(c); err != nil {
			return err
		}
	}
	return nil
}

// acceptBatch is the most connections accept takes per readiness event (SwitchFlow patch).
const acceptBatch = 128

// SwitchFlow patch (third_party/README.md, 11): running out of descriptors, or of kernel memory for
// sockets, no longer ends the event loop (upstream returned ErrAcceptSocket, which stops the loop and
// with it the engine: every connection of every loop closed). The loop stops watching its listeners
// instead, tells the handler (AcceptErrorHandler), and watches them again after a pause that doubles
// from acceptPauseMin to acceptPauseMax while the shortage lasts. The connections that arrive meanwhile
// wait in the kernel's accept queue (as with nginx), and the loop goes on serving those it has.

// AcceptErrorHandler is an optional method of an EventHandler: OnAcceptError is called when accepting
// paused for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM), with that error, at most once per
// pause of each loop (or of the acceptor, without SO_REUSEPORT). It runs on the goroutine that accepts
// and must not block. (SwitchFlow patch.)
type AcceptErrorHandler interface {
	OnAcceptError(err error)
}

const (
	acceptPauseMin = 10 * time.Millisecond
	acceptPauseMax = time.Second
)

// acceptShortage reports an accept error that a lack of resources caused: it will pass once
// descriptors or memory are freed, and retrying at once would only spin (the connection stays queued,
// and the listener readable).
func acceptShortage(err error) bool {
	switch err {
	case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
		return true
	}
	return false
}

// acceptRetry reports an accept error that concerns one connection, not the listener: accept(2) passes
// a pending network error of the new connection on, and a firewall may refuse one (EPERM). The next
// connection in the queue may be fine.
func acceptRetry(err error) bool {
	switch err {
	case unix.EPERM, unix.EPROTO, unix.ENOPROTOOPT, unix.EOPNOTSUPP,
		unix.ENETDOWN, unix.ENETUNREACH, unix.EHOSTDOWN, unix.EHOSTUNREACH:
		return true
	}
	return false
}

// pauseAccepting stops watching el's listeners after a shortage and schedules resumeAccepting. Loop
// only (or the acceptor's goroutine).
func (el *eventloop) pauseAccepting(err error) {
	for fd := range el.listeners {
		_ = el.poller.Delete(fd)
	}
	switch el.acceptPause *= 2; {
	case el.acceptPause < acceptPauseMin:
		el.acceptPause = acceptPauseMin
	case el.acceptPause > acceptPauseMax:
		el.acceptPause = acceptPauseMax
	}
	if h, ok := el.eventHandler.(AcceptErrorHandler); ok {
		h.OnAcceptError(err)
	} else {
		el.getLogger().Warnf("Accept() failed due to error: %v; accepting again in %v", err, el.acceptPause)
	}
	// A timer, not a sleep: the loop goes on serving its connections in the meantime.
	time.AfterFunc(el.acceptPause, func() {
		if el.engine.concurrency.ctx.Err() != nil {
			return // the engine is stopping: its pollers may be closed already
		}
		_ = el.poller.Trigger(queue.HighPriority, el.resumeAccepting, nil)
	})
}

// resumeAccepting watches el's listeners again, except those that StopAccepting has taken out of the
// listening state meanwhile. Loop only (or the acceptor's goroutine).
func (el *eventloop) resumeAccepting(any) error {
	accept, edgeTriggered := el.accept, false
	if el == el.engine.ingress {
		accept, edgeTriggered = el.accept0, true // as activateReactors adds them
	}
	for _, ln := range el.listeners {
		if on, err := unix.GetsockoptInt(ln.fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on == 0 {
			continue
		}
		_ = el.poller.AddRead(ln.packPollAttachment(accept), edgeTriggered)
	}
	return nil
}
