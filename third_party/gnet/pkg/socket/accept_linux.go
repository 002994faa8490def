/*
 * SwitchFlow patch: accept4 as a raw system call (third_party/README.md, patch 6).
 */

package socket

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawAccept4 is accept4(2) on a non-blocking listener, without what unix.Accept4 adds around it: the Go
// scheduler's entersyscall/exitsyscall (the call returns at once), and, for every IPv4 peer, a
// getsockopt(SO_PROTOCOL) that x/sys/unix makes to tell SMC sockets apart, one more system call per
// connection. IPv4 and IPv6 peers are decoded here; other families go through getpeername.
func rawAccept4(fd, flags int) (int, unix.Sockaddr, error) {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny)
	r, _, e := syscall.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)),
		uintptr(unsafe.Pointer(&n)), uintptr(flags), 0, 0)
	if e != 0 {
		return -1, nil, e
	}
	nfd := int(r)
	switch rsa.Addr.Family {
	case unix.AF_INET:
		p := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		return nfd, &unix.SockaddrInet4{Port: int(port[0])<<8 | int(port[1]), Addr: p.Addr}, nil
	case unix.AF_INET6:
		p := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
		port := (*[2]byte)(unsafe.Pointer(&p.Port))
		return nfd, &unix.SockaddrInet6{Port: int(port[0])<<8 | int(port[1]), ZoneId: p.Scope_id, Addr: p.Addr}, nil
	}
	sa, err := unix.Getpeername(nfd)
	if err != nil {
		_ = unix.Close(nfd)
		return -1, nil, err
	}
	return nfd, sa, nil
}
