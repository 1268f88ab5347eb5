package futex

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// futex_waitv(2): a vector of these, one per word.
type waitv struct {
	val   uint64
	uaddr uint64
	flags uint32
	_     uint32
}

const (
	futex2SizeU32 = 0x02
	futex2Private = 128 // FUTEX_PRIVATE_FLAG
	futexWakePriv = futexWake | futex2Private
	futexWaitvMax = 128
	// groupSize is how many words one thread watches: the vector's
	// first entry is the group's own control word.
	groupSize = futexWaitvMax - 1
)

// manyAvailable reports whether futex_waitv exists (Linux 5.16 and later,
// and not refused by a seccomp filter). A call with no words is invalid,
// which is how a kernel that has the call says so.
var manyAvailable = func() bool {
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX_WAITV, 0, 0, 0, 0, 0, 0)
	return errno == unix.EINVAL
}()

// A group is one thread (a goroutine blocked in futex_waitv) watching up to
// groupSize words. Adding a word wakes it through its control word ctl, a
// private futex, so that it rebuilds its vector; cancelling does not (a
// cancelled word left in the kernel's vector can only cause a spurious
// wake-up, or EFAULT if its memory went away, and either makes the thread
// rebuild). A group whose last word is cancelled is woken so that its
// goroutine ends.
type group struct {
	mu  sync.Mutex
	ctl uint32
	ws  []*Watcher

	vec   [futexWaitvMax]waitv // owned by loop
	built [groupSize]*Watcher  // the watchers vec[1:] was built from
}

// watcherImpl is a Watcher's place in a group.
type watcherImpl struct {
	g    *group     // the thread watching it
	i    int        // its index in g.ws
	done bool       // fired or cancelled (guarded by g.mu)
	poll *pollWatch // without futex_waitv: the word is polled
}

var pool struct {
	mu     sync.Mutex
	groups []*group
}

func watch(w *Watcher) {
	if !manyAvailable {
		watchPolling(w)
		return
	}
	pool.mu.Lock()
	var g *group
	for _, h := range pool.groups {
		h.mu.Lock()
		if len(h.ws) < groupSize {
			g = h
			break
		}
		h.mu.Unlock()
	}
	if g == nil {
		g = &group{}
		pool.groups = append(pool.groups, g)
		go g.loop()
		g.mu.Lock()
	}
	w.g, w.i = g, len(g.ws)
	g.ws = append(g.ws, w)
	g.mu.Unlock()
	pool.mu.Unlock()
	g.kick()
}

func cancel(w *Watcher) bool {
	if w.poll != nil {
		return w.poll.cancel()
	}
	g := w.g
	g.mu.Lock()
	if w.done {
		g.mu.Unlock()
		return false
	}
	g.remove(w)
	empty := len(g.ws) == 0
	g.mu.Unlock()
	if empty {
		g.kick()
	}
	return true
}

// remove takes w out of g.ws; g.mu is held.
func (g *group) remove(w *Watcher) {
	last := len(g.ws) - 1
	g.ws[w.i] = g.ws[last]
	g.ws[w.i].i = w.i
	g.ws[last] = nil
	g.ws = g.ws[:last]
	w.done = true
}

// fire removes w and calls its function; g.mu is held.
func (g *group) fire(w *Watcher) {
	g.remove(w)
	w.fn()
}

func (g *group) kick() {
	atomic.AddUint32(&g.ctl, 1)
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&g.ctl)), futexWakePriv, 1, 0, 0, 0)
}

func (g *group) loop() {
	// A watched word may be in a file another process truncates: its
	// load must fault into a panic that moved reports, not kill us.
	debug.SetPanicOnFault(true)
	for {
		// Leave when empty, under both locks so that watch either
		// sees the group gone or adds to it before this look.
		pool.mu.Lock()
		g.mu.Lock()
		if len(g.ws) == 0 {
			for i, h := range pool.groups {
				if h == g {
					pool.groups = append(pool.groups[:i], pool.groups[i+1:]...)
					break
				}
			}
			g.mu.Unlock()
			pool.mu.Unlock()
			return
		}
		pool.mu.Unlock()
		g.vec[0] = waitv{val: uint64(atomic.LoadUint32(&g.ctl)), uaddr: uint64(uintptr(unsafe.Pointer(&g.ctl))), flags: futex2SizeU32 | futex2Private}
		n := copy(g.built[:], g.ws)
		for i, w := range g.built[:n] {
			g.vec[1+i] = waitv{val: uint64(w.val), uaddr: uint64(uintptr(unsafe.Pointer(w.addr))), flags: futex2SizeU32}
		}
		g.mu.Unlock()

		r, errno := blockingSyscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&g.vec[0])), uintptr(1+n), 0, 0, 0, 0)

		g.mu.Lock()
		fired := 0
		if errno == 0 && r >= 1 && int(r) <= n {
			// Woken on this word: fire it even if the word looks
			// unchanged (a wake-up is a reason to look).
			if w := g.built[r-1]; !w.done {
				g.fire(w)
				fired++
			}
		}
		if errno != 0 || r == 0 {
			// Not woken on one word (a word had moved before the
			// call, a control kick, a fault): look at every word. A
			// wake-up on one word needs no such look: a word that
			// moves while the thread is away from the kernel is seen
			// by the next call, which returns at once. (The look
			// costs a cache miss or two per word, in other processes'
			// mappings, on the path of the wake-up.)
			for i := 0; i < len(g.ws); {
				if w := g.ws[i]; moved(w) {
					g.fire(w) // moves the last watcher to i
					fired++
					continue
				}
				i++
			}
		}
		clear(g.built[:n])
		g.mu.Unlock()
		if fired > 0 {
			// The goroutines just readied wait in this P's run queue,
			// and this goroutine is about to block in a system call
			// still holding that P: until the runtime takes it back
			// (up to milliseconds when idle), they would not run.
			// Give them the P now.
			runtime.Gosched()
		}
		switch errno {
		case 0, unix.EAGAIN, unix.EINTR, unix.EFAULT, unix.ETIMEDOUT:
		default:
			// Should not happen (ENOMEM?): do not spin on it.
			time.Sleep(time.Millisecond)
		}
	}
}

// waitAlarm is wait on the word and, if a is not nil, on the alarm's word.
func waitAlarm(addr *uint32, val uint32, timeout time.Duration, a *Alarm, av uint32) error {
	vec := [2]waitv{{val: uint64(val), uaddr: uint64(uintptr(unsafe.Pointer(addr))), flags: futex2SizeU32}}
	n := 1
	if a != nil {
		vec[1] = waitv{val: uint64(av), uaddr: uint64(uintptr(unsafe.Pointer(a.addr()))), flags: futex2SizeU32 | futex2Private}
		n = 2
	}
	var ts *unix.Timespec
	if timeout < Forever {
		// futex_waitv takes an absolute time.
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
			return fmt.Errorf("futex wait: %w", err)
		}
		t := unix.NsecToTimespec(now.Nano() + int64(min(timeout, 100*365*24*time.Hour)))
		ts = &t
	}
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&vec[0])), uintptr(n), 0,
		uintptr(unsafe.Pointer(ts)), unix.CLOCK_MONOTONIC, 0)
	switch errno {
	case 0, unix.EAGAIN, unix.EINTR:
		return nil
	case unix.ETIMEDOUT:
		return os.ErrDeadlineExceeded
	default:
		return fmt.Errorf("futex wait: %w", errno)
	}
}

func wakePrivate(addr *uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakePriv, 1<<31-1, 0, 0, 0)
}
