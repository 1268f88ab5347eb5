package futex

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Each word waited on gets a semaphore: named Local\ID-OFFSET for a word of
// registered memory (one object per word and per ring, shared by every
// process of the session that maps the ring; closed by the unregister
// function), unnamed for any other word (kept for the life of the process:
// such words are in memory no other process maps, rings on the heap in
// tests).
//
// Why a semaphore and not an auto-reset event: Wake must wake every sleeper
// it is asked to (the ring wakes all the producers waiting for room), and an
// event set twice wakes one. ReleaseSemaphore(n) lets n sleepers through.
// A count released for a waiter that then did not sleep (it saw the word
// change first) stays, and makes a later Wait return at once: a spurious
// wake-up, which the contract allows, and which uses the count up. Waits
// are bounded by their timeouts in any case.
//
// The check of the word and the sleep are not one atomic step as in
// futex(2): a Wake between them leaves its count in the semaphore, so the
// sleep returns at once, unless another sleeper on the same word takes that
// count first. One that was woken, found the word moved, did its work and
// came back to sleep on the new value can do just that while the first is
// still between its check and its wait; then the first sleeps on, though
// its word has moved (seen under Wine with eight subscribers of a fan-out
// ring on one data doorbell: one of them slept while its producer waited
// for it, until the producer gave up). A count is not bound to a value of
// the word, so no sleeper can tell it took another's. Hence no sleep here
// trusts the semaphore alone: it looks at its word again after a short
// wait, and after waits twice as long each time it finds nothing, up to
// lastLook. A count taken by another sleeper (which can only happen just
// after a look) costs the sleeper the wait before its next look: about a
// millisecond for a sleeper that has just begun, the case seen, and a
// second at most. An idle sleeper wakes once a second.

// firstLook and lastLook bound the waits between two looks at the word.
const (
	firstLook = time.Millisecond
	lastLook  = time.Second
)

// nextLook returns how long to wait before the look after one that waited
// d and found nothing.
func nextLook(d time.Duration) time.Duration { return min(2*d, lastLook) }

var (
	kernel32             = windows.NewLazySystemDLL("kernel32.dll")
	procCreateSemaphoreW = kernel32.NewProc("CreateSemaphoreW")
	procReleaseSemaphore = kernel32.NewProc("ReleaseSemaphore")
	procSwitchToThread   = kernel32.NewProc("SwitchToThread")
	errTooManyPosts      = windows.Errno(298) // ERROR_TOO_MANY_POSTS
	semaphoreMax         = uintptr(1 << 30)
)

// maxWake bounds the count one Wake releases: the ring passes a waiter count
// read from shared memory, and a lying one must not leave a billion
// spurious wake-ups behind.
const maxWake = 1024

type region struct {
	base, end uintptr
	id        string
	sems      map[uintptr]windows.Handle // by offset
}

var table struct {
	sync.Mutex
	regions []*region
	local   map[uintptr]windows.Handle // unregistered words, by address
}

func register(mem []byte, id string) func() {
	if len(mem) == 0 {
		return func() {}
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	r := &region{base: base, end: base + uintptr(len(mem)), id: id, sems: make(map[uintptr]windows.Handle)}
	table.Lock()
	table.regions = append(table.regions, r)
	table.Unlock()
	return func() {
		table.Lock()
		defer table.Unlock()
		for i, x := range table.regions {
			if x == r {
				table.regions = append(table.regions[:i], table.regions[i+1:]...)
				break
			}
		}
		for _, h := range r.sems {
			windows.CloseHandle(h)
		}
	}
}

// semaphore returns the semaphore of the word at addr, creating or opening
// it on first use.
func semaphore(addr *uint32) (windows.Handle, error) {
	a := uintptr(unsafe.Pointer(addr))
	table.Lock()
	defer table.Unlock()
	for _, r := range table.regions {
		if a >= r.base && a < r.end {
			off := a - r.base
			if h, ok := r.sems[off]; ok {
				return h, nil
			}
			h, err := createSemaphore(`Local\` + r.id + "-" + strconv.FormatUint(uint64(off), 10))
			if err == nil {
				r.sems[off] = h
			}
			return h, err
		}
	}
	if h, ok := table.local[a]; ok {
		return h, nil
	}
	h, err := createSemaphore("")
	if err == nil {
		if table.local == nil {
			table.local = make(map[uintptr]windows.Handle)
		}
		table.local[a] = h
	}
	return h, err
}

// createSemaphore creates the named semaphore, or opens it if another
// process created it first; an empty name makes an unnamed one.
func createSemaphore(name string) (windows.Handle, error) {
	var n *uint16
	if name != "" {
		var err error
		if n, err = windows.UTF16PtrFromString(name); err != nil {
			return 0, err
		}
	}
	h, _, err := procCreateSemaphoreW.Call(0, 0, semaphoreMax, uintptr(unsafe.Pointer(n)))
	if h == 0 {
		return 0, fmt.Errorf("CreateSemaphore %q: %w", name, err)
	}
	return windows.Handle(h), nil
}

func wait(addr *uint32, val uint32, timeout time.Duration) error {
	h, err := semaphore(addr)
	if err != nil {
		return err
	}
	var deadline time.Time
	if timeout < Forever {
		deadline = time.Now().Add(timeout)
	}
	for look := firstLook; ; look = nextLook(look) {
		if atomic.LoadUint32(addr) != val {
			return nil
		}
		d := look
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			d = min(d, left)
		}
		// Milliseconds, rounded up: a timeout never ends early.
		ev, err := windows.WaitForSingleObject(h, uint32((d+time.Millisecond-1)/time.Millisecond))
		if err != nil {
			return fmt.Errorf("WaitForSingleObject: %w", err)
		}
		if ev != uint32(windows.WAIT_TIMEOUT) {
			return nil
		}
	}
}

func wake(addr *uint32, n int) (int, error) {
	h, err := semaphore(addr)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, nil
	}
	n = min(n, maxWake)
	r, _, err := procReleaseSemaphore.Call(uintptr(h), uintptr(n), 0)
	if r == 0 && !errors.Is(err, errTooManyPosts) {
		return 0, fmt.Errorf("ReleaseSemaphore: %w", err)
	}
	// The number of sleepers is unknown; n is how many may pass.
	return n, nil
}

func registerBarrier() error {
	return fmt.Errorf("membarrier on windows: %w", ErrNotSupported)
}

func barrier() error {
	return fmt.Errorf("membarrier on windows: %w", ErrNotSupported)
}

// BarrierExists reports whether this system has Barrier at all: Windows has
// no cross-process equivalent of membarrier (FlushProcessWriteBuffers
// fences the threads of one process only).
const BarrierExists = false

// WakeCountMatters reports whether Wake's n must be the number of sleepers
// meant: on Windows it releases that many passes, and those no sleeper
// takes stay, each a spurious wake-up to come.
const WakeCountMatters = true

func yield() { procSwitchToThread.Call() }
