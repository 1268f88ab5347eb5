//go:build unix

package echo_test

import (
	"syscall"
	"time"
)

// osUsage returns the processor time the kernel charged this process
// (user and system) and its thread switches (voluntary and not).
func osUsage() (time.Duration, int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), int64(ru.Nvcsw) + int64(ru.Nivcsw)
}
