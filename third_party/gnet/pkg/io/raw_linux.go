/*
 * SwitchFlow patch: raw system calls for non-blocking socket I/O, through the socket calls
 * (recvfrom, sendto, sendmsg) rather than the file ones (read, write, writev).
 */

package io

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errEAGAIN is returned for EAGAIN without converting the Errno anew each time.
var errEAGAIN error = unix.EAGAIN

func rawErr(e syscall.Errno) error {
	switch e {
	case 0:
		return nil
	case unix.EAGAIN:
		return errEAGAIN
	}
	return e
}

// Read reads a non-blocking socket: recvfrom(2) with no flags and no address, which is read(2) for a
// socket without the file layer read(2) goes through first (the file position lock, the permission and
// notification hooks). It goes to the kernel without telling the Go scheduler (RawSyscall): a
// non-blocking read returns at once, so the scheduler has nothing to hand off, and the bookkeeping of
// syscall.Syscall costs a measurable share of a small request's CPU.
func Read(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(ptr), uintptr(len(p)), 0, 0, 0)
	return int(r), rawErr(e)
}

// Write writes a non-blocking socket: sendto(2) with no flags and no address, as Read.
func Write(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(ptr), uintptr(len(p)), 0, 0, 0)
	return int(r), rawErr(e)
}

// rawIovecs is the most buffers WritevRaw gathers on the stack; more go through unix.Writev.
const rawIovecs = 16

// writevRaw writes the buffers to a non-blocking socket in one call: sendmsg(2) with no flags and no
// address, which is writev(2) for a socket without the file layer, as Read.
func writevRaw(fd int, bs [][]byte) (int, error) {
	if len(bs) > rawIovecs {
		return unix.Writev(fd, bs)
	}
	var iov [rawIovecs]unix.Iovec
	n := 0
	for _, b := range bs {
		if len(b) == 0 {
			continue
		}
		iov[n].Base = &b[0]
		iov[n].SetLen(len(b))
		n++
	}
	if n == 0 {
		return 0, nil
	}
	msg := unix.Msghdr{Iov: &iov[0]}
	msg.SetIovlen(n)
	r, _, e := syscall.RawSyscall(syscall.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), 0)
	return int(r), rawErr(e)
}

// Splice is splice(2) between a non-blocking socket and a pipe, with no offsets, as Read.
func Splice(in, out, n int, flags int) (int, error) {
	r, _, e := syscall.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), uintptr(flags))
	return int(r), rawErr(e)
}
