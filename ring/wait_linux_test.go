//go:build linux && (amd64 || 386)

package ring

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
	"unsafe"

	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/peerwatch"
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

// TestWatchPeersBounded: a slot table naming more live processes than a
// waiter may watch (as a scribbled one could) makes it watch maxWatched of
// them, and look at the others on the timer.
func TestWatchPeersBounded(t *testing.T) {
	var pids []int
	for range maxWatched + 8 {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Skipf("cannot start child processes: %v", err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		pids = append(pids, cmd.Process.Pid)
	}
	looks := 0
	w := waiter{
		peers: func(dst []int) []int { return append(dst, pids...) },
		check: func() error { looks++; return nil },
		alarm: futex.NewAlarm(),
	}
	defer w.stopWatching()
	unwatched, err := w.watchPeers(false)
	if err != nil {
		t.Fatal(err)
	}
	if !peerwatch.Supported() {
		t.Skip("no process watching here")
	}
	if len(w.watched) != maxWatched || !unwatched || looks == 0 {
		t.Fatalf("%d live peers: %d watched (want %d), unwatched %v, %d looks", len(pids), len(w.watched), maxWatched, unwatched, looks)
	}
}
