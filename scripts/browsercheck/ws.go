package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// A minimal RFC 6455 echo server: the handshake, masked client frames, fragmented messages, ping and
// close. No extension is negotiated (Chromium offers permessage-deflate; the answer leaves it out).

const (
	wsGUID       = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	wsMaxMessage = 4 << 20

	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// wsAccept is Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// hasToken reports whether a comma-separated header (any of its lines) lists tok, case-insensitively.
func hasToken(h http.Header, name, tok string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// wsUpgrade answers the handshake and returns the hijacked connection's reader and writer, or writes an
// error response and returns a nil reader.
func wsUpgrade(w http.ResponseWriter, r *http.Request) (*bufio.ReadWriter, func() error, error) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !hasToken(r.Header, "Connection", "upgrade") {
		http.Error(w, "this endpoint speaks WebSocket only (no Upgrade: websocket arrived)", http.StatusUpgradeRequired)
		return nil, nil, errors.New("no upgrade requested")
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		http.Error(w, "bad WebSocket handshake", http.StatusBadRequest)
		return nil, nil, errors.New("bad handshake")
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return nil, nil, errors.New("not hijackable")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", wsAccept(key))
	if err := rw.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	return rw, conn.Close, nil
}

// readFrame reads one client frame, unmasked.
func readFrame(r *bufio.Reader) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	if h[0]&0x70 != 0 {
		return false, 0, nil, errors.New("reserved bits set (no extension was negotiated)")
	}
	if h[1]&0x80 == 0 {
		return false, 0, nil, errors.New("client frame not masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > wsMaxMessage {
		return false, 0, nil, fmt.Errorf("frame of %d bytes, more than %d", n, wsMaxMessage)
	}
	var mask [4]byte
	if _, err = io.ReadFull(r, mask[:]); err != nil {
		return
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return
}

// writeFrame writes one unmasked, final server frame and flushes it.
func writeFrame(w *bufio.Writer, op byte, payload []byte) error {
	hdr := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, byte(n))
	case n <= 0xffff:
		hdr = append(hdr, 126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	return w.Flush()
}

// wsEcho echoes every text and binary message as one frame of the same type until the client closes;
// onMessage is called with each echoed message's size.
func wsEcho(rw *bufio.ReadWriter, onMessage func(int)) error {
	var msg []byte
	var msgOp byte
	for {
		fin, op, payload, err := readFrame(rw.Reader)
		if err != nil {
			return err
		}
		switch op {
		case opPing:
			if err := writeFrame(rw.Writer, opPong, payload); err != nil {
				return err
			}
			continue
		case opPong:
			continue
		case opClose:
			code := payload
			if len(code) > 2 {
				code = code[:2]
			}
			_ = writeFrame(rw.Writer, opClose, code)
			return nil
		case opText, opBinary:
			if msg != nil {
				return errors.New("new message inside a fragmented one")
			}
			msgOp, msg = op, payload
		case opContinuation:
			if msg == nil {
				return errors.New("continuation without a message")
			}
			if len(msg)+len(payload) > wsMaxMessage {
				return errors.New("message too large")
			}
			msg = append(msg, payload...)
		default:
			return fmt.Errorf("unknown opcode %#x", op)
		}
		if !fin {
			continue
		}
		if err := writeFrame(rw.Writer, msgOp, msg); err != nil {
			return err
		}
		onMessage(len(msg))
		msg = nil
	}
}
