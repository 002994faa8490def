package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// TestForwardsBothWaysAndCloses runs the forwarder against a real TCP echo
// backend: bytes sent before and after the backend opens come back whole and
// in order, and a client that closes takes its backend connection with it.
func TestForwardsBothWaysAndCloses(t *testing.T) {
	back, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	backendClosed := make(chan struct{}, 4)
	go func() {
		for {
			c, err := back.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(c, c) // echo until the forwarder closes its side
				c.Close()
				backendClosed <- struct{}{}
			}()
		}
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	done := make(chan error, 1)
	go func() { done <- run(addr, back.Addr().String(), 1) }()
	defer func() {
		//lint:ignore SA1019 run keeps its Engine to itself, and this process runs only that one
		_ = gnet.Stop(context.Background(), "tcp://"+addr)
		<-done
	}()

	var c net.Conn
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// The first bytes race the backend's dial; the rest follow once it is open.
	want := append([]byte("first "), bytes.Repeat([]byte("0123456789"), 100_000)...)
	go func() { _, _ = c.Write(want) }()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read back %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes came back changed")
	}
	c.Close()
	select {
	case <-backendClosed:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend connection stayed open after its client closed")
	}
}
