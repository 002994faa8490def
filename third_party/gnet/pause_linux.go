// SwitchFlow patch: Conn.PauseRead needs the epoll poller's ModWrite and ModNone.

//go:build linux

package gnet

const pauseReadSupported = true
