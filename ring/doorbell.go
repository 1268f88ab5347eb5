package ring

import (
	"sync/atomic"

	"github.com/shmring/shmring/internal/futex"
)

// doorbell is one of the ring's two doorbells (FORMAT.md, "Doorbells"): the
// word sleepers wait on, the count of waiters, and the value the latest
// waiter armed it at.
type doorbell struct {
	word, waiters, armed *uint32
	// bell, if set, is a second way to sleep and wake in this process:
	// a sleeper without a thread of its own sleeps on it, counted as
	// bellWaiter waiters, and wakes write to it when the count says so
	// (see Ring.SetDataBell).
	bell *futex.Bell
}

// bellWaiter is what a sleeper on a doorbell's bell adds to its waiter
// count (FORMAT.md, "Connections", bells): wakers ring the bell when the
// count is bellWaiter or more, the futex when its remainder is not zero.
const bellWaiter = 1 << 16

// counted is how a waiter counted itself on a doorbell, which says how it
// sleeps: on the futex, on a thread that keeps its P (held, a place taken
// with futex.HoldDirect), or on the bell (inc is bellWaiter).
type counted struct {
	inc  uint32
	held bool
}

// count counts a waiter on d, about to sleep: on the futex, or, where d
// has a bell, on a thread that keeps its P if one of the few such places
// is free (and the waiter need not give its P up), on the futex giving
// its P up if it gives it and prefers the futex (see quietSleep), on the
// bell otherwise.
func (d doorbell) count(give, preferFutex bool) counted {
	c := counted{inc: 1}
	switch {
	case d.bell == nil:
	case !give && futex.HoldDirect():
		c.held = true
	case give && preferFutex:
	default:
		c.inc = bellWaiter
	}
	atomic.AddUint32(d.waiters, c.inc)
	return c
}

// uncount undoes count.
func (d doorbell) uncount(c counted) {
	atomic.AddUint32(d.waiters, -c.inc)
	if c.held {
		futex.ReleaseDirect()
	}
}

// arm records, before a waiter counts itself, the doorbell value v it will
// sleep on. armed only moves forward (modulo 2^32), so it holds the newest
// value any waiter may sleep on.
func (d doorbell) arm(v uint32) {
	for {
		a := atomic.LoadUint32(d.armed)
		if int32(v-a) <= 0 || atomic.CompareAndSwapUint32(d.armed, a, v) {
			return
		}
	}
}

// ring wakes the sleepers on the doorbell, with one system call per arming:
// only when the waiter count says somebody may be asleep, and only if the
// word still holds the value the newest waiter armed it at. A word that moved
// past it was rung already: every waiter sleeps on a value at most the armed
// one, so its sleep returns at once. ring reports whether it made the wake
// system call.
//
// Without the armed check every commit made while the consumer was on its
// way to sleep (a membarrier and a futex call: microseconds) made a wake
// call of its own: 80 thousand per million messages with four producers.
func (d doorbell) ring() bool {
	_, woke := d.ringSaw()
	return woke
}

// ringSaw is ring, also reporting whether the waiter count was non-zero.
func (d doorbell) ringSaw() (saw, woke bool) {
	if atomic.LoadUint32(d.waiters) == 0 {
		return false, false
	}
	b := atomic.LoadUint32(d.word)
	if b != atomic.LoadUint32(d.armed) || !atomic.CompareAndSwapUint32(d.word, b, b+1) {
		return true, false // rung since it was armed, or being rung now
	}
	d.wake()
	return true, true
}

// wakeAll wakes every sleeper, if the waiter count says there may be one,
// without the armed check of ring: for a peer that attaches. A waker that
// died between its compare-and-swap of the word and its wake call left the
// word past the armed value and its sleepers asleep; ring would take the
// word for rung and make no call, and a sleeper that watches nobody (a
// producer that waits for a new consumer) would sleep for ever.
func (d doorbell) wakeAll() {
	if atomic.LoadUint32(d.waiters) != 0 {
		d.interrupt()
	}
}

// interrupt rings the doorbell unconditionally, waking every sleeper: for a
// cancelled context.
func (d doorbell) interrupt() {
	atomic.AddUint32(d.word, 1)
	d.wake()
}

// wake wakes the sleepers on a word just rung: at least as many as the
// waiter count says, read after the word moved (a waiter not counted by then
// checks the word after it moved and does not sleep on the old value). On
// Windows it asks for exactly that many: a Wake releases that many passes of
// a semaphore, which stay (see package futex). Where a Wake wakes sleepers,
// not passes (futex(2)), it wakes them all: a sleeper woken, served and
// back asleep on the new value before this call is one more than the
// count, and the kernel wakes the sleepers of highest priority first, so a
// count could leave asleep the very one it was read for, behind a newcomer
// of a higher real-time priority (wake.pml, -DANY_ORDER).
//
// A failed wake is dropped: the kernel refuses one only for memory that is
// no longer mapped (a truncated segment), where the sleepers have lost the
// ring anyway, and the waking side has nothing better to do about it.
func (d doorbell) wake() {
	if d.bell != nil {
		w := atomic.LoadUint32(d.waiters)
		if w >= bellWaiter {
			d.bell.Ring()
		}
		if w%bellWaiter == 0 {
			return
		}
	}
	n := futex.WakeAll
	if futex.WakeCountMatters {
		n = int(atomic.LoadUint32(d.waiters))
	}
	_, _ = futex.Wake(d.word, n)
}
