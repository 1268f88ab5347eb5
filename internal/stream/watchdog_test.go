package stream

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchdog(t *testing.T) {
	stuck := errors.New("stuck")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var since atomic.Int64
	done := make(chan struct{})
	go func() { Watchdog(ctx, cancel, &since, 20*time.Millisecond, stuck); close(done) }()
	since.Store(Now())
	<-done
	if got := context.Cause(ctx); !errors.Is(got, stuck) {
		t.Fatalf("cause %v, want %v", got, stuck)
	}

	// Not waiting: the watchdog leaves ctx alone and returns when it ends.
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	var idle atomic.Int64
	done2 := make(chan struct{})
	go func() { Watchdog(ctx2, cancel2, &idle, time.Millisecond, stuck); close(done2) }()
	time.Sleep(20 * time.Millisecond)
	cancel2(nil)
	<-done2
	if got := context.Cause(ctx2); !errors.Is(got, context.Canceled) {
		t.Fatalf("cause %v, want context.Canceled: the watchdog fired while nothing waited", got)
	}
}
