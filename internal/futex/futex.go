// Package futex lets a process sleep until another process changes a 32-bit
// word in memory that both have mapped.
//
// The contract is the one of Linux futex(2) without FUTEX_PRIVATE_FLAG (the
// private flag does not cross address spaces): Wait atomically checks that
// *addr == val and, if so, sleeps until a Wake on the same word, until the
// timeout elapses, or for no reason at all. Spurious wake-ups are allowed, so
// callers always wait in a loop that re-checks their own condition.
//
// On Linux Wait and Wake are system calls. On Windows, where no wait on an
// address crosses processes (WaitOnAddress does not), each word is given a
// named semaphore: Register names the words of a shared mapping after an
// identifier every process derives alike (the ring's UUID); words outside
// registered memory get a semaphore private to the process (futex_windows.go
// says why a semaphore and not an event). On other systems this package
// falls back to timed polling: Wait sleeps for a short interval (at most the
// timeout) and returns, and Wake does nothing. Correctness never depends on a
// wake-up arriving, only latency does, because every caller re-checks the
// condition and every wait has a bound.
//
// Barrier and RegisterBarrier provide an asymmetric memory fence between
// processes (Linux membarrier(2)). It lets the hot path of a ring publish with
// plain release stores and still take part in a store-then-check wake-up
// handshake: the side about to sleep pays for the full fence, for both sides.
package futex

import (
	"errors"
	"os"
	"time"
)

// ErrNotSupported is returned by Barrier when the system offers no
// cross-process memory barrier. Callers must then order their own stores and
// loads with a full fence (a sequentially consistent atomic operation).
var ErrNotSupported = errors.New("futex: not supported on this system")

// Wait sleeps while *addr == val, for at most timeout (timeout <= 0 means
// "do not sleep": Wait returns at once).
//
// It returns nil when woken, when *addr no longer held val at the time of the
// call, or when interrupted; it returns os.ErrDeadlineExceeded when the
// timeout elapsed. Either way the caller must re-check its condition.
func Wait(addr *uint32, val uint32, timeout time.Duration) error {
	if timeout <= 0 {
		return os.ErrDeadlineExceeded
	}
	return wait(addr, val, timeout)
}

// Wake wakes at most n processes or threads sleeping in Wait on addr and
// reports how many it woke (on systems without futexes it reports 0).
func Wake(addr *uint32, n int) (int, error) {
	return wake(addr, n)
}

// Register declares that mem is shared memory whose words other processes
// wait on and wake, under names derived from id (letters, digits and '-'
// only; at most 100 bytes). Only Windows needs it; elsewhere it does nothing.
// Call the returned function to forget mem, after every Wait and Wake on it
// has returned and before unmapping it.
func Register(mem []byte, id string) (unregister func()) {
	return register(mem, id)
}

// RegisterBarrier declares that this process takes part in Barrier: after it
// returns nil, a Barrier in any process forces a full memory fence on every
// thread of this one. It is cheap to call more than once. It returns
// ErrNotSupported (wrapped) where there is no such facility.
func RegisterBarrier() error {
	return registerBarrier()
}

// Barrier executes a full memory fence on every running thread of every
// process that called RegisterBarrier, and on the caller, before it returns.
//
// The pattern it serves: a fast side publishes with a store and then loads a
// flag, with no fence in between; a slow side stores the flag, calls Barrier,
// then loads what the fast side published. Either the fast side's load sees
// the flag, or the slow side's load sees the publication.
func Barrier() error {
	return barrier()
}

// WakeAll is an n for Wake that wakes every sleeper on the word, where
// WakeCountMatters is false.
const WakeAll = 1<<31 - 1

// Yield gives the CPU to another runnable thread of the system, if any, and
// returns when this one is scheduled again (sched_yield on Linux). A process
// that may use one CPU yields it to the peer it waits for before it sleeps.
func Yield() { yield() }
