package futex_test

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/osthreads"
)

// TestSleepManyBoundedThreads puts 1000 goroutines to sleep on 1000 words,
// then wakes them in a random order: each must return, and while they all
// sleep the process must not run a thread per sleeper.
func TestSleepManyBoundedThreads(t *testing.T) {
	const n = 1000
	words := make([]uint32, n)
	var asleep atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range words {
		wg.Add(1)
		go func() {
			defer wg.Done()
			asleep.Add(1)
			for atomic.LoadUint32(&words[i]) == 0 {
				if err := futex.Sleep(&words[i], 0, time.Minute, nil, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for asleep.Load() < n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the last ones reach the kernel
	if futex.ManyPerThread() {
		// Structural bound: DirectSleepers threads of their own, one
		// per WordsPerThread watched words, and the runtime's own.
		if got, limit := osthreads.Count(), ThreadBound(n); got > limit {
			t.Errorf("%d goroutines asleep run %d threads, want at most %d", n, got, limit)
		} else {
			t.Logf("%d goroutines asleep: %d threads (GOMAXPROCS %d)", n, got, runtime.GOMAXPROCS(0))
		}
	} else {
		t.Logf("no futex_waitv here: thread count not bounded (%d)", osthreads.Count())
	}
	for _, i := range randPerm(n) {
		atomic.StoreUint32(&words[i], 1)
		if _, err := futex.Wake(&words[i], 1); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("sleepers were not all woken")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func randPerm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	// A fixed, scrambled order (no need for math/rand here).
	for i := range p {
		j := (i*7919 + 13) % n
		p[i], p[j] = p[j], p[i]
	}
	return p
}

func TestWatchFiresOnChange(t *testing.T) {
	ch := make(chan struct{}, 1)
	var word uint32
	w := futex.Watch(&word, 0, notify(ch))
	select {
	case <-ch:
		t.Fatal("watch fired while the word held its value") // a spurious fire is allowed, but none is expected here
	case <-time.After(20 * time.Millisecond):
	}
	atomic.StoreUint32(&word, 1)
	futex.Wake(&word, 1)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not fire")
	}
	if w.Cancel() {
		t.Error("Cancel after the watch fired reported it stopped it")
	}
}

func TestWatchStaleValueFiresAtOnce(t *testing.T) {
	ch := make(chan struct{}, 1)
	word := uint32(5)
	w := futex.Watch(&word, 4, notify(ch))
	defer w.Cancel()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("watch of a word that no longer holds the value did not fire")
	}
}

func TestWatchCancel(t *testing.T) {
	ch := make(chan struct{}, 1)
	var word uint32
	w := futex.Watch(&word, 0, notify(ch))
	if !w.Cancel() {
		t.Fatal("Cancel of a pending watch reported it had fired")
	}
	if w.Cancel() {
		t.Fatal("second Cancel reported it stopped the watch")
	}
	atomic.StoreUint32(&word, 1)
	futex.Wake(&word, 1)
	select {
	case <-ch:
		t.Fatal("cancelled watch fired")
	case <-time.After(20 * time.Millisecond):
	}
}

func TestSleepTimeoutShared(t *testing.T) {
	// Fill the direct sleepers so that this Sleep goes through a watch.
	var hold uint32
	var wg sync.WaitGroup
	for range futex.DirectSleepers {
		wg.Add(1)
		go func() { defer wg.Done(); futex.Sleep(&hold, 0, 2*time.Second, nil, 0) }()
	}
	time.Sleep(50 * time.Millisecond)
	var word uint32
	start := time.Now()
	err := futex.Sleep(&word, 0, 30*time.Millisecond, nil, 0)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Sleep: got %v, want os.ErrDeadlineExceeded", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("Sleep returned after %v, before its 30ms timeout", d)
	}
	atomic.StoreUint32(&hold, 1)
	futex.Wake(&hold, 1<<30)
	wg.Wait()
}

func notify(ch chan struct{}) func() {
	return func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// TestAlarm ends a sleep from another goroutine, on a thread of its own and
// through a watch, and checks that an alarm rung before the sleep began
// (after its value was read) ends it at once.
func TestAlarm(t *testing.T) {
	if !futex.ManyPerThread() {
		t.Skip("alarms need futex_waitv (Linux 5.16)")
	}
	for _, shared := range []bool{false, true} {
		var hold uint32
		var wg sync.WaitGroup
		if shared {
			for range futex.DirectSleepers {
				wg.Add(1)
				go func() { defer wg.Done(); futex.Sleep(&hold, 0, 10*time.Second, nil, 0) }()
			}
			time.Sleep(50 * time.Millisecond)
		}
		a := futex.NewAlarm()
		var word uint32
		done := make(chan error, 1)
		go func() { done <- futex.Sleep(&word, 0, futex.Forever, a, a.Value()) }()
		select {
		case err := <-done:
			t.Fatalf("shared %v: Sleep returned %v before the alarm", shared, err)
		case <-time.After(30 * time.Millisecond):
		}
		a.Ring()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("shared %v: Sleep ended by an alarm: %v, want nil", shared, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("shared %v: the alarm did not end the sleep", shared)
		}
		av := a.Value()
		a.Ring()
		if err := futex.Sleep(&word, 0, 10*time.Second, a, av); err != nil {
			t.Fatalf("shared %v: Sleep after the alarm rang: %v", shared, err)
		}
		atomic.StoreUint32(&hold, 1)
		futex.Wake(&hold, 1<<30)
		wg.Wait()
	}
}

// ThreadBound is the most threads a process may run while n goroutines
// sleep: GOMAXPROCS + 16 (the bound the library promises on Linux, where a
// thread watches 127 words), or on Windows, where a thread watches 63, the
// runtime's threads plus one per 63 sleepers.
func ThreadBound(n int) int {
	if runtime.GOOS == "windows" {
		return runtime.GOMAXPROCS(0) + 8 + futex.DirectSleepers + (n+futex.WordsPerThread-1)/futex.WordsPerThread
	}
	return runtime.GOMAXPROCS(0) + 16
}

// TestSleepAlarmTimeout: a sleep given an alarm still ends at its timeout,
// on a thread of its own (the first sleeper) and through a watch. (On 386
// the timeout was once passed in a layout the kernel misread, and such a
// sleep never ended.)
func TestSleepAlarmTimeout(t *testing.T) {
	a := futex.NewAlarm()
	var word uint32
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- futex.Sleep(&word, 0, 30*time.Millisecond, a, a.Value()) }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Sleep with an alarm: got %v, want os.ErrDeadlineExceeded", err)
		}
		if d := time.Since(start); d < 30*time.Millisecond {
			t.Fatalf("Sleep with a 30ms timeout returned after %v", d)
		}
	case <-time.After(10 * time.Second):
		atomic.StoreUint32(&word, 1) // let it go
		futex.Wake(&word, 1)
		<-done
		t.Fatal("Sleep with an alarm and a 30ms timeout still asleep after 10s")
	}
}

// TestSleepGiving: a sleeper that gives up its P at once, on one P, lets
// the goroutine that will wake it run, and is woken as any sleeper is: by a
// change of the word and a Wake, by its alarm (where sleeps have one), and
// by its timeout.
func TestSleepGiving(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var word uint32
	done := make(chan error, 1)
	go func() { done <- futex.SleepGiving(&word, 0, time.Minute, nil, 0, true) }()
	time.Sleep(10 * time.Millisecond) // most likely asleep by now; if not, the word tells it
	atomic.StoreUint32(&word, 1)
	futex.Wake(&word, 1)
	ended := func(by string) {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("SleepGiving ended by %s: %v", by, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("SleepGiving still asleep 10 s after %s", by)
		}
	}
	ended("a change of its word and a wake")
	if futex.ManyPerThread() { // where a sleep has an alarm at all
		a := futex.NewAlarm()
		go func() { done <- futex.SleepGiving(&word, 1, time.Minute, a, a.Value(), true) }()
		time.Sleep(10 * time.Millisecond)
		a.Ring()
		ended("its alarm")
	}
	if err := futex.SleepGiving(&word, 1, 5*time.Millisecond, nil, 0, true); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("SleepGiving with a 5 ms timeout: got %v, want os.ErrDeadlineExceeded", err)
	}
}
