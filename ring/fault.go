package ring

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// ErrTruncated is returned when the ring's memory faulted under a call: a
// process shrank the ring's file (or the file system took its pages back),
// so touching the mapping raised SIGBUS. It is returned only by calls made
// under CatchFault; elsewhere the fault kills the process. The ring cannot
// be used again.
var ErrTruncated = errors.New("ring: ring memory gone (its file was truncated)")

// CatchFault turns a memory fault in the calling goroutine into ErrTruncated.
// Defer it with the setting debug.SetPanicOnFault(true) returned:
//
//	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
//
// It restores that setting and, if the deferring function is panicking
// because of a memory fault, stores ErrTruncated (naming the address) in
// *err, or drops it if err is nil. Any other panic goes on.
func CatchFault(old bool, err *error) {
	debug.SetPanicOnFault(old)
	if r := recover(); r != nil {
		f, ok := r.(interface{ Addr() uintptr })
		if !ok {
			panic(r)
		}
		if err != nil {
			*err = fmt.Errorf("%w: fault at %#x", ErrTruncated, f.Addr())
		}
	}
}
