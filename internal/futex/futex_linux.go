package futex

import (
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// futex(2) operations; golang.org/x/sys/unix has SYS_FUTEX but not these.
// FUTEX_PRIVATE_FLAG (128) is deliberately absent: the word is shared
// between processes.
const (
	futexWait = 0
	futexWake = 1
)

// membarrier(2) commands.
const (
	membarrierCmdQuery                   = 0
	membarrierCmdGlobalExpedited         = 1 << 1
	membarrierCmdRegisterGlobalExpedited = 1 << 2
)

func wait(addr *uint32, val uint32, timeout time.Duration) error {
	ts := unix.NsecToTimespec(int64(timeout))
	// Syscall6, not RawSyscall6: the call blocks, and the Go scheduler must
	// be told so that it can hand this P to another thread.
	_, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait,
		uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	return waitResult(errno)
}

// waitResult is Wait's answer for the errno of a futex wait.
func waitResult(errno unix.Errno) error {
	switch errno {
	case 0, unix.EAGAIN, unix.EINTR:
		return nil
	case unix.ETIMEDOUT:
		return os.ErrDeadlineExceeded
	default:
		return fmt.Errorf("futex wait: %w", errno)
	}
}

func wake(addr *uint32, n int) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake,
		uintptr(n), 0, 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("futex wake: %w", errno)
	}
	return int(r), nil
}

var barrierReg struct {
	once sync.Once
	err  error
}

func registerBarrier() error {
	barrierReg.once.Do(func() {
		r, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdQuery, 0, 0)
		if errno != 0 {
			barrierReg.err = fmt.Errorf("membarrier query: %w: %w", ErrNotSupported, errno)
			return
		}
		if r&membarrierCmdGlobalExpedited == 0 {
			barrierReg.err = fmt.Errorf("membarrier global expedited: %w", ErrNotSupported)
			return
		}
		if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdRegisterGlobalExpedited, 0, 0); errno != 0 {
			barrierReg.err = fmt.Errorf("membarrier register: %w: %w", ErrNotSupported, errno)
		}
	})
	return barrierReg.err
}

func barrier() error {
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobalExpedited, 0, 0); errno != 0 {
		return fmt.Errorf("membarrier: %w: %w", ErrNotSupported, errno)
	}
	return nil
}

// BarrierExists reports whether this system has Barrier at all (a process
// may still fail to register for it).
const BarrierExists = true

// WakeCountMatters reports whether Wake's n must be the number of sleepers
// meant (Windows, where it releases that many passes that stay), rather
// than any bound at least that large (futex(2), and polling): see
// WakeAll.
const WakeCountMatters = false

func yield() { unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
