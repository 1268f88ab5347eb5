package ring

import (
	"cmp"
	"fmt"
	"slices"
	"sync/atomic"
)

// Recovery from a producer that died holding a claim (multi-producer rings).
//
// A producer records its claim (position, length) in its slot before the
// compare-and-swap on the tail that makes it, and rewrites the slot before
// each new attempt. When it dies between the compare-and-swap and its commit,
// the consumer finds nothing committed at head while the tail is past it.
// The claim at head then belongs to a dead slot, and the consumer skips
// exactly that claim, as if it were padding.
//
// The consumer skips the claim by moving its own head past it, rather than
// writing a padding record over it: the effect on the
// stream is the same, the dead producer's memory is left alone, and a
// consumer that dies before publishing the new head leaves the dead slot as
// it was, so its replacement recovers the claim again.
//
// The rules, which the model in claim.pml checks:
//   - a slot is dead only when it is marked attached and the consumer can take
//     its lock; the consumer keeps the locks of the dead slots it looks at
//     until it is done, so nobody attaches to them meanwhile;
//   - if any live slot records a claim at head, nothing is recovered: the
//     claim may be that producer's, however long it is stopped;
//   - a dead slot's record may be stale, from a compare-and-swap that failed
//     before the producer could rewrite it. The true claim at head is the
//     shortest recorded one whose end is a boundary: the tail, a position
//     some slot records, or a committed record. No boundary lies strictly
//     inside the true claim, so a shorter stale record cannot end on one;
//   - a claim that starts with padding (it crosses the end of the data area)
//     may have its record committed and only the padding missing: then only
//     the padding is skipped, and the record is delivered.

// recoverHead skips a dead producer's claim at the consumer's head, when
// there is one and no live producer claims head. It reports whether it did.
func (c *Consumer) recoverHead() (bool, error) {
	end, ok, err := c.r.recoverClaim(c.head)
	if !ok || err != nil {
		return false, err
	}
	c.head = end
	c.recovered++
	storeRelease64(c.r.u64(c.line+consRecovered), c.recovered)
	c.publish()
	return true, nil
}

// recoverClaim looks for a dead producer's claim at head, when no live
// producer claims head, and returns where the claim ends: where a reader
// at head goes on. Nothing is written; the caller moves its own position.
func (r *Ring) recoverClaim(head uint64) (end uint64, ok bool, err error) {
	tail := atomic.LoadUint64(r.tail)
	if tail == head {
		return 0, false, nil // empty: nothing claimed
	}
	if !r.spanOK(head, tail) {
		return 0, false, r.spanErr(head, tail)
	}
	type candidate struct {
		slot uint32
		len  uint64
	}
	var dead []candidate
	defer func() {
		for _, d := range dead {
			r.unlock(r.slot(d.slot))
		}
	}()
	claimants := 0
	for i := range r.slots {
		off := r.slot(i)
		if atomic.LoadUint32(r.u32(off+slotState)) != slotAttached || atomic.LoadUint64(r.u64(off+slotClaimPos)) != head {
			continue
		}
		claimants++
		ok, err := r.locker.TryLock(int64(off))
		if err != nil {
			return 0, false, err
		}
		if !ok {
			return 0, false, nil // a live producer claims head: wait for it
		}
		dead = append(dead, candidate{slot: i}) // unlocked by the deferred call
		// Dead (or detached meanwhile): its slot no longer changes.
		if atomic.LoadUint32(r.u32(off+slotState)) != slotAttached || atomic.LoadUint64(r.u64(off+slotClaimPos)) != head {
			dead[len(dead)-1].len = 0
			continue
		}
		dead[len(dead)-1].len = atomic.LoadUint64(r.u64(off + slotClaimLen))
	}
	// The committed record may have landed while we looked.
	if _, ok, err := r.recordAt(head); ok || err != nil {
		return 0, false, err
	}
	if claimants == 0 {
		// Every claim is recorded in its producer's slot before it is
		// made, and stays there until it is committed; the slots were
		// read before this last look at the head. So the record at head
		// was committed and then overwritten.
		return 0, false, fmt.Errorf("%w: tail %d is past head %d, where no record is committed and no producer claims one", ErrCorrupt, tail, head)
	}
	slices.SortFunc(dead, func(a, b candidate) int { return cmp.Compare(a.len, b.len) })
	for _, d := range dead {
		if d.len < RecordHeaderSize || d.len%RecordAlign != 0 || d.len > tail-head {
			continue // not a claim a producer could have made from here
		}
		end := head + d.len
		if ok, err := r.boundary(end); err != nil || !ok {
			if err != nil {
				return 0, false, err
			}
			continue
		}
		if rem := r.capacity - head&r.mask; d.len > rem {
			// The claim starts with padding to the end of the data area.
			// The producer commits its record first: if it died in
			// between, only the padding is missing.
			if _, ok, err := r.recordAt(head + rem); err != nil || ok {
				if err != nil {
					return 0, false, err
				}
				end = head + rem
			}
		}
		return end, true, nil
	}
	return 0, false, nil
}

// boundary reports whether a claim starts or ends at pos: the tail is there,
// a slot records a claim there, or a record is committed there. It loads in
// that order, so that a claim moving from one state to the next (recorded
// in a slot, then committed) is seen in one of them.
func (r *Ring) boundary(pos uint64) (bool, error) {
	if atomic.LoadUint64(r.tail) == pos {
		return true, nil
	}
	for i := range r.slots {
		if atomic.LoadUint64(r.u64(r.slot(i)+slotClaimPos)) == pos {
			return true, nil
		}
	}
	_, ok, err := r.recordAt(pos)
	return ok, err
}
