package ring

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

// Fan-out rings (FORMAT.md, "Fan-out"): any number of producers, as on any
// ring, and up to Info.Subscribers subscribers, each of which reads every
// message from a position of its own. A reliable subscriber holds the
// producers back as a consumer does; a lossy one never does, and finds out
// when it was lapped.
//
// The ring's head word becomes the frontier: every record before it may be
// overwritten at any time, and a producer writes a place of the data area
// only once the frontier has passed the record that was there (the same room
// check as on any ring). Producers move the frontier when they need room,
// over whole committed records (and the claims of dead producers), never
// past a reliable subscriber's published position. The fan-out line keeps,
// with the frontier, the number of messages and payload bytes before it
// since the ring was created, so that a lapped subscriber can tell exactly
// what it lost; the three are kept twice and the low bit of a sequence word
// says which copy is current, so that a reader never sees half an update
// and an updater that dies half way leaves the other copy current.
//
// Moving the frontier, and a subscriber's attach, hold the fan-out line's
// liveness lock: a subscriber that attaches as reliable is then either seen
// by the next move or sees its result. A holder that dies releases it.
//
// A subscriber reads a record as a consumer does, then loads the frontier:
// if it has passed the record, the record may have been overwritten while it
// was read, and the copy is dropped. fanout.pml models the protocol.

// fanoutOffset is the offset of the fan-out line for a slot count.
func fanoutOffset(slots uint32) uint64 { return offSlots + uint64(slots)*LineSize }

// fanout reports whether the ring is a fan-out ring.
func (r *Ring) fanout() bool { return r.subs > 0 }

// subLine returns the offset of subscriber line i.
func (r *Ring) subLine(i uint32) uint64 { return r.fanOff + LineSize + uint64(i)*LineSize }

// linesUsed is the number of subscriber lines ever taken: the lines after
// them are free, and the loops over subscribers stop there (a ring made for
// 4096 subscribers with two of them looks at two lines).
func (r *Ring) linesUsed() uint32 { return min(atomic.LoadUint32(r.u32(r.fanOff+fanLines)), r.subs) }

// useLine raises the count of lines ever taken to cover line i.
func (r *Ring) useLine(i uint32) {
	w := r.u32(r.fanOff + fanLines)
	for {
		n := atomic.LoadUint32(w)
		if n > i || atomic.CompareAndSwapUint32(w, n, i+1) {
			return
		}
	}
}

// frontier is one copy of the frontier: its position, and the messages and
// payload bytes committed before it since the ring was created.
type frontier struct {
	pos, msgs, bytes uint64
}

// loadFrontier reads the current copy of the frontier. An update that
// completes meanwhile makes it read again; one that never completes (its
// writer died) does not matter, since it writes the other copy.
func (r *Ring) loadFrontier() (frontier, error) {
	seq := r.u64(r.fanOff + fanSeq)
	for range 1000 {
		s := atomic.LoadUint64(seq)
		off := r.fanOff + fanCopy + (s&1)*fanCopySize
		f := frontier{
			pos:   atomic.LoadUint64(r.u64(off)),
			msgs:  atomic.LoadUint64(r.u64(off + 8)),
			bytes: atomic.LoadUint64(r.u64(off + 16)),
		}
		if atomic.LoadUint64(seq) == s {
			return f, nil
		}
		runtime.Gosched()
	}
	return frontier{}, fmt.Errorf("%w: the frontier's sequence word kept changing", ErrCorrupt)
}

// storeFrontier publishes f, holding the fan-out lock: the other copy, then
// the sequence word, then the head word producers check room against.
func (r *Ring) storeFrontier(f frontier) {
	seq := r.u64(r.fanOff + fanSeq)
	s := atomic.LoadUint64(seq) + 1
	off := r.fanOff + fanCopy + (s&1)*fanCopySize
	atomic.StoreUint64(r.u64(off), f.pos)
	atomic.StoreUint64(r.u64(off+8), f.msgs)
	atomic.StoreUint64(r.u64(off+16), f.bytes)
	atomic.StoreUint64(seq, s)
	atomic.StoreUint64(r.head, f.pos)
}

// lockFanout takes the fan-out line's lock, yielding while another holder
// has it (it holds it for the time of a walk over at most a capacity of
// records), for up to wait. It reports false if it could not.
func (r *Ring) lockFanout(wait time.Duration) (bool, error) {
	var deadline time.Time
	for i := 0; ; i++ {
		ok, err := r.locker.TryLock(int64(r.fanOff))
		if ok || err != nil {
			return ok, err
		}
		if wait <= 0 {
			return false, nil
		}
		if i == 0 {
			deadline = time.Now().Add(wait)
		} else if time.Now().After(deadline) {
			return false, nil
		}
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// raiseLockWait bounds how long a frontier update waits for the fan-out
// lock; past it the claim finds no room (a blocking call waits on, and
// tries again).
const raiseLockWait = time.Millisecond

// raise moves the frontier so that it reaches need if it can, and a chunk
// of capacity/8 beyond, so that the next moves are rare. It never moves it
// past a reliable subscriber's published position, past a record not yet
// committed (unless a dead producer's claim, which it skips), or past the
// tail. It returns the head word afterwards, which may be short of need:
// the ring is full for now (or the fan-out lock stayed held for
// raiseLockWait).
func (r *Ring) raise(need uint64) (uint64, error) {
	// Without the lock first: a producer waiting for a reliable subscriber
	// looks again and again, and the lock is two system calls. It is
	// skipped only when the frontier cannot move at all. A subscriber that
	// published a position short of need but ahead of the frontier must
	// get the frontier moved up to it: the lag bound evicts only the
	// subscribers that hold the frontier, so one that stalled there would
	// otherwise hold the producers back for ever.
	if h := atomic.LoadUint64(r.head); r.reliableLimit(h, atomic.LoadUint64(r.tail)) <= h {
		return h, nil
	}
	// Its holders hold it for one update, or for the last stretch of a
	// subscriber's start: wait for it a little, so that a producer with
	// room to make does not report a full ring.
	ok, err := r.lockFanout(raiseLockWait)
	if err != nil || !ok {
		return atomic.LoadUint64(r.head), err
	}
	defer r.unlock(r.fanOff)
	f, err := r.loadFrontier()
	if err != nil {
		return 0, err
	}
	tail := atomic.LoadUint64(r.tail)
	if !r.spanOK(f.pos, tail) {
		return 0, fmt.Errorf("%w: frontier %d and tail %d are not aligned positions with the tail at most a capacity (%d) ahead", ErrCorrupt, f.pos, tail, r.capacity)
	}
	if h := atomic.LoadUint64(r.head); h != f.pos {
		if h > f.pos {
			return 0, fmt.Errorf("%w: head word %d is past the frontier %d", ErrCorrupt, h, f.pos)
		}
		atomic.StoreUint64(r.head, f.pos) // an updater died before its last store
	}
	if f.pos >= need {
		return f.pos, nil
	}
	limit := r.reliableLimit(f.pos, tail)
	target := min(need+r.capacity/8, limit)
	g := f
	for g.pos < target {
		rec, ok, err := r.recordAt(g.pos)
		if err != nil {
			return 0, err
		}
		if !ok {
			if !r.multi() {
				break
			}
			end, ok, err := r.recoverClaim(g.pos)
			if err != nil {
				return 0, err
			}
			if !ok || end > limit {
				break
			}
			g.pos = end
			continue
		}
		if rec.after > limit {
			break
		}
		if err := g.pass(r, rec); err != nil {
			return 0, err
		}
	}
	if g.pos > f.pos {
		r.storeFrontier(g)
		atomic.AddUint64(r.u64(r.fanOff+fanRaises), 1)
		// Other producers may be asleep waiting for room.
		r.spaceDoor.ring()
	}
	return g.pos, nil
}

// reliableLimit is how far the frontier may move: the lowest position a
// reliable subscriber published, or the tail. A position before the
// frontier (no correct subscriber publishes one) holds it where it is,
// until the lag bound evicts its subscriber.
func (r *Ring) reliableLimit(front, tail uint64) uint64 {
	limit := tail
	for i := range r.linesUsed() {
		off := r.subLine(i)
		if atomic.LoadUint32(r.u32(off+consState)) != subReliable {
			continue
		}
		p := atomic.LoadUint64(r.u64(off + subPos))
		if p < limit {
			limit = max(p, front)
		}
	}
	return limit
}

// pass moves f past the committed record rec, counting its messages (a
// batch's one by one) and their payload bytes.
func (f *frontier) pass(r *Ring, rec record) error {
	switch rec.typ {
	case KindMessage:
		f.msgs++
		f.bytes += rec.length
	case KindBatch:
		n, b, err := r.batchCount(rec)
		if err != nil {
			return err
		}
		f.msgs += n
		f.bytes += b
	}
	f.pos = rec.after
	return nil
}

// batchCount returns the number of messages in the batch record rec, and
// their payload bytes.
func (r *Ring) batchCount(rec record) (msgs, bytes uint64, err error) {
	start := rec.pos&r.mask + RecordHeaderSize
	for off := uint64(0); off < rec.length; {
		n := uint64(atomic.LoadUint32(r.u32(r.dataOffset + start + off)))
		next := off + entrySize(n)
		if n > uint64(r.maxMessage) || next > rec.length {
			return 0, 0, fmt.Errorf("%w: batch at position %d: entry at offset %d claims %d bytes, the batch has %d", ErrCorrupt, rec.pos, off, n, rec.length)
		}
		msgs++
		bytes += n
		off = next
	}
	return msgs, bytes, nil
}

// subscriberPIDs appends the PIDs of the reliable subscribers to dst: a
// producer waiting for room watches them.
func (r *Ring) subscriberPIDs(dst []int) []int {
	for i := range r.linesUsed() {
		dst = r.appendPID(dst, r.subLine(i)+consState, r.subLine(i)+consPID, subReliable, subEvicted)
	}
	return dst
}

// reapSubscribers frees the lines of dead subscribers: marked in use, and
// their lock free. A dead reliable subscriber stops holding the producers
// back. It reports how many it freed.
func (r *Ring) reapSubscribers() (int, error) {
	freed := 0
	for i := range r.linesUsed() {
		off := r.subLine(i)
		if atomic.LoadUint32(r.u32(off+consState)) == subFree {
			continue
		}
		held, err := r.locker.Locked(int64(off))
		if err != nil {
			return freed, err
		}
		if held {
			continue
		}
		ok, err := r.locker.TryLock(int64(off))
		if err != nil {
			return freed, err
		}
		if !ok {
			continue
		}
		if atomic.LoadUint32(r.u32(off+consState)) != subFree {
			atomic.StoreUint32(r.u32(off+consPID), 0)
			atomic.StoreUint32(r.u32(off+consState), subFree)
			freed++
		}
		r.unlock(off)
	}
	return freed, nil
}

// evictHolding evicts the reliable subscribers that hold the frontier at
// front (their published position is not past it), and returns how many it
// evicted. The others, behind what a claim needs but ahead of the frontier,
// are not: the frontier moves to the next of them, and the lag bound counts
// again from there, so that a subscriber that was moving gets a whole bound.
// A subscriber evicted is told at its next call; the producers stop waiting
// for it at once.
func (r *Ring) evictHolding(front uint64) int {
	n := 0
	for i := range r.linesUsed() {
		off := r.subLine(i)
		if atomic.LoadUint32(r.u32(off+consState)) != subReliable || atomic.LoadUint64(r.u64(off+subPos)) > front {
			continue
		}
		if atomic.CompareAndSwapUint32(r.u32(off+consState), subReliable, subEvicted) {
			atomic.AddUint64(r.u64(r.fanOff+fanEvictions), 1)
			n++
		}
	}
	if n > 0 {
		// An evicted subscriber asleep for data learns at once.
		r.dataDoor.interrupt()
	}
	return n
}

// evictAfter is the ring's lag bound, 0 for none.
func (r *Ring) evictAfter() time.Duration {
	ns := atomic.LoadUint64(r.u64(r.fanOff + fanEvictNs))
	if ns > uint64(365*24*time.Hour) {
		ns = uint64(365 * 24 * time.Hour) // a scribbled bound stays a bound
	}
	return time.Duration(ns)
}
