package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/panjf2000/gnet/v2"
)

// pair is the shared context of a client connection and its backend.
type pair struct {
	cl, be  gnet.Conn
	pending []byte // client bytes that arrived before the backend opened
	done    bool   // one side closed; the other is being closed
}

type forwarder struct {
	gnet.BuiltinEventEngine
	upstream net.Addr
}

func (f *forwarder) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if p, ok := c.Context().(*pair); ok { // a backend, registered by its client below
		if p.done {
			return nil, gnet.Close
		}
		p.be = c
		out := p.pending
		p.pending = nil
		return out, gnet.None
	}
	p := &pair{cl: c}
	c.SetContext(p)
	res, err := c.EventLoop().Register(gnet.NewContext(context.Background(), p), f.upstream)
	if err != nil {
		return nil, gnet.Close
	}
	// The dial runs on gnet's pool; a failed one must close the client, and a
	// callback may not wait on the channel, so a goroutine does (a peer, not
	// the proxy path: one goroutine per connection is acceptable here).
	go func() {
		if r, ok := <-res; !ok || r.Err != nil {
			_ = c.Close()
		}
	}()
	return nil, gnet.None
}

func (f *forwarder) OnTraffic(c gnet.Conn) gnet.Action {
	p := c.Context().(*pair)
	buf, _ := c.Next(-1)
	switch {
	case c == p.be:
		_, _ = p.cl.Write(buf)
	case p.be == nil:
		p.pending = append(p.pending, buf...)
	default:
		_, _ = p.be.Write(buf)
	}
	return gnet.None
}

func (f *forwarder) OnClose(c gnet.Conn, _ error) gnet.Action {
	p, ok := c.Context().(*pair)
	if !ok || p.done {
		return gnet.None
	}
	p.done = true
	if c == p.cl && p.be != nil {
		_ = p.be.Close()
	} else if c == p.be {
		_ = p.cl.Close()
	}
	return gnet.None
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8086", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:9001", "upstream address host:port")
	loops := flag.Int("loops", 1, "event loops")
	flag.Parse()

	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		os.Exit(0)
	}()
	if err := run(*listen, *upstream, *loops); err != nil {
		log.Fatal(err)
	}
}

// run forwards listen to upstream until the engine stops (gnet.Stop).
func run(listen, upstream string, loops int) error {
	up, err := net.ResolveTCPAddr("tcp", upstream)
	if err != nil {
		return err
	}
	return gnet.Run(&forwarder{upstream: up}, "tcp://"+listen,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(loops),
		gnet.WithReuseAddr(true),
		gnet.WithReadBufferCap(64<<10), // SwitchFlow's io_buffer default
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithTCPKeepAlive(0))
}
