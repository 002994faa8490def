// SwitchFlow patch: splice(2) is Linux only; Conn.SpliceTo reports ErrUnsupportedOp elsewhere.

//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package gnet

import "golang.org/x/sys/unix"

const spliceSupported = false

func newPipe(int) (r, w, granted int, err error) { return -1, -1, 0, unix.ENOSYS }
func spliceIn(int, int, int) (int, error)        { return 0, unix.ENOSYS }
func spliceOut(int, int, int) (int, error)       { return 0, unix.ENOSYS }
