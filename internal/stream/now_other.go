//go:build !windows

package stream

import _ "unsafe" // for go:linkname

// Now returns CLOCK_MONOTONIC in nanoseconds (the Go runtime's monotonic
// clock, read through the vDSO): comparable between processes on one
// machine, unlike time.Now's monotonic reading, which is private.
//
//go:linkname Now runtime.nanotime
func Now() int64
