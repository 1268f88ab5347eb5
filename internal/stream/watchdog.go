package stream

import (
	"context"
	"sync/atomic"
	"time"
)

// Watchdog cancels ctx with cause once the wait that began at *since (a Now()
// reading, or 0 when not waiting) has lasted limit. It returns when ctx ends.
// The commands use it to bound a blocked Send or Recv without a timer per
// message: the hot path stores since only when it is about to wait.
func Watchdog(ctx context.Context, cancel context.CancelCauseFunc, since *atomic.Int64, limit time.Duration, cause error) {
	tick := time.NewTicker(min(limit/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if s := since.Load(); s != 0 && time.Duration(Now()-s) >= limit {
			cancel(cause)
			return
		}
	}
}
