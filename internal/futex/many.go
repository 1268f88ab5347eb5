package futex

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Waiting without a thread per word.
//
// A goroutine blocked in Wait holds an OS thread for as long as it sleeps, so
// a process with a thousand idle rings would run a thousand threads. Watch
// and Sleep share a few threads among any number of sleeping words instead:
// on Linux each thread waits on up to 127 words at once (futex_waitv(2),
// Linux 5.16), on Windows on up to 63 semaphores (WaitForMultipleObjects).
// Where neither exists, a watch is a goroutine that polls the word, which
// holds no thread while it sleeps between looks.

// DirectSleepers is how many goroutines of a process may sleep in Sleep on
// a thread of their own at the same time on Linux; further sleepers share
// the watcher threads. (On Windows every sleeper shares them.) A thread of its own is the shortest path from a wake-up
// to the goroutine (the kernel wakes the sleeping thread itself), which is
// what a process waiting on a few rings wants; sharing bounds the threads of
// a process waiting on thousands.
const DirectSleepers = 2

// direct counts the sleepers on a thread of their own; holders, those of
// them that keep their P while they sleep.
var direct, holders atomic.Int32

// takeHold counts one more sleeper that keeps its P, if that leaves a P to
// the process's other goroutines (or it is the first).
//
// With one P, a sleeper keeps it only while no goroutine of the process
// waits on a Bell: the byte that wakes that one needs the P to run it, and
// would wait for the runtime's monitor to take it back.
func takeHold() bool {
	ps := runtime.GOMAXPROCS(0)
	if h := holders.Add(1); (h < 2 || int(h) < ps) && (ps > 1 || bellSleepers.Load() == 0) {
		return true
	}
	holders.Add(-1)
	return false
}

// bellSleepers counts the goroutines of this process asleep on a Bell.
var bellSleepers atomic.Int32

// Sleep is Wait for callers that may be many, and that another goroutine
// may need to interrupt: it sleeps on a thread of its own while fewer than
// DirectSleepers goroutines do, and otherwise through a Watch, which holds
// no thread of its own. If a is not nil, a.Ring ends the sleep when a's
// value is no longer av (read with a.Value before the caller's last look at
// its condition). Its contract is otherwise Wait's.
func Sleep(addr *uint32, val uint32, timeout time.Duration, a *Alarm, av uint32) error {
	return SleepGiving(addr, val, timeout, a, av, false)
}

// SleepGiving is Sleep, and with give a sleeper on a thread of its own
// gives up its P at once even if it is the first (see below): the caller
// knows that the goroutines of its process need the P more than its own
// wake-up needs to be quick.
func SleepGiving(addr *uint32, val uint32, timeout time.Duration, a *Alarm, av uint32, give bool) error {
	if timeout <= 0 {
		return os.ErrDeadlineExceeded
	}
	if !manyAvailable {
		return wait(addr, val, timeout)
	}
	if k := direct.Add(1); k <= directLimit {
		defer direct.Add(-1)
		// A thread asleep in a system call keeps its P (its right to
		// run Go code) until the runtime's monitor takes it back, up to
		// 10 ms later in a quiet process; meanwhile the goroutines that
		// need it wait. The first sleeper keeps it, for the quickest
		// wake-up (giving it up and taking one back doubled a round trip
		// on one CPU, 3.0 to 6.6 µs); a second one that would take the
		// last P gives it up at once (two goroutines asleep in one
		// process with GOMAXPROCS 2 made a gRPC call between them 1.2 to
		// 4 times slower, depending on the machine). With give, it
		// gives it up whatever, and does not count.
		hold := !give && takeHold()
		if hold {
			defer holders.Add(-1)
		}
		return waitAlarm(addr, val, timeout, a, av, !hold)
	}
	direct.Add(-1)
	s := sleepers.Get().(*sleeper)
	defer sleepers.Put(s)
	var alarm chan struct{}
	if a != nil {
		alarm = a.c
		if a.word.Load() != av {
			return nil
		}
	}
	w := Watch(addr, val, s.fire)
	if w.err != nil {
		<-s.ch // it fired at once: leave the channel empty for the next user
		return w.err
	}
	var tick <-chan time.Time
	if timeout < Forever {
		s.t.Reset(timeout)
		tick = s.t.C
		defer s.t.Stop() // since Go 1.23 no stale tick is left in s.t.C
	}
	timedOut := false
	select {
	case <-s.ch:
		return w.err
	case <-alarm: // maybe an old ring's: a spurious wake-up, allowed
	case <-tick:
		timedOut = true
	}
	if !w.Cancel() {
		<-s.ch // it fired meanwhile: leave the channel empty for the next user
		return w.err
	}
	if timedOut {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// HoldDirect takes, if there is one, the place of a sleeper that sleeps on
// a thread of its own keeping its P (SleepHeld), by the rule SleepGiving
// follows: the first of DirectSleepers, unless it would hold the last P.
// A sleeper that has a Bell sleeps there otherwise, holding no thread.
// Release the place with ReleaseDirect.
func HoldDirect() bool {
	if !manyAvailable {
		return false
	}
	if k := direct.Add(1); k <= directLimit && takeHold() {
		return true
	}
	direct.Add(-1)
	return false
}

// ReleaseDirect gives back the place HoldDirect took.
func ReleaseDirect() {
	holders.Add(-1)
	direct.Add(-1)
}

// SleepHeld is Sleep for a sleeper that holds a place (HoldDirect): its
// thread sleeps in the kernel keeping its P.
func SleepHeld(addr *uint32, val uint32, timeout time.Duration, a *Alarm, av uint32) error {
	if timeout <= 0 {
		return os.ErrDeadlineExceeded
	}
	return waitAlarm(addr, val, timeout, a, av, false)
}

// An Alarm ends a Sleep from another goroutine without touching the word
// slept on: that word may be in shared memory another process has since
// truncated, where a store would fault. The zero Alarm is not usable: use
// NewAlarm.
type Alarm struct {
	word atomic.Uint32
	c    chan struct{}
	bell atomic.Pointer[Bell] // also rung, for a sleeper on a Bell
}

// NewAlarm returns an alarm.
func NewAlarm() *Alarm { return &Alarm{c: make(chan struct{}, 1)} }

func (a *Alarm) addr() *uint32 { return (*uint32)(unsafe.Pointer(&a.word)) }

// Value returns the alarm's value, for Sleep: a Ring after this call ends
// the sleep.
func (a *Alarm) Value() uint32 { return a.word.Load() }

// Ring ends the Sleep given this alarm (if any, and if it began after the
// Value it was given), and makes the next one return at once.
func (a *Alarm) Ring() {
	a.word.Add(1)
	if b := a.bell.Load(); b != nil {
		b.Interrupt()
	}
	wakePrivate(a.addr())
	select {
	case a.c <- struct{}{}:
	default:
	}
}

// RingsBell makes Ring also interrupt a sleep on b, on which the alarm's
// sleeper sleeps (nil: none).
func (a *Alarm) RingsBell(b *Bell) {
	if a.bell.Load() != b {
		a.bell.Store(b)
	}
}

// Forever is a timeout that never ends: a Wait or Sleep given it returns
// only when woken (or spuriously).
const Forever = time.Duration(1<<63 - 1)

type sleeper struct {
	ch   chan struct{}
	t    *time.Timer
	fire func()
}

var sleepers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	s := &sleeper{ch: make(chan struct{}, 1), t: t}
	s.fire = func() {
		select {
		case s.ch <- struct{}{}:
		default:
		}
	}
	return s
}}

// A Watcher is one word being watched; see Watch.
type Watcher struct {
	addr *uint32
	val  uint32
	fn   func()
	err  error // why it fired, if the word cannot be waited on
	watcherImpl
}

// Watch arranges for one call of fn when *addr no longer holds val, or
// spuriously (a caller re-checks its condition, as after Wait). It fires at
// most once. fn runs on the watching thread, with the watch's group locked:
// it must be quick (a non-blocking channel send) and must not call Watch or
// Cancel. Cancel the watch before the memory of addr goes away.
//
// Watch costs one system call (it wakes the thread that will watch the
// word) and holds no thread of its own.
//
// A word the system cannot wait on (misaligned) fires at once, with Err
// saying why.
func Watch(addr *uint32, val uint32, fn func()) *Watcher {
	w := &Watcher{addr: addr, val: val, fn: fn}
	if uintptr(unsafe.Pointer(addr))%4 != 0 {
		w.err = fmt.Errorf("futex: watch of a misaligned word at %p: %w", addr, os.ErrInvalid)
		fn()
		return w
	}
	watch(w)
	return w
}

// Err reports why the watch fired without its word moving: the word cannot
// be waited on. It may be read once the watch has fired.
func (w *Watcher) Err() error { return w.err }

// Cancel stops the watch. It reports whether it stopped it before it
// fired; either way, once Cancel returns the watch will neither call its
// function nor look at its word again.
func (w *Watcher) Cancel() bool {
	if w.err != nil {
		return false
	}
	return cancel(w)
}

// ManyPerThread reports whether Watch shares one thread among many words
// here (futex_waitv on Linux 5.16 and later, WaitForMultipleObjects on
// Windows), and whether Sleep honours alarms. Otherwise a watch polls its
// word, and Sleep waits on a thread of its own (Linux before 5.16) or polls
// (other systems), ignoring alarms.
func ManyPerThread() bool { return manyAvailable }

// WordsPerThread is how many words one shared thread watches: 127 on Linux
// (futex_waitv takes 128, one is the thread's own), 63 on Windows
// (WaitForMultipleObjects takes 64).
const WordsPerThread = groupSize
