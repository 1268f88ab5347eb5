package ring

import (
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"time"
)

// Peers: attaching, detaching, and telling the dead from the slow.
//
// Each producer slot and the consumer line has a liveness lock (Locker),
// named by the line's offset. A peer takes its lock before it marks its line
// attached, and clears the mark before it lets the lock go, so "attached and
// unlocked" can only mean "dead". Nothing else is taken as proof of death.

// noClaim is the claim position of a slot with no claim in flight; no
// position ever equals it.
const noClaim = ^uint64(0)

// attachSlot takes a producer slot and returns its index, holding the slot's
// lock with the slot marked attached and counted. It takes a free slot, or
// the slot of a dead producer whose claim is settled (see settled).
func (r *Ring) attachSlot() (uint32, error) {
	n, attempts := r.slotsInUse(), 2
	if !r.multi() {
		// One slot: a consumer reaping it holds its lock for a moment,
		// so try a few times before calling it busy.
		attempts = 10
	}
	for a := 0; a < attempts; a++ {
		if a > 0 {
			time.Sleep(time.Millisecond)
		}
		for i := range n {
			off := r.slot(i)
			ok, err := r.locker.TryLock(int64(off))
			if err != nil {
				return 0, err
			}
			if !ok {
				continue
			}
			state := r.u32(off + slotState)
			switch st := atomic.LoadUint32(state); {
			case st == 0:
				r.resetSlot(off)
				atomic.StoreUint32(state, slotAttached)
				// Attached first: a consumer that sees the attach count
				// move must also see this producer attached, or it
				// would report io.EOF early.
				atomic.AddUint32(r.u32(offProducers+prodsAttached), 1)
			case st == slotAttached && r.settled(off, atomic.LoadUint64(r.head)):
				// Its owner died with nothing in flight: take its place.
				// The slot stays counted as attached.
				r.resetSlot(off)
			default:
				r.unlock(off)
				continue
			}
			atomic.AddUint64(r.u64(offProducers+prodsAttaches), 1)
			// A consumer asleep watches the producers it saw attached:
			// wake it to watch this one too, and whatever a producer
			// that died in the middle of a wake left asleep
			// (FORMAT.md, "Doorbells").
			r.dataDoor.wakeAll()
			return i, nil
		}
	}
	return 0, ErrProducerBusy
}

// resetSlot starts a new attach of the slot at off, whose lock is held.
func (r *Ring) resetSlot(off uint64) {
	atomic.StoreUint64(r.u64(off+slotClaimLen), 0)
	atomic.StoreUint64(r.u64(off+slotClaimPos), noClaim)
	for _, f := range []uint64{slotMessages, slotBytes, slotFullWaits, slotParks, slotWakes} {
		atomic.StoreUint64(r.u64(off+f), 0)
	}
	atomic.StoreUint32(r.u32(off+slotPID), uint32(os.Getpid()))
	atomic.AddUint64(r.u64(off+slotGen), 1)
}

// detachSlot frees a slot this process holds: uncount, unmark, unlock.
func (r *Ring) detachSlot(i uint32) {
	off := r.slot(i)
	atomic.StoreUint32(r.u32(off+slotPID), 0)
	r.unfenceSlot(off)
	r.uncountAttached()
	atomic.StoreUint32(r.u32(off+slotState), 0)
	r.unlock(off)
	r.dataDoor.ring()
}

// settled reports whether the claim recorded in the slot at off, whose owner
// is dead (its lock is held by the caller), can no longer hold up the
// consumer: it lies before head, or it was never made (its compare-and-swap
// did not happen, since the tail has not passed it). Single-producer rings
// record no claims: a dead producer's unfinished record was never published.
func (r *Ring) settled(off, head uint64) bool {
	if !r.multi() {
		return true
	}
	pos := atomic.LoadUint64(r.u64(off + slotClaimPos))
	if pos == noClaim || atomic.LoadUint64(r.u64(off+slotClaimLen)) == 0 || pos < head {
		return true
	}
	return pos >= atomic.LoadUint64(r.tail)
}

// reap frees the slots of dead producers whose claims are settled, given the
// consumer's head, and returns how many it freed. A live producer's slot is
// never touched: its lock is held.
func (r *Ring) reap(head uint64) (int, error) {
	n := r.slots
	if !r.multi() {
		n = 1
	}
	freed := 0
	for i := range n {
		off := r.slot(i)
		switch st := atomic.LoadUint32(r.u32(off + slotState)); {
		case st > slotAttached:
			// No producer writes it: the slot table was written over,
			// and a producer it hides may have died unseen.
			return freed, fmt.Errorf("%w: producer slot %d has state %d", ErrCorrupt, i, st)
		case st != slotAttached:
			continue
		}
		if held, err := r.locker.Locked(int64(off)); err != nil || held {
			if err != nil {
				return freed, err
			}
			continue
		}
		ok, err := r.locker.TryLock(int64(off))
		if err != nil {
			return freed, err
		}
		if !ok {
			continue
		}
		if atomic.LoadUint32(r.u32(off+slotState)) == slotAttached && r.settled(off, head) {
			r.unfenceSlot(off)
			r.uncountAttached()
			atomic.StoreUint32(r.u32(off+slotState), 0)
			freed++
		}
		r.unlock(off)
	}
	return freed, nil
}

// ConsumerAlive reports whether a consumer is attached and alive (its
// liveness lock held: a system call on a shared ring, made only when the
// line is marked attached), and the PID its line names, a hint.
func (r *Ring) ConsumerAlive() (alive bool, pid uint32) {
	pid = atomic.LoadUint32(r.u32(offConsumer + consPID))
	if !r.consumerAttached() {
		return false, pid
	}
	held, err := r.locker.Locked(offConsumer)
	return err == nil && held, pid
}

// consumerAttached reports whether the consumer line is marked attached.
func (r *Ring) consumerAttached() bool {
	return atomic.LoadUint32(r.u32(offConsumer+consState)) == consAttached
}

// consumerDead reports whether the consumer line is marked attached while
// nobody holds its lock. The consumer attach count, loaded before and after,
// tells a dead consumer from one that detached and was replaced meanwhile.
func (r *Ring) consumerDead() (bool, error) {
	state, gen := r.u32(offConsumer+consState), r.u64(offConsumer+consGen)
	g := atomic.LoadUint64(gen)
	if atomic.LoadUint32(state) != consAttached {
		return false, nil
	}
	held, err := r.locker.Locked(offConsumer)
	if err != nil || held {
		return false, err
	}
	return atomic.LoadUint32(state) == consAttached && atomic.LoadUint64(gen) == g, nil
}

// uncountAttached decrements the attached count, but never below zero: a
// scribbled count must not wrap round and hold io.EOF off for ever.
func (r *Ring) uncountAttached() { r.uncount(r.u32(offProducers + prodsAttached)) }

// unlock releases the liveness lock at off, held by this process. Its error
// is dropped: an unlock that fails leaves the lock held, so peers take the
// line for alive, which is the safe side (nothing is recovered over a live
// peer, and a slot still locked is only skipped), and the system releases
// the lock when this process closes the segment or dies.
func (r *Ring) unlock(off uint64) { _ = r.locker.Unlock(int64(off)) }

// producerPIDs appends the PIDs of the attached producers to dst: a
// sleeping consumer watches them (see waiter.peers). A PID is a hint, never
// proof: the slot's lock is.
func (r *Ring) producerPIDs(dst []int) []int {
	for i := range r.slotsInUse() {
		dst = r.appendPID(dst, r.slot(i)+slotState, r.slot(i)+slotPID, slotAttached, slotAttached)
	}
	return dst
}

// consumerPIDs appends the PID of the attached consumer to dst: a producer
// waiting for room watches it.
func (r *Ring) consumerPIDs(dst []int) []int {
	return r.appendPID(dst, offConsumer+consState, offConsumer+consPID, consAttached, consAttached)
}

// appendPID appends to dst the PID stored at pid, if the state word at
// state holds want and the PID is not zero (a peer clears its PID just
// before its state as it detaches); it appends -1, which names no process,
// if the line holds a state no peer writes, past last (the highest state a
// line can have), or a PID no process has. A sleeper cannot watch a peer
// such a line may hide, and looks at the locks on its timer instead
// (waiter.watchPeers).
func (r *Ring) appendPID(dst []int, state, pid uint64, want, last uint32) []int {
	switch st := atomic.LoadUint32(r.u32(state)); {
	case st == want:
		switch p := atomic.LoadUint32(r.u32(pid)); {
		case p > math.MaxInt32:
			dst = append(dst, -1)
		case p != 0:
			dst = append(dst, int(p))
		}
	case st > last:
		dst = append(dst, -1)
	}
	return dst
}
