package futex

import (
	_ "unsafe" // for go:linkname

	"golang.org/x/sys/unix"
)

// A goroutine blocked in a system call keeps its P (its right to run Go
// code) until the runtime's monitor takes it back, which takes up to 10 ms
// when the process is otherwise idle. A thread that waits on many words
// blocks for long, and the Ps it holds are what the goroutines it wakes (and
// the other watching threads, when they wake) need: with GOMAXPROCS 2 and
// eight watching threads, wake-ups waited 1 to 10 ms for a P. The runtime
// has the call for a system call known to block, which gives the P up at
// once; it is exported to other packages for this purpose (see its comment
// in runtime/proc.go: "Do not remove or change the type signature").

//go:linkname entersyscallblock runtime.entersyscallblock
func entersyscallblock()

//go:linkname exitsyscall runtime.exitsyscall
func exitsyscall()

// blockingSyscall6 makes a system call that is expected to block, giving up
// the P first. It must not grow its stack between the two runtime calls.
//
//go:nosplit
func blockingSyscall6(trap, a1, a2, a3, a4, a5, a6 uintptr) (r1 uintptr, errno unix.Errno) {
	entersyscallblock()
	r1, _, errno = unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
	exitsyscall()
	return r1, errno
}
