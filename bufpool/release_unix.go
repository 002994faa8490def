package bufpool

import (
	"syscall"
	"unsafe"
)

const madvDontNeed = syscall.MADV_DONTNEED

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
