// SwitchFlow patch (third_party/README.md, "Splicing"): the splice(2) calls behind Conn.SpliceTo.

//go:build linux

package gnet

import (
	"golang.org/x/sys/unix"

	gio "github.com/panjf2000/gnet/v2/pkg/io"
)

const spliceSupported = true

const spliceFlags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK

// newPipe makes a non-blocking pipe and asks for a capacity of size bytes; it reports the capacity the
// kernel granted.
func newPipe(size int) (r, w, granted int, err error) {
	var p [2]int
	if err = unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return -1, -1, 0, err
	}
	if granted, err = unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
		// Over /proc/sys/fs/pipe-max-size or the user's pipe quota: keep the default size.
		if granted, err = unix.FcntlInt(uintptr(p[1]), unix.F_GETPIPE_SZ, 0); err != nil {
			_ = unix.Close(p[0])
			_ = unix.Close(p[1])
			return -1, -1, 0, err
		}
	}
	return p[0], p[1], granted, nil
}

// spliceIn moves up to n bytes from the socket fd into the pipe's write end w.
func spliceIn(fd, w, n int) (int, error) {
	for {
		k, err := gio.Splice(fd, w, n, spliceFlags)
		if err == unix.EINTR {
			continue
		}
		return k, err
	}
}

// spliceOut moves up to n bytes from the pipe's read end r into the socket fd.
func spliceOut(r, fd, n int) (int, error) {
	for {
		k, err := gio.Splice(r, fd, n, spliceFlags)
		if err == unix.EINTR {
			continue
		}
		return k, err
	}
}
