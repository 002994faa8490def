// SwitchFlow patch (third_party/README.md): stop accepting without stopping the loops, so that a graceful
// shutdown refuses new connections while the loops finish the requests in flight.

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package gnet

import (
	"golang.org/x/sys/unix"

	"github.com/panjf2000/gnet/v2/pkg/queue"
)

// StopAccepting takes every listening socket of the engine out of the listening state: connection
// attempts are refused from then on, while the event loops go on serving the connections they have.
// Each loop (and the acceptor, if any) stops watching its listeners and shuts them down itself; the
// sockets stay open, and the listener maps untouched, until Stop closes them. It returns once that is
// queued. Safe from any goroutine. (SwitchFlow patch.)
func (e Engine) StopAccepting() error {
	if err := e.Validate(); err != nil {
		return err
	}
	// start registers the loops after OnBoot has returned; this waits for it, or finds none yet.
	e.eng.startMu.Lock()
	defer e.eng.startMu.Unlock()
	var err error
	stopOn := func(el *eventloop) {
		if el == nil {
			return
		}
		if e := el.poller.Trigger(queue.HighPriority, func(any) error {
			for fd := range el.listeners {
				_ = el.poller.Delete(fd)
				// A listening TCP socket shut down for reading leaves the LISTEN state (Linux:
				// inet_shutdown → tcp_disconnect): SYNs are answered with a reset, queued
				// connections are reset too.
				_ = unix.Shutdown(fd, unix.SHUT_RD)
			}
			return nil
		}, nil); e != nil {
			err = e
		}
	}
	stopOn(e.eng.ingress)
	e.eng.eventLoops.iterate(func(_ int, el *eventloop) bool {
		stopOn(el)
		return true
	})
	return err
}
