package ring

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"
)

// Producer writes messages into a ring. It owns one producer slot, and the
// slot's liveness lock, from NewProducer until Close.
//
// A Producer is not safe for concurrent use: one goroutine at a time may call
// its methods. Several goroutines or processes that send into one ring need
// one Producer each, on a multi-producer ring. It must not be copied.
type Producer struct {
	r       *Ring
	slot    uint32
	slotOff uint64
	kind    uint32 // KindMessage with the slot in its high bits
	multi   bool   // claims by compare-and-swap on the shared tail
	// fanMulti (a multi-producer fan-out ring) rings the space doorbell
	// after each commit, for producers waiting for it to move the frontier.
	fanMulti bool
	// endWithConsumer: ProducerOptions.EndWithConsumer.
	endWithConsumer bool

	tail uint64 // single producer: next position to write, owned by this producer
	head uint64 // cached consumer head: reloaded only when the ring looks full

	// The reservation in progress: resvPos is where its record starts,
	// resvLen the payload length reserved. On a multi-producer ring the
	// claim is [claimPos, resvPos+recordSize(resvLen)), padding first.
	resv     bool
	resvPos  uint64
	resvLen  uint32
	claimPos uint64

	closed bool
	name   string // ProducerOptions.Name, for errors

	messages, bytes, fullWaits, wakes uint64 // mirrored into the slot
	fenced                            bool   // fences every commit (fenced.go)
	quiet                             int    // commits in a row that found no waiter

	// Last: the fields of every message come first, on as few cache lines
	// as they fit.
	wait waiter

	// Fan-out rings (subscriber.go): fullSince and fullFront time
	// the lag bound.
	fullSince int64
	fullFront uint64

	// Keeps the next heap object's fields off this one's cache lines: a
	// Producer and a Consumer in one process may be allocated side by side.
	_ [LineSize]byte
}

// ProducerOptions tune a Producer.
type ProducerOptions struct {
	// Wait is the policy of blocking calls.
	Wait WaitPolicy
	// Liveness is how often a producer waiting for room checks that the
	// consumer is alive. Zero means DefaultLiveness.
	Liveness time.Duration
	// WaitForConsumer keeps a producer waiting for room when the consumer
	// has died, for a new consumer to drain the ring. Without it the wait
	// ends with ErrConsumerDead.
	WaitForConsumer bool
	// EndWithConsumer ends a wait for room with ErrConsumerClosed once the
	// consumer line is not attached (its consumer closed, and rang the
	// space doorbell as it left): for a ring whose one consumer never
	// comes back, a connection's. Only a wait looks; a call that finds
	// room does not.
	EndWithConsumer bool
	// Name, if set, names the ring in the producer's errors (see
	// ErrorNamed).
	Name string
}

// NewProducer attaches a producer to the ring, taking a free slot (or the
// slot of a dead producer with nothing in flight). A single producer resumes
// after the last record committed; producers on a multi-producer ring claim
// space at the shared tail.
func (r *Ring) NewProducer(o ProducerOptions) (*Producer, error) {
	if r.Removed() {
		return nil, ErrRingRemoved
	}
	slot, err := r.attachSlot()
	if err != nil {
		return nil, err
	}
	p := &Producer{r: r, slot: slot, slotOff: r.slot(slot), multi: r.multi(), endWithConsumer: o.EndWithConsumer}
	p.kind = KindMessage | p.slot<<kindSlotShift
	head := atomic.LoadUint64(r.head)
	tail := atomic.LoadUint64(r.tail)
	if !p.multi {
		// This producer alone moves the tail, so the two are consistent
		// whatever the consumer does meanwhile.
		if !r.spanOK(head, tail) {
			r.detachSlot(slot)
			return nil, r.spanErr(head, tail)
		}
		// A predecessor may have died between committing a record and
		// publishing the tail: resume after what is committed.
		if tail, err = r.skipCommitted(tail, head); err != nil {
			r.detachSlot(slot)
			return nil, err
		}
		storeRelease64(r.tail, tail)
	}
	// On a multi-producer ring the tail and head move while they are
	// loaded; claimMulti checks them at every claim, and head is a cache.
	if o.Liveness <= 0 {
		o.Liveness = DefaultLiveness
	}
	p.tail, p.head, p.name = tail, head, o.Name
	p.wait = waiter{policy: o.Wait, spin: spinControl{phase: exploreSpin}, barrier: barrierAvailable(), parks: r.u64(p.slotOff + slotParks), every: o.Liveness}
	p.wait.progress = &p.messages
	switch {
	case r.fanout():
		p.wait.check = p.checkSubscribers
		p.wait.peers = r.subscriberPIDs
		// Sleeps end when the next look at the subscribers is due: a
		// stopped subscriber is alive, and no event says that its lag
		// bound passed; and the space doorbell is rung by processes this
		// producer does not watch (lossy subscribers, other producers),
		// one of which may die between moving the doorbell and its wake
		// call (FORMAT.md, "Doorbells").
		p.wait.inFlight = func() bool { return true }
		p.fanMulti = p.multi
	case !o.WaitForConsumer:
		p.wait.check = p.checkConsumer
		p.wait.peers = r.consumerPIDs
	}
	p.startFenced()
	return p, nil
}

// fail names the ring in an error of the producer's calls.
func (p *Producer) fail(err error) error { return ErrorNamed(p.name, "producer", err) }

// checkConsumer ends a wait for room when the consumer has died.
func (p *Producer) checkConsumer() error {
	dead, err := p.r.consumerDead()
	if err == nil && dead {
		err = ErrConsumerDead
	}
	return err
}

// MaxMessage returns the largest message the ring accepts.
func (p *Producer) MaxMessage() int { return int(p.r.maxMessage) }

// Reserve reserves room for a message of n bytes, waiting for space as the
// policy says, and returns the payload to fill in. The message becomes
// visible at Commit; Abort drops it. The slice is valid until Commit or Abort.
// With an error, nothing is reserved.
func (p *Producer) Reserve(ctx context.Context, n int) ([]byte, error) {
	if err := p.checkReserve(n); err != nil {
		return nil, p.fail(err)
	}
	rec := recordSize(uint64(n))
	ok, err := p.claim(rec)
	if !ok && err == nil {
		p.fullWaits++
		storeRelease64(p.r.u64(p.slotOff+slotFullWaits), p.fullWaits)
		err = p.wait.wait(ctx, p.r.spaceDoor, func() (bool, error) {
			ok, err := p.claim(rec)
			if !ok && err == nil && p.endWithConsumer && !p.r.consumerAttached() {
				err = ErrConsumerClosed
			}
			return ok, err
		})
	}
	if err != nil {
		return nil, p.fail(err)
	}
	return p.reserved(n), nil
}

// TryReserve is Reserve without waiting: it returns ErrFull when the ring has
// no room for n bytes now.
func (p *Producer) TryReserve(n int) ([]byte, error) {
	if err := p.checkReserve(n); err != nil {
		return nil, p.fail(err)
	}
	ok, err := p.claim(recordSize(uint64(n)))
	if ok {
		return p.reserved(n), nil
	}
	if err == nil {
		// Full. A dead consumer will never make room: say so, as a
		// waiting Reserve would, looking at its lock at most once per
		// liveness interval (the look is a system call).
		if err = p.wait.checkDue(time.Now()); err == nil {
			return nil, ErrFull
		}
	}
	return nil, p.fail(err)
}

func (p *Producer) checkReserve(n int) error {
	switch {
	case p.closed:
		return ErrClosed
	case p.resv:
		return ErrReservation
	case n < 0 || uint64(n) > uint64(p.r.maxMessage):
		return fmt.Errorf("%w: %d bytes, the maximum is %d", ErrTooLarge, n, p.r.maxMessage)
	}
	return nil
}

// reserved starts the reservation of n bytes just claimed and returns its
// payload. (Errors are named by the callers: with that here it would no
// longer inline into them, one call more per message.)
func (p *Producer) reserved(n int) []byte {
	p.resv, p.resvLen = true, uint32(n)
	off := p.resvPos&p.r.mask + RecordHeaderSize
	return p.r.data[off : off+uint64(n) : off+uint64(n)]
}

// claim makes room for a record of rec bytes at the tail, with padding
// first if the record would cross the end of the data area. It reports false
// when the ring is full. On success p.resvPos is where the record starts.
func (p *Producer) claim(rec uint64) (bool, error) {
	// One load of a header word no one writes but a remover: its cache
	// line stays shared, so the check costs about a nanosecond.
	if atomic.LoadUint32(p.r.removed) != 0 {
		return false, ErrRingRemoved
	}
	if p.multi {
		return p.claimMulti(rec)
	}
	r := p.r
	pos := p.tail
	off := pos & r.mask
	skip := uint64(0)
	if rem := r.capacity - off; rem < rec {
		skip = rem // records never wrap: pad to the end, start over
	}
	end := pos + skip + rec
	if end-p.head > r.capacity {
		h := atomic.LoadUint64(r.head)
		if !r.spanOK(h, pos) {
			return false, r.spanErr(h, pos)
		}
		p.head = h
		if end-h > r.capacity {
			if !r.fanout() {
				return false, nil
			}
			h, err := r.raise(end - r.capacity)
			if err != nil || end-h > r.capacity {
				p.noteFull(h)
				return false, err
			}
			p.head = h
		}
	}
	r.padTo(pos, pos+skip, p.slot) // nothing for a gap under a header
	if skip > 0 {
		// Fewer than RecordHeaderSize bytes left is a gap every reader
		// skips by the same rule, without a header.
		pos += skip
		p.tail = pos
		storeRelease64(r.tail, pos)
	}
	p.resvPos = pos
	return true, nil
}

// Commit publishes the reserved message with its first n bytes (n may be
// less than reserved, never more).
func (p *Producer) Commit(n int) error {
	if !p.resv {
		return p.fail(ErrNoReservation)
	}
	if n < 0 || n > int(p.resvLen) {
		return p.fail(fmt.Errorf("%w: commit of %d bytes, %d reserved", ErrCommitSize, n, p.resvLen))
	}
	p.resv = false
	p.commit(uint32(n))
	return nil
}

// Abort drops the reservation; no message of it becomes visible. (On a
// multi-producer ring its space was claimed already and becomes padding.)
func (p *Producer) Abort() error {
	if !p.resv {
		return p.fail(ErrNoReservation)
	}
	p.resv = false
	if p.multi {
		p.abortMulti()
	}
	return nil
}

// commit writes the record header and its stamp, last, then publishes the
// tail and rings the data doorbell if the consumer may be asleep.
func (p *Producer) commit(n uint32) { p.commitAs(n, p.kind, 1, uint64(n)) }

// commitAs is commit of a record of n bytes and the given kind, which holds
// msgs messages of bytes bytes in all.
func (p *Producer) commitAs(n, kind uint32, msgs, bytes uint64) {
	r := p.r
	if p.multi {
		p.commitMulti(n, kind)
	} else {
		// writeHeader, by hand: it is over the inliner's budget (cost
		// 88 of 80, go build -gcflags=-m=2), and this is the one write
		// per message of the single-producer fast path.
		pos := p.resvPos
		hdr := unsafe.Pointer(&r.data[pos&r.mask])
		*(*uint32)(hdr) = n
		*(*uint32)(unsafe.Add(hdr, recKind)) = kind
		storeRelease64((*uint64)(unsafe.Add(hdr, recStamp)), pos^r.key)
		p.tail = pos + recordSize(uint64(n))
		storePlain64(r.tail, p.tail)
		if hasPrefetchWrite && p.tail-pos <= prefetchSmall && p.tail+prefetchAhead+LineSize-p.head <= r.capacity {
			prefetchWrite(unsafe.Pointer(&r.data[(p.tail+prefetchAhead)&r.mask]))
		}
	}
	p.messages += msgs
	p.bytes += bytes
	storePlain64(r.u64(p.slotOff+slotMessages), p.messages)
	storePlain64(r.u64(p.slotOff+slotBytes), p.bytes)
	p.commitFence()
	saw, woke := r.dataDoor.ringSaw()
	if woke {
		p.wakes++
		storeRelease64(r.u64(p.slotOff+slotWakes), p.wakes)
	}
	if saw || p.fenced { // a stream, unfenced and finding no waiter, skips the call
		p.adaptFence(saw)
	}
	if p.fanMulti {
		// A producer may be waiting for this commit to move the
		// frontier over it (the same fence covers this load).
		r.spaceDoor.ring()
	}
}

// A commit of a small record (at most prefetchSmall bytes) asks for the
// line prefetchAhead bytes past the new tail in a state to write
// (prefetchWrite), if the ring's free space reaches past it by the
// producer's last look at the head (so that no unread record's line is
// taken from the consumer).
//
// Between processes, each line a producer writes was last read by the
// consumer, so each store needs the line taken back. Without the prefetch
// those requests are made as the stores retire, and an atomic operation
// after the commit waits for all of them: a Conn's Write, which takes and
// releases a lock, spent more than half its time there. With it, a 64-byte
// stream through a Conn went from 6.9-7.7 to 11.1-13.0 M messages a second,
// and through a bare ring from 29-38 to 34-41 M (cmd/shmbench, alternated
// runs). For records of 1 KiB, prefetching 192 bytes ahead made a Conn
// stream 15-25% slower, hence the limit to small records.
const (
	prefetchAhead = 192
	prefetchSmall = 256
	cacheLine     = 64 // the processor's, on amd64 (LineSize is the layout's)
)

// commitFence orders the commit before the load of the waiter count: a full
// fence when the producer is fenced (see fenced.go), else what the waiter
// needs without a barrier.
func (p *Producer) commitFence() {
	if p.fenced {
		p.wait.fenceWord.Add(0)
		return
	}
	p.wait.fence()
}

// Send copies msg into the ring, waiting for space as the policy says. With
// an error, nothing was written.
func (p *Producer) Send(ctx context.Context, msg []byte) error {
	if p.sendFast(msg) {
		return nil
	}
	buf, err := p.Reserve(ctx, len(msg))
	return p.copyCommit(buf, msg, err)
}

// sendFast is the common case of Send and TrySend in one call: a single
// producer, open and not reserving, with room for msg before the end of the
// data area by its last look at the head. It reports false, having written
// nothing, for everything else, which Reserve and Commit handle (it makes
// the same checks as they do, in another order).
//
// Through Reserve, claim, reserved and Commit a send made five calls before
// commitAs. In one goroutine, sending and receiving a 64-byte message went
// from 24.1 to 21.2 ns; between two processes a 64-byte stream went from
// 30-32 to 53-55 M messages a second (cmd/shmbench, alternated runs). The
// stream gained more than the calls cost: a producer that outruns its
// consumer leaves it far behind (most of a megabyte), where a consumer that
// keeps within a few hundred kilobytes slows the producer by a third
// (BENCHMARKS.md, "A send in one call").
func (p *Producer) sendFast(msg []byte) bool {
	r := p.r
	n := uint64(len(msg))
	pos := p.tail
	off := pos & r.mask
	rec := recordSize(n)
	if p.multi || p.closed || p.resv || n > uint64(r.maxMessage) ||
		r.capacity-off < rec || pos+rec-p.head > r.capacity ||
		atomic.LoadUint32(r.removed) != 0 {
		return false
	}
	copy(r.data[off+RecordHeaderSize:off+RecordHeaderSize+n], msg)
	p.resvPos = pos
	p.commitAs(uint32(n), p.kind, 1, n)
	return true
}

// TrySend copies msg into the ring if there is room now, else returns ErrFull
// (or ErrConsumerDead, when the consumer has died and the producer does not
// wait for a new one; its lock is looked at once per liveness interval at
// most). With an error, nothing was written.
func (p *Producer) TrySend(msg []byte) error {
	if p.sendFast(msg) {
		return nil
	}
	buf, err := p.TryReserve(len(msg))
	return p.copyCommit(buf, msg, err)
}

// copyCommit finishes Send and TrySend: it fills the reservation and
// commits it, unless reserving failed.
func (p *Producer) copyCommit(buf, msg []byte, err error) error {
	if err != nil {
		return err
	}
	copy(buf, msg)
	p.resv = false
	p.commit(uint32(len(msg)))
	return nil
}

// Close aborts any reservation, detaches from the ring and frees the slot
// and its lock. A consumer waiting for data is woken so that it can see the
// detach. Close is idempotent.
func (p *Producer) Close() error {
	if p.closed {
		return nil
	}
	if p.resv {
		p.Abort()
	}
	p.closed = true
	p.wait.release()
	p.r.detachSlot(p.slot)
	return nil
}
