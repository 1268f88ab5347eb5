package futex

import (
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelTimespec is struct __kernel_timespec, which futex_waitv takes on
// every architecture: 64-bit seconds and nanoseconds (unix.Timespec has
// 32-bit fields on 386 and arm, which the kernel would misread: a sleep
// with a timeout never timed out there).
type kernelTimespec struct {
	sec, nsec int64
}

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

// groupSys is a Linux group's control word, a private futex bumped to kick
// the thread, and the vector it waits on.
type groupSys struct {
	ctl uint32
	vec [futexWaitvMax]waitv
}

// watcherSys: nothing per watcher on Linux.
type watcherSys struct{}

func (w *Watcher) prepare() bool { return true }
func (w *Watcher) release()      { w.sys = watcherSys{} }

func (s *groupSys) init() bool         { return true }
func (s *groupSys) close()             {}
func (s *groupSys) removed(w *Watcher) {}
func (s *groupSys) waited()            {}

func (s *groupSys) kick() {
	atomic.AddUint32(&s.ctl, 1)
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(&s.ctl)), futexWakePriv, 1, 0, 0, 0)
}

func (s *groupSys) build(ws []*Watcher) {
	s.vec[0] = waitv{val: uint64(atomic.LoadUint32(&s.ctl)), uaddr: uint64(uintptr(unsafe.Pointer(&s.ctl))), flags: futex2SizeU32 | futex2Private}
	for i, w := range ws {
		s.vec[1+i] = waitv{val: uint64(w.val), uaddr: uint64(uintptr(unsafe.Pointer(w.addr))), flags: futex2SizeU32}
	}
}

// wait blocks in futex_waitv on the control word and n words, giving up
// the P (see blockingSyscall6). It returns the index of the word it was
// woken on, or -1 and scan true when every word must be looked at.
func (s *groupSys) wait(n int) (woken int, scan bool) {
	r, errno := blockingSyscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&s.vec[0])), uintptr(1+n), 0, 0, 0, 0)
	switch errno {
	case 0:
		if r >= 1 && int(r) <= n {
			return int(r) - 1, false
		}
		return -1, r != 0
	case unix.EAGAIN, unix.EINTR, unix.EFAULT, unix.ETIMEDOUT:
	default:
		// Should not happen (ENOMEM?): do not spin on it.
		time.Sleep(time.Millisecond)
	}
	return -1, true
}

// waitAlarm is wait on the word and, if a is not nil, on the alarm's word.
// With give, the thread gives up its P while it sleeps (see
// blockingSyscall6).
func waitAlarm(addr *uint32, val uint32, timeout time.Duration, a *Alarm, av uint32, give bool) error {
	vec := [2]waitv{{val: uint64(val), uaddr: uint64(uintptr(unsafe.Pointer(addr))), flags: futex2SizeU32}}
	n := 1
	if a != nil {
		vec[1] = waitv{val: uint64(av), uaddr: uint64(uintptr(unsafe.Pointer(a.addr()))), flags: futex2SizeU32 | futex2Private}
		n = 2
	}
	var ts *kernelTimespec
	if timeout < Forever {
		// futex_waitv takes an absolute time.
		var now unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
			return fmt.Errorf("futex wait: %w", err)
		}
		end := now.Nano() + int64(min(timeout, 100*365*24*time.Hour))
		ts = &kernelTimespec{sec: end / 1e9, nsec: end % 1e9}
	}
	var errno unix.Errno
	if give {
		_, errno = blockingSyscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&vec[0])), uintptr(n), 0,
			uintptr(unsafe.Pointer(ts)), unix.CLOCK_MONOTONIC, 0)
	} else {
		_, _, errno = unix.Syscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&vec[0])), uintptr(n), 0,
			uintptr(unsafe.Pointer(ts)), unix.CLOCK_MONOTONIC, 0)
	}
	return waitResult(errno)
}

func wakePrivate(addr *uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakePriv, 1<<31-1, 0, 0, 0)
}

// directLimit is how many sleepers sleep on a thread of their own.
const directLimit = DirectSleepers
