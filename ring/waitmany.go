package ring

import (
	"sync/atomic"
	"time"

	"github.com/shmring/shmring/internal/futex"
)

// Waiting on many rings at once (package shmring's WaitSet) takes, for each
// ring, the steps a blocking call takes for its own (waiter.park): arm the
// doorbell and count a waiter (Arm), fence once for all (Fence), look again
// and start watching the peers' processes (Recheck), sleep until a word
// moves, and uncount (Disarm). Between Arm and Disarm a side must not be
// used otherwise; its methods are not safe for concurrent use, as always.

// Armed is a doorbell armed for a sleep: the sleeper waits until *Word no
// longer holds Val (futex.Watch).
type Armed struct {
	Word *uint32
	Val  uint32
}

// Fence is step 4 of the doorbell protocol for every side armed since the
// last Fence. It returns how long the sleep that follows may last at most
// (0: no bound): without a cross-process barrier in a system that has one,
// a peer's commit may slip past the waiter count unseen, and only a short
// sleep bounds the delay.
func Fence() time.Duration {
	if !barrierAvailable() {
		if futex.BarrierExists {
			return parkSliceNoBarrier
		}
		return 0
	}
	if futex.Barrier() != nil {
		return parkSliceNoBarrier
	}
	return 0
}

// arm is Arm for one doorbell.
func (w *waiter) arm(d doorbell) Armed {
	if w.alarm == nil {
		w.alarm = futex.NewAlarm()
	}
	v := atomic.LoadUint32(d.word)
	d.arm(v)
	atomic.AddUint32(d.waiters, 1)
	return Armed{Word: d.word, Val: v}
}

// recheck is Recheck's part common to both sides: it watches the peers and
// looks at them when it must, then runs try. bound is how long the sleep
// may last at most (0: until the word moves or a peer dies).
func (w *waiter) recheck(try func() (bool, error)) (ready bool, bound time.Duration, err error) {
	if err := w.checkDue(time.Now()); err != nil {
		return true, 0, err
	}
	timer := w.check != nil
	if w.watching() {
		unwatched, err := w.watchPeers(w.died.Swap(false))
		if err != nil {
			return true, 0, err
		}
		timer = unwatched || (w.inFlight != nil && w.inFlight())
	}
	if ok, err := try(); ok || err != nil {
		return true, 0, err
	}
	if timer {
		bound = max(min(DefaultParkSlice, time.Until(w.lastCheck.Add(w.every))+checkSlack), time.Microsecond)
	}
	return false, bound, nil
}

// OnPeerDeath sets a function to call, from another goroutine, when a peer
// process this side watches ends (nil: none). It must be quick and must not
// call the side's methods: a sleeper on many rings uses it to look at this
// side again.
func (w *waiter) onPeerDeath(fn func()) {
	if fn == nil {
		w.deathHook.Store(nil)
		return
	}
	w.deathHook.Store(&fn)
}

// Arm arms the data doorbell and counts a waiter: the consumer is about to
// sleep outside its own calls. Disarm must follow.
func (c *Consumer) Arm() Armed { return c.wait.arm(c.r.dataDoor) }

// Disarm uncounts the waiter Arm counted.
func (c *Consumer) Disarm() { atomic.AddUint32(c.r.dataDoor.waiters, ^uint32(0)) }

// Ready reports whether a read call would return now rather than wait: a
// message is committed at the head, the stream has ended (with
// ConsumerOptions.EOF), the ring was removed, or the consumer is closed. It
// consumes nothing. A non-nil error is what the last look at the producers
// found (a corrupt ring): ready is then true.
func (c *Consumer) Ready() (ready bool, err error) {
	if c.closed || c.viewing {
		return true, nil
	}
	if err := c.wait.checkDue(time.Now()); err != nil {
		return true, c.fail(c.noteCorrupt(err))
	}
	ok, err := c.ready()
	if err != nil {
		err = c.fail(err)
	}
	return ok, err
}

func (c *Consumer) ready() (bool, error) {
	if c.fan != nil && (c.fan.evicted || atomic.LoadUint64(c.r.head) > c.head || atomic.LoadUint32(c.fan.state) == subEvicted) {
		return true, nil // lapped or evicted: the read call says so
	}
	_, _, _, ok, err := c.next()
	if err != nil && c.fan != nil {
		// What makes no sense may have been overwritten as it was read:
		// then it is a lap (or an eviction), which the read call reports.
		loadFence(&c.fan.fenceWord)
		if atomic.LoadUint64(c.r.head) > c.head {
			return true, nil
		}
	}
	if ok || err != nil {
		return true, c.noteCorrupt(err)
	}
	return (c.eof && c.producersGone()) || c.r.Removed(), nil
}

// Recheck is the look after Arm and Fence: it starts watching the
// producers' processes (if it can) and reports whether the consumer is
// ready after all (then Disarm and do not sleep), and otherwise how long
// the sleep may last at most (0: until the doorbell moves; a producer's
// death rings it too, and calls the OnPeerDeath function).
func (c *Consumer) Recheck() (ready bool, bound time.Duration, err error) {
	if c.closed || c.viewing {
		return true, 0, nil
	}
	ready, bound, err = c.wait.recheck(c.ready)
	if err != nil {
		err = c.fail(c.noteCorrupt(err))
	}
	return ready, bound, err
}

// OnPeerDeath sets a function to call, from another goroutine, when a
// producer process the consumer watches while armed ends (nil: none). It
// must be quick and must not call the consumer's methods.
func (c *Consumer) OnPeerDeath(fn func()) { c.wait.onPeerDeath(fn) }

// Arm arms the space doorbell and counts a waiter: the producer is about to
// sleep for room outside its own calls. Disarm must follow.
func (p *Producer) Arm() Armed { return p.wait.arm(p.r.spaceDoor) }

// Disarm uncounts the waiter Arm counted.
func (p *Producer) Disarm() { atomic.AddUint32(p.r.spaceDoor.waiters, ^uint32(0)) }

// Ready reports whether a message of n bytes fits now, or a send would fail
// rather than wait (the ring was removed, the producer is closed or holds a
// reservation, n is too large). A non-nil error says why the producer can
// no longer send (the consumer died): ready is then true.
func (p *Producer) Ready(n int) (bool, error) {
	if err := p.checkReserve(n); err != nil {
		return true, nil // the call fails at once, with this error
	}
	if err := p.wait.checkDue(time.Now()); err != nil {
		return true, p.fail(err)
	}
	return p.hasRoom(recordSize(uint64(n)))
}

// Recheck is Consumer.Recheck for room for n bytes; the producer watches
// the consumer's process.
func (p *Producer) Recheck(n int) (ready bool, bound time.Duration, err error) {
	if err := p.checkReserve(n); err != nil {
		return true, 0, nil
	}
	rec := recordSize(uint64(n))
	ready, bound, err = p.wait.recheck(func() (bool, error) { return p.hasRoom(rec) })
	if err != nil {
		err = p.fail(err)
	}
	return ready, bound, err
}

// OnPeerDeath sets a function to call, from another goroutine, when the
// consumer process the producer watches while armed ends (nil: none).
func (p *Producer) OnPeerDeath(fn func()) { p.wait.onPeerDeath(fn) }

// hasRoom reports whether a claim of rec bytes would succeed now, without
// making it; true also when a claim would fail (removed ring, positions that
// make no sense), since the caller's call then returns at once.
func (p *Producer) hasRoom(rec uint64) (bool, error) {
	r := p.r
	if atomic.LoadUint32(r.removed) != 0 {
		return true, nil
	}
	pos := p.tail
	if p.multi {
		pos = atomic.LoadUint64(r.tail)
	}
	skip := uint64(0)
	if rem := r.capacity - pos&r.mask; rem < rec {
		skip = rem
	}
	h := atomic.LoadUint64(r.head)
	if !r.spanOK(h, pos) {
		return true, nil
	}
	if r.fanout() {
		// The claim moves the frontier as far as the reliable
		// subscribers let it.
		h = r.reliableLimit(h, pos)
	}
	return pos+skip+rec-h <= r.capacity, nil
}
