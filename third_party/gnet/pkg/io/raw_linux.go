/*
 * SwitchFlow patch: raw system calls for non-blocking socket I/O.
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

// Read is read(2) on a non-blocking descriptor. It goes to the kernel without telling the Go scheduler
// (RawSyscall): a non-blocking read returns at once, so the scheduler has nothing to hand off, and the
// bookkeeping of syscall.Syscall costs a measurable share of a small request's CPU.
func Read(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	return int(r), rawErr(e)
}

// Write is write(2) on a non-blocking descriptor, as Read.
func Write(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	return int(r), rawErr(e)
}

// rawIovecs is the most buffers WritevRaw gathers on the stack; more go through unix.Writev.
const rawIovecs = 16

// writevRaw is writev(2) on a non-blocking descriptor, as Read.
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
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
	return int(r), rawErr(e)
}

// Splice is splice(2) between a non-blocking socket and a pipe, with no offsets, as Read.
func Splice(in, out, n int, flags int) (int, error) {
	r, _, e := syscall.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), uintptr(flags))
	return int(r), rawErr(e)
}
