package stream

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	kernel32     = windows.NewLazySystemDLL("kernel32.dll")
	procQPC      = kernel32.NewProc("QueryPerformanceCounter")
	procQPF      = kernel32.NewProc("QueryPerformanceFrequency")
	qpcFrequency = sync.OnceValue(func() int64 {
		var f int64
		procQPF.Call(uintptr(unsafe.Pointer(&f)))
		return max(f, 1)
	})
)

// Now returns the performance counter in nanoseconds: comparable between
// processes on one machine. (The runtime's monotonic clock is too, but it
// advances with the timer interrupt, a millisecond or more at a time, which
// makes every latency of a fast exchange read as zero.)
func Now() int64 {
	var c int64
	procQPC.Call(uintptr(unsafe.Pointer(&c)))
	f := qpcFrequency()
	return c/f*1e9 + c%f*1e9/f
}
