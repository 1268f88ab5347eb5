//go:build linux && (amd64 || 386)

package ring

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"sync/atomic"
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

// TestCancelAfterPeerDeath: a context cancelled after a watched peer died
// during the wait still ends the wait at once. After a death the waiter
// starts its watches afresh, and that must keep the registration that rings
// its alarm when the context ends (registered once per context, not at
// every sleep): with the registration gone, the waiter, watching every peer
// it has left, would sleep on with no timeout.
func TestCancelAfterPeerDeath(t *testing.T) {
	if !futex.ManyPerThread() || !peerwatch.Supported() {
		t.Skip("no futex_waitv or no process watching here")
	}
	var procs [2]*exec.Cmd
	alive := make([]int, 0, 2)
	for i := range procs {
		procs[i] = exec.Command("sleep", "60")
		if err := procs[i].Start(); err != nil {
			t.Skipf("cannot start child processes: %v", err)
		}
		defer func(c *exec.Cmd) { c.Process.Kill(); c.Wait() }(procs[i])
		alive = append(alive, procs[i].Process.Pid)
	}
	var mu sync.Mutex
	var looks atomic.Int32
	words := make([]uint32, 3)
	d := doorbell{word: &words[0], waiters: &words[1], armed: &words[2]}
	if !barrierAvailable() {
		t.Skip("no membarrier here: sleeps are bounded, and a lost registration would not show")
	}
	w := waiter{
		parks:   new(uint64),
		barrier: true, // else every sleep is bounded, and ends in time anyway
		every:   time.Hour,
		peers: func(dst []int) []int {
			mu.Lock()
			defer mu.Unlock()
			return append(dst, alive...)
		},
		check: func() error { looks.Add(1); return nil },
	}
	defer w.release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.wait(ctx, d, func() (bool, error) { return false, nil }) }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("no %s after 10 s", what)
			}
		}
	}
	waitFor("sleep", func() bool { return atomic.LoadUint32(d.waiters) == 1 })
	time.Sleep(20 * time.Millisecond) // into the sleep
	before := looks.Load()
	// The first peer dies; the waiter wakes, looks (check), watches the
	// peer left and sleeps again.
	mu.Lock()
	alive = alive[1:]
	mu.Unlock()
	procs[0].Process.Kill()
	procs[0].Wait()
	waitFor("look after the death", func() bool { return looks.Load() > before })
	waitFor("sleep after the death", func() bool { return atomic.LoadUint32(d.waiters) == 1 })
	time.Sleep(20 * time.Millisecond) // into the sleep
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("wait cancelled after a peer's death: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		atomic.AddUint32(d.word, 1) // let the goroutine end
		futex.Wake(d.word, 1)
		t.Fatal("a wait whose context ended after a peer's death slept on for 5 s")
	}
}
