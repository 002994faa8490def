//go:build dragonfly || freebsd

/*
 * SwitchFlow patch: accept4 as a raw system call on Linux (accept_linux.go); here, as before.
 */

package socket

import "golang.org/x/sys/unix"

func rawAccept4(fd, flags int) (int, unix.Sockaddr, error) { return unix.Accept4(fd, flags) }
