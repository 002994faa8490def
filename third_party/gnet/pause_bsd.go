// SwitchFlow patch: Conn.PauseRead is epoll-only; on kqueue systems it reports ErrUnsupportedOp and the
// poller's ModWrite and ModNone fall back to the plain watches.

//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package gnet

const pauseReadSupported = false
