//go:build !linux && !windows

package futex

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// pollInterval bounds how long a Wait sleeps between looks at the word on
// systems without a cross-process futex. It trades idle CPU for wake-up
// latency: a waiter notices a change at most this late.
const pollInterval = 200 * time.Microsecond

func wait(addr *uint32, val uint32, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for atomic.LoadUint32(addr) == val {
		left := time.Until(deadline)
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		time.Sleep(min(left, pollInterval))
	}
	return nil
}

func wake(addr *uint32, n int) (int, error) { return 0, nil }

func registerBarrier() error {
	return fmt.Errorf("membarrier on %s: %w", runtime.GOOS, ErrNotSupported)
}

func barrier() error {
	return fmt.Errorf("membarrier on %s: %w", runtime.GOOS, ErrNotSupported)
}

// BarrierExists reports whether this system has Barrier at all.
const BarrierExists = false

// WakeCountMatters reports whether Wake's n must be the number of sleepers
// meant: here sleepers poll, and Wake does nothing.
const WakeCountMatters = false

func yield() { runtime.Gosched() }
