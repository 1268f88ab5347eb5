package futex_test

import (
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shmring/shmring/internal/futex"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWaitValueChanged(t *testing.T) {
	var word uint32 = 7
	start := time.Now()
	if err := futex.Wait(&word, 6, 10*time.Second); err != nil {
		t.Fatalf("Wait with a stale value: got %v, want nil", err)
	}
	// Ten seconds is the timeout; returning long before it shows the call did
	// not sleep. This is a bound on a hang, not a performance assertion.
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Wait with a stale value slept %v", d)
	}
}

func TestWaitTimeout(t *testing.T) {
	var word uint32
	start := time.Now()
	err := futex.Wait(&word, 0, 20*time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait: got %v, want os.ErrDeadlineExceeded", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("Wait returned after %v, before its 20ms timeout", d)
	}
}

func TestWaitZeroTimeout(t *testing.T) {
	var word uint32
	if err := futex.Wait(&word, 0, 0); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait(timeout 0): got %v, want os.ErrDeadlineExceeded", err)
	}
}

func TestWakeInProcess(t *testing.T) {
	var word uint32
	done := make(chan error, 1)
	go func() { done <- futex.Wait(&word, 0, 30*time.Second) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		atomic.StoreUint32(&word, 1)
		n, err := futex.Wake(&word, 1)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 || time.Now().After(deadline) {
			break
		}
		atomic.StoreUint32(&word, 0)
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("woken Wait: got %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Wait was not woken")
	}
}

func TestBarrier(t *testing.T) {
	if err := futex.RegisterBarrier(); err != nil {
		if errors.Is(err, futex.ErrNotSupported) {
			t.Skipf("no cross-process barrier here: %v", err)
		}
		t.Fatal(err)
	}
	if err := futex.Barrier(); err != nil {
		t.Fatal(err)
	}
}
