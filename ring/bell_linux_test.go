package ring

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/futex"
)

// TestBellSleepKinds runs messages through a ring whose data doorbell has a
// bell, paced so that the consumer sleeps before most of them, in each of
// the ways a sleeper counts itself (doorbell.count): on a thread that keeps
// its P (the first sleeper of a process), on the bell (no such place
// left), on the futex giving the P up (one CPU, a quiet feed), on the bell
// on one CPU (a busy exchange); and that on one CPU, sleeps of holdSleep or
// more do not keep the P even where the controller chooses holding. Every
// message must arrive, in order, and
// each case must have slept the way it is about: a waker that wakes the
// wrong way leaves the consumer asleep, and the message's deadline passes.
func TestBellSleepKinds(t *testing.T) {
	if !futex.BellsSupported() {
		t.Skip("bells need Linux 5.16 or later (futex_waitv) here")
	}
	type kinds struct{ held, futex, bell atomic.Int64 }
	for _, c := range []struct {
		name    string
		oneCPU  bool
		occupy  bool          // take every place of a sleeper that keeps its P first
		gap     time.Duration // between messages; 0: each after the last was read
		hold    bool          // the one-CPU controller chooses holding the P
		want    func(k *kinds) int64
		minimum int64
		fewHeld bool // at most a tenth of the sleeps may keep the P
	}{
		{"held", false, false, 2 * time.Millisecond, false, func(k *kinds) int64 { return k.held.Load() }, 1, false},
		{"bell", false, true, 2 * time.Millisecond, false, func(k *kinds) int64 { return k.bell.Load() }, 1, false},
		{"one CPU, quiet: futex", true, false, 2 * time.Millisecond, false, func(k *kinds) int64 { return k.futex.Load() }, 1, false},
		{"one CPU, busy: bell", true, false, 0, false, func(k *kinds) int64 { return k.bell.Load() }, 1, false},
		// Sleeps of holdSleep or more (paced by a 50 µs timer, which
		// sleeps longer, often beyond quietSleep): even where the
		// controller chooses holding, a sleep keeps the P only after
		// short ones.
		{"one CPU, holding chosen, long sleeps: not held", true, false, 50 * time.Microsecond, true, func(k *kinds) int64 { return k.bell.Load() + k.futex.Load() }, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The case decides, not the machine (a test pinned to one
			// CPU would otherwise take the one-CPU path in every case).
			defer func(f func() bool) { oneCPU = f }(oneCPU)
			oneCPU = func() bool { return c.oneCPU }
			if c.oneCPU {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			}
			if c.occupy {
				for futex.HoldDirect() {
					defer futex.ReleaseDirect()
				}
			}
			var k kinds
			countedHook = func(c counted) {
				switch {
				case c.held:
					k.held.Add(1)
				case c.inc == bellWaiter:
					k.bell.Add(1)
				default:
					k.futex.Add(1)
				}
			}
			defer func() { countedHook = nil }()
			r := heapRing(t, Config{Capacity: 4096})
			path := filepath.Join(t.TempDir(), "bell")
			if err := futex.CreateBell(path, 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := futex.OpenBell(path, os.Geteuid())
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			r.SetDataBell(b)
			// No look at the peers on a timer (the producer is in this
			// process, so it cannot be watched) and no bound on a
			// sleep: only a wake-up ends one before the message's
			// deadline.
			policy := DefaultWaitPolicy
			policy.ParkSlice = time.Hour
			p, cons := pair(t, r, ConsumerOptions{Wait: policy, Liveness: time.Hour})
			if c.hold {
				// Exploiting "hold" for longer than the test lasts.
				cons.wait.hold = spinControl{phase: exploit, park: true, start: time.Now()}
			}
			read := make(chan struct{}, 1)
			const count = 300
			sent := make(chan error, 1)
			go func() {
				msg := make([]byte, 64)
				for seq := range uint64(count) {
					if c.gap > 0 {
						time.Sleep(c.gap)
					} else if seq > 0 {
						<-read // a short sleep: the producer's goroutine readies the consumer's
					}
					fill(msg, seq)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					err := p.Send(ctx, msg)
					cancel()
					if err != nil {
						sent <- err
						return
					}
				}
				sent <- nil
			}()
			buf := make([]byte, 64)
			for seq := range uint64(count) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				n, err := cons.Recv(ctx, buf)
				if err == nil && ctx.Err() != nil {
					// The sleep ended at the deadline, not at the
					// ring: a lost wake-up that the look after the
					// timeout hid.
					err = ctx.Err()
				}
				cancel()
				if err != nil {
					t.Fatalf("message %d: %v (sleeps: %d keeping the P, %d on the futex, %d on the bell)", seq, err, k.held.Load(), k.futex.Load(), k.bell.Load())
				}
				check(t, buf[:n], seq, 64)
				select {
				case read <- struct{}{}:
				default:
				}
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
			t.Logf("sleeps: %d keeping the P, %d on the futex, %d on the bell", k.held.Load(), k.futex.Load(), k.bell.Load())
			if got := c.want(&k); got < c.minimum {
				t.Errorf("%d sleeps of the kind this case is about", got)
			}
			if all := k.held.Load() + k.futex.Load() + k.bell.Load(); c.fewHeld && 10*k.held.Load() > all {
				t.Errorf("%d sleeps of %d kept the P, want at most a tenth", k.held.Load(), all)
			}
		})
	}
}
