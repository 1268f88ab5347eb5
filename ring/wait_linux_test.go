//go:build linux && (amd64 || 386)

package ring

import (
	"context"
	"errors"
	"testing"
	"time"
	"unsafe"
)

// TestParkEndsOnFailedSleep gives a waiter a doorbell the kernel refuses to
// sleep on (a misaligned word: futex(2) says EINVAL). The wait must end with
// that error, not spin in a loop of failed sleeps until its context ends.
// (Only where the processor allows a misaligned atomic load.)
func TestParkEndsOnFailedSleep(t *testing.T) {
	words := make([]uint32, 4)
	d := doorbell{
		word:    (*uint32)(unsafe.Add(unsafe.Pointer(&words[0]), 1)),
		waiters: &words[2],
		armed:   &words[3],
	}
	w := waiter{parks: new(uint64)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := w.wait(ctx, d, func() (bool, error) { return false, nil })
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on a word the kernel refuses: %v, want the sleep's error", err)
	}
	if *d.waiters != 0 {
		t.Fatalf("waiter count left at %d", *d.waiters)
	}
	t.Log(err)
}
