package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/shmring/shmring/internal/testhook"
)

// Consumer reads messages from a ring. There is at most one per ring at a
// time, enforced by its liveness lock.
//
// Delivery: while a consumer lives, it returns every committed message
// exactly once, in the order of the ring. It stores its head in shared
// memory (after every capacity/8 bytes, whenever it finds the ring empty,
// and at Close) only past messages a call has already returned: a message
// from Recv or TryRecv is consumed in shared memory by the consumer's next
// call, one from Peek or TryPeek by Release or the next call. When a
// consumer dies, its successor resumes at the last head stored, and returns
// again the messages the dead one had returned since (at most capacity/8
// bytes of records, plus one): across a consumer's death every committed
// message is returned by some call at least once, and none is skipped.
//
// A Consumer is not safe for concurrent use: one goroutine at a time may call
// its methods. It must not be copied.
type Consumer struct {
	r *Ring

	head      uint64 // position of the next record, owned by the consumer
	published uint64 // the head value last stored in shared memory
	batch     uint64 // publish the head after this many bytes at most

	// The view handed out by Peek: it ends at viewNext.
	viewing  bool
	viewNext uint64
	viewLen  uint64

	// A batch being read (batch.go): its entries run from batchStart to
	// batchEnd in the data area, the next message's is at entryOff, and the
	// record ends at position batchAfter. The head stays at the record
	// meanwhile.
	inBatch                                    bool
	batchStart, entryOff, batchEnd, batchAfter uint64

	eof      bool   // report io.EOF once producers came and went, and drained
	eofAfter uint64 // ... at least this many of them
	closed   bool
	name     string // ConsumerOptions.Name, for errors

	empties uint32 // empty polls, to look at the peers now and then
	small   bool   // the last message was a small record (prefetchSmall)
	oneCall bool   // reads take the one-call path where they can (plainNext)

	messages, bytes, wakes, recovered, reaped, corrupt uint64 // mirrored into the consumer line

	// Last: the fields of every message come first, on as few cache lines
	// as they fit.
	wait waiter

	line uint64  // offset of its line: the consumer line, or a subscriber line
	pub  *uint64 // where it publishes its head: the ring's head word, or its line's
	fan  *fanSub // a fan-out ring's subscriber (subscriber.go); nil for the consumer

	// Keeps the next heap object's fields off this one's cache lines: a
	// Producer and a Consumer in one process may be allocated side by side.
	_ [LineSize]byte
}

// ConsumerOptions tune a Consumer.
type ConsumerOptions struct {
	// Wait is the policy of blocking calls.
	Wait WaitPolicy
	// EOF makes the consumer report io.EOF once at least one producer has
	// attached, none is attached now, and the ring is drained. Without it
	// the consumer waits for new producers.
	EOF bool
	// EOFAfter delays io.EOF until at least this many producers have
	// attached since the ring was created (zero means one).
	EOFAfter uint64
	// Liveness is how often the consumer, while it finds nothing to read,
	// looks for dead producers: it frees their slots (which the io.EOF
	// rule counts as detached) and, on a multi-producer ring, skips a
	// claim a dead producer left unfinished at the head. Zero means
	// DefaultLiveness. The ring goes on within about this interval after a
	// producer dies.
	Liveness time.Duration
	// Name, if set, names the ring in the consumer's errors (see
	// ErrorNamed).
	Name string
	// GiveP makes the consumer's kernel sleeps give up the thread's P
	// (its right to run Go code) at once: for a consumer that waits long
	// and seldom (a listener's), whose sleep should not keep a P from
	// the process's other goroutines, nor take a place of the few
	// sleepers that keep theirs for a quick wake-up.
	GiveP bool
}

// NewConsumer attaches the ring's consumer and resumes at the published head:
// a consumer that replaces a dead one loses nothing that was committed.
func (r *Ring) NewConsumer(o ConsumerOptions) (*Consumer, error) {
	if r.Removed() {
		return nil, ErrRingRemoved
	}
	if r.fanout() {
		return nil, ErrFanout
	}
	ok, err := r.locker.TryLock(offConsumer)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrConsumerBusy
	}
	head, tail := atomic.LoadUint64(r.head), atomic.LoadUint64(r.tail)
	if !r.spanOK(head, tail) {
		r.unlock(offConsumer)
		return nil, r.spanErr(head, tail)
	}
	if o.Liveness <= 0 {
		o.Liveness = DefaultLiveness
	}
	c := &Consumer{
		r:         r,
		line:      offConsumer,
		pub:       r.head,
		head:      head,
		published: head,
		batch:     max(r.capacity/8, RecordAlign),
		eof:       o.EOF,
		eofAfter:  max(o.EOFAfter, 1),
		name:      o.Name,
		oneCall:   oneCPU(),
		wait:      waiter{policy: o.Wait, spin: spinControl{phase: exploreSpin}, barrier: barrierAvailable(), parks: r.u64(offConsumer + consParks), every: o.Liveness, giveP: o.GiveP},
		messages:  atomic.LoadUint64(r.u64(offConsumer + consMessages)),
		bytes:     atomic.LoadUint64(r.u64(offConsumer + consBytes)),
		wakes:     atomic.LoadUint64(r.u64(offConsumer + consWakes)),
		recovered: atomic.LoadUint64(r.u64(offConsumer + consRecovered)),
		reaped:    atomic.LoadUint64(r.u64(offConsumer + consReaped)),
		corrupt:   atomic.LoadUint64(r.u64(offConsumer + consCorrupt)),
	}
	c.resumeBatch(atomic.LoadUint64(r.u64(offConsumer + consBatch)))
	c.wait.check = func() error { return c.noteCorrupt(c.maintain()) }
	c.wait.progress, c.wait.lastProgress = &c.messages, c.messages
	c.wait.peersFence = r.producersFence
	c.wait.nparks = atomic.LoadUint64(c.wait.parks)
	// A predecessor marked attached died: its lock is ours now. Either way
	// the line is ours; the generation tells producers it changed hands.
	atomic.AddUint64(r.u64(offConsumer+consGen), 1)
	atomic.StoreUint32(r.u32(offConsumer+consState), consAttached)
	atomic.StoreUint32(r.u32(offConsumer+consPID), uint32(os.Getpid()))
	c.wait.peers = r.producerPIDs
	c.wait.inFlight = func() bool { return atomic.LoadUint64(r.tail) != c.head }
	// Producers asleep for room watch the consumer they saw: wake them
	// to watch this one, and wake them all, in case the consumer before
	// died between its compare-and-swap of the doorbell and its wake
	// call (FORMAT.md, "Doorbells").
	r.spaceDoor.wakeAll()
	return c, nil
}

// MaxMessage returns the largest message the ring carries.
func (c *Consumer) MaxMessage() int { return int(c.r.maxMessage) }

// next looks for the committed message at the head, consuming any padding
// before it. It returns the payload's offset in the data area, its length,
// and the position after the record; ok is false when nothing is committed
// there yet.
func (c *Consumer) next() (off, n, after uint64, ok bool, err error) {
	if c.inBatch {
		return c.nextEntry()
	}
	// The common case inline: a plain message, away from the end.
	r := c.r
	pos := c.head
	off = pos & r.mask
	if rem := r.capacity - off; rem >= RecordHeaderSize {
		hdr := unsafe.Pointer(&r.data[off])
		if atomic.LoadUint64((*uint64)(unsafe.Add(hdr, recStamp))) != pos^r.key {
			return 0, 0, 0, false, nil
		}
		n = uint64(*(*uint32)(hdr))
		kind := *(*uint32)(unsafe.Add(hdr, recKind))
		if kind&(kindTypeMask|kindFlagMask) == KindMessage && n <= uint64(r.maxMessage) && recordSize(n) <= rem {
			return off + RecordHeaderSize, n, pos + recordSize(n), true, nil
		}
	}
	return c.nextSlow()
}

// nextSlow is next for everything else: the gap rule, padding, slack, and
// headers that need a closer look.
func (c *Consumer) nextSlow() (off, n, after uint64, ok bool, err error) {
	for range maxPaddingRun {
		rec, ok, err := c.r.recordAt(c.head)
		if !ok || err != nil {
			return 0, 0, 0, false, err
		}
		switch rec.typ {
		case KindMessage:
			return rec.pos&c.r.mask + RecordHeaderSize, rec.length, rec.after, true, nil
		case KindBatch:
			return c.enterBatch(rec)
		}
		c.head = rec.after // padding: consumed, no message
	}
	return 0, 0, 0, false, nil // a long run of padding: the caller looks again
}

// maxPaddingRun bounds the padding records one look consumes.
const maxPaddingRun = 64

// advance consumes records up to pos. It does not publish the head: a
// message is consumed in shared memory only once the call that hands it out
// has returned (see publishDue).
func (c *Consumer) advance(pos, n uint64) {
	if c.inBatch {
		c.consumeEntry(n)
	}
	c.head = pos
	c.messages++
	c.bytes += n
	c.small = recordSize(n) <= prefetchSmall
}

// publishDue publishes the head once capacity/8 bytes have been consumed
// since it was last published. It runs at the start of a read call and in
// Release, never between taking a message and returning it from Recv or
// TryRecv: a consumer that dies inside Recv after storing a head past the
// message it was about to return would lose it, since its successor starts
// at that head.
func (c *Consumer) publishDue() {
	if c.head-c.published >= c.batch {
		c.publish()
	}
}

// publish stores the head for the producers, with the counters, and rings
// the space doorbell if a producer may be asleep waiting for room.
func (c *Consumer) publish() {
	r := c.r
	c.published = c.head
	storeRelease64(r.u64(c.line+consBatch), c.batchMark())
	storeRelease64(c.pub, c.head)
	if testhook.HeadStored != nil {
		testhook.HeadStored()
	}
	storeRelease64(r.u64(c.line+consMessages), c.messages)
	storeRelease64(r.u64(c.line+consBytes), c.bytes)
	c.wait.fence()
	if r.spaceDoor.ring() {
		c.wakes++
		storeRelease64(r.u64(c.line+consWakes), c.wakes)
	}
}

// poll is one look for a message: it releases a held view, then reports a
// record if one is committed. When the ring is empty it publishes the head
// and reports io.EOF if the producers are gone for good.
func (c *Consumer) poll() (off, n, after uint64, ok bool, err error) {
	if c.closed {
		return 0, 0, 0, false, ErrClosed
	}
	if c.fan != nil {
		if err := c.fanPrecheck(); err != nil {
			return 0, 0, 0, false, err
		}
	}
	if c.viewing {
		if c.fan != nil {
			if err := c.fanCheck(); err != nil {
				return 0, 0, 0, false, err
			}
		}
		c.viewing = false
		c.advance(c.viewNext, c.viewLen)
	}
	c.publishDue()
	off, n, after, ok, err = c.next()
	if ok {
		return off, n, after, true, nil
	}
	if c.fan != nil {
		// Nothing, or a record that makes no sense: it may have been
		// overwritten under the subscriber.
		if ferr := c.fanOverrun(); ferr != nil {
			return 0, 0, 0, false, ferr
		}
	}
	if err != nil {
		return 0, 0, 0, false, c.noteCorrupt(err)
	}
	if c.head != c.published {
		c.publish()
	}
	if c.empties++; c.empties%256 == 0 {
		// Callers that never block (TryPeek in a loop) look at the
		// peers too; blocking calls do it from the waiter.
		if err := c.wait.checkDue(time.Now()); err != nil {
			return 0, 0, 0, false, c.noteCorrupt(err)
		}
	}
	if testhook.BeforeEndLook != nil {
		testhook.BeforeEndLook()
	}
	if c.eof && c.producersGone() {
		// A producer commits before it detaches: look once more.
		if off, n, after, ok, err = c.lookAgain(); ok || err != nil {
			return off, n, after, ok, err
		}
		return 0, 0, 0, false, io.EOF
	}
	if c.small {
		// The next record is likely small too: its header's line is
		// the one polled, and its payload probably ends in the next.
		// Asking for that line at each empty look brings it as soon as
		// the producer has written it, which comes before the header:
		// the trip for it is then off the critical path.
		prefetchRead(unsafe.Pointer(&c.r.data[(c.head&^(cacheLine-1)+cacheLine)&c.r.mask]))
	}
	if c.r.Removed() {
		// Nobody will write it again: new claims check the mark. A
		// claim made just before it may have committed since: look
		// once more.
		if off, n, after, ok, err = c.lookAgain(); ok || err != nil {
			return off, n, after, ok, err
		}
		return 0, 0, 0, false, ErrRingRemoved
	}
	return 0, 0, 0, false, nil
}

// lookAgain is poll's last look before it reports the end of the stream or
// the removal. For a subscriber, nothing at its head or a record that makes
// no sense may mean that its head was overwritten since poll's first look: a
// lap, or an eviction, as in that first look. A subscriber that found
// nothing, stalled (a SIGSTOP, a preemption) while the producers evicted it,
// passed it and left, and then found nothing again, would otherwise report a
// clean end of a stream it did not read to its end.
func (c *Consumer) lookAgain() (off, n, after uint64, ok bool, err error) {
	off, n, after, ok, err = c.next()
	if !ok && c.fan != nil {
		if ferr := c.fanCheck(); ferr != nil {
			return 0, 0, 0, false, ferr
		}
	}
	return off, n, after, ok, c.noteCorrupt(err)
}

// producersGone reports whether producers came and all went. It loads the
// attach count before the attached count; producers increment them in the
// other order.
func (c *Consumer) producersGone() bool {
	r := c.r
	if atomic.LoadUint64(r.u64(offProducers+prodsAttaches)) < c.eofAfter ||
		atomic.LoadUint32(r.u32(offProducers+prodsAttached)) != 0 {
		return false
	}
	// The count says none; the kernel's locks must agree, or the count is
	// lying: a scribbled word must not end the stream early. So every
	// slot's lock is asked, whatever its state word says (a scribbled
	// state would hide a live producer as well as the count): one query a
	// slot, made only when the count says none.
	for i := range r.slotsInUse() {
		if held, err := r.locker.Locked(int64(r.slot(i))); err != nil || held {
			return false
		}
	}
	return true
}

// Peek returns a view of the next message, waiting for one as the policy
// says. The view points into shared memory and is valid until the next call
// of Peek, TryPeek, Release, Recv, TryRecv or Close; Release consumes it.
// With ConsumerOptions.EOF it returns io.EOF at the end of the stream.
func (c *Consumer) Peek(ctx context.Context) ([]byte, error) {
	if msg, ok := c.peekFast(); ok {
		return msg, nil
	}
	var off, n, after uint64
	try := func() (bool, error) {
		var ok bool
		var err error
		off, n, after, ok, err = c.poll()
		return ok, err
	}
	if ok, err := try(); !ok {
		if err == nil {
			err = c.wait.wait(ctx, c.r.dataDoor, try)
		}
		if err != nil {
			return nil, c.fail(err)
		}
	}
	return c.view(off, n, after), nil
}

// TryPeek is Peek without waiting: it returns ErrEmpty when no message is
// committed now.
func (c *Consumer) TryPeek() ([]byte, error) {
	if msg, ok := c.peekFast(); ok {
		return msg, nil
	}
	off, n, after, ok, err := c.poll()
	if err != nil {
		return nil, c.fail(err)
	}
	if !ok {
		return nil, ErrEmpty
	}
	return c.view(off, n, after), nil
}

func (c *Consumer) view(off, n, after uint64) []byte {
	c.viewing, c.viewNext, c.viewLen = true, after, n
	return c.r.data[off : off+n : off+n]
}

// Release consumes the message returned by Peek or TryPeek, and gives its
// space back to the producers as publishing allows (see Consumer). Its view
// must not be used afterwards. Release without a view does nothing.
func (c *Consumer) Release() {
	if c.viewing {
		c.release() // out of line, so that Release inlines into its callers
	}
}

// release consumes the view: the message was handed out by Peek already,
// so the head may be published past it.
func (c *Consumer) release() {
	c.viewing = false
	c.advance(c.viewNext, c.viewLen)
	c.publishDue()
}

// Recv copies the next message into buf and returns its length, waiting for
// one as the policy says. If buf is too small it returns ErrShortBuffer and
// the message stays in the ring. The message's space goes back to the
// producers at the consumer's next call, not before Recv returns (see
// Consumer).
func (c *Consumer) Recv(ctx context.Context, buf []byte) (int, error) {
	if n, ok := c.recvFast(buf); ok {
		return n, nil
	}
	msg, err := c.Peek(ctx)
	if err != nil {
		return 0, err
	}
	return c.copyOut(buf, msg)
}

// TryRecv is Recv without waiting: it returns ErrEmpty when no message is
// committed now.
func (c *Consumer) TryRecv(buf []byte) (int, error) {
	if n, ok := c.recvFast(buf); ok {
		return n, nil
	}
	msg, err := c.TryPeek()
	if err != nil {
		return 0, err
	}
	return c.copyOut(buf, msg)
}

// plainNext is the one-call path of the reading calls (Recv, TryRecv, Peek,
// TryPeek), taken by a consumer whose process may use one CPU at most
// (oneCall; not by a subscriber, nor inside a batch): it releases a view
// still held and publishes the head if due, as poll does first, then
// reports a plain message committed at the head, away from the end of the
// data area, checked as next checks it. It reports false for everything
// else, which the general path then handles from the same state.
//
// With free cores the reading calls keep their general path: a consumer
// made this much cheaper keeps closer behind its producer, and between two
// cores that slows the producer more than the consumer gains (a 64-byte
// stream between two processes: 38-42 M messages a second against 53-60 M;
// BENCHMARKS.md, "A send in one call"). On one CPU no line moves between
// cores, and what the consumer saves goes to the producer: the stream went
// from 32.3-32.6 to 34.0-34.4 M, four producers from 23.0-23.1 to
// 24.3-24.4 M (shmbench -cpus 1, alternated runs).
func (c *Consumer) plainNext() (off, n, after uint64, ok bool) {
	if !c.oneCall || c.closed || c.fan != nil || c.inBatch {
		return 0, 0, 0, false
	}
	if c.viewing {
		c.viewing = false
		c.advance(c.viewNext, c.viewLen)
	}
	c.publishDue()
	r := c.r
	pos := c.head
	off = pos & r.mask
	rem := r.capacity - off
	if rem < RecordHeaderSize {
		return 0, 0, 0, false
	}
	hdr := unsafe.Pointer(&r.data[off])
	if atomic.LoadUint64((*uint64)(unsafe.Add(hdr, recStamp))) != pos^r.key {
		return 0, 0, 0, false
	}
	n = uint64(*(*uint32)(hdr))
	kind := *(*uint32)(unsafe.Add(hdr, recKind))
	if kind&(kindTypeMask|kindFlagMask) != KindMessage || n > uint64(r.maxMessage) || recordSize(n) > rem {
		return 0, 0, 0, false
	}
	return off + RecordHeaderSize, n, pos + recordSize(n), true
}

// peekFast is Peek and TryPeek by plainNext.
func (c *Consumer) peekFast() ([]byte, bool) {
	off, n, after, ok := c.plainNext()
	if !ok {
		return nil, false
	}
	return c.view(off, n, after), true
}

// recvFast is Recv and TryRecv by plainNext, for a message that fits buf.
func (c *Consumer) recvFast(buf []byte) (int, bool) {
	off, n, after, ok := c.plainNext()
	if !ok || n > uint64(len(buf)) {
		return 0, false
	}
	copy(buf, c.r.data[off:off+n])
	c.advance(after, n) // published by the next call, after this one returns
	return int(n), true
}

func (c *Consumer) copyOut(buf, msg []byte) (int, error) {
	if len(buf) < len(msg) {
		c.viewing = false // leave the message in the ring
		if c.fan != nil {
			// A length read from a record the producers were
			// overwriting is no message's length.
			if err := c.fanCheck(); err != nil {
				return 0, c.fail(err)
			}
		}
		return 0, c.fail(fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrShortBuffer, len(msg), len(buf)))
	}
	n := copy(buf, msg)
	if c.fan != nil {
		if err := c.fanCheck(); err != nil {
			c.viewing = false
			return 0, c.fail(err)
		}
	}
	c.viewing = false
	c.advance(c.viewNext, c.viewLen) // published by the next call, after this one returns
	return n, nil
}

// Close publishes the head and detaches the consumer; a new consumer resumes
// where this one stopped. A view it handed out is not consumed. Close is
// idempotent.
func (c *Consumer) Close() error {
	if c.closed {
		return nil
	}
	c.viewing = false
	c.publish()
	c.closed = true
	c.wait.release()
	atomic.StoreUint32(c.r.u32(c.line+consPID), 0)
	atomic.StoreUint32(c.r.u32(c.line+consState), 0)
	if c.fan != nil {
		// Producers waiting for room may have waited for this one.
		c.r.spaceDoor.ring()
	}
	return c.r.locker.Unlock(int64(c.line))
}

// fail names the ring in an error of the consumer's calls.
func (c *Consumer) fail(err error) error { return ErrorNamed(c.name, "consumer", err) }

// noteCorrupt counts a corruption found, in the consumer line (for
// shmstat), and returns err.
func (c *Consumer) noteCorrupt(err error) error {
	if errors.Is(err, ErrCorrupt) {
		c.corrupt++
		storeRelease64(c.r.u64(c.line+consCorrupt), c.corrupt)
	}
	return err
}

// checkStuck reports a single-producer ring whose published tail is past a
// record the consumer finds uncommitted: the producer stamps a record before
// it stores the tail, so the record's header was overwritten (hostile or
// broken memory), and without this the consumer would wait for it forever.
func (c *Consumer) checkStuck() error {
	r := c.r
	tail := atomic.LoadUint64(r.tail)
	head := c.head
	if rem := r.capacity - head&r.mask; rem < RecordHeaderSize {
		head += rem // the gap rule: the record is at the start of the area
	}
	if tail <= head {
		return nil // nothing published past the head (or the tail lags it)
	}
	if !r.spanOK(c.head, tail) {
		return r.spanErr(c.head, tail)
	}
	if _, ok, err := r.recordAt(c.head); ok || err != nil {
		return err
	}
	return fmt.Errorf("%w: tail %d is past head %d, where no record is committed (its header was overwritten)", ErrCorrupt, tail, c.head)
}

// maintain looks after the dead producers: on a multi-producer ring it skips
// a dead producer's unfinished claim at the head, and it frees the slots of
// dead producers whose claims are settled.
func (c *Consumer) maintain() error {
	if c.fan != nil {
		return c.maintainSubscriber()
	}
	if c.r.multi() {
		if _, err := c.recoverHead(); err != nil {
			return err
		}
	} else if err := c.checkStuck(); err != nil {
		return err
	}
	n, err := c.r.reap(c.head)
	if n > 0 {
		c.reaped += uint64(n)
		storeRelease64(c.r.u64(c.line+consReaped), c.reaped)
	}
	return err
}

// maintainSubscriber is maintain for a subscriber: it skips a dead
// producer's claim at its head, unless the frontier passed the head (the
// next read call reports that), and frees the slots of dead producers whose
// claims the frontier passed.
func (c *Consumer) maintainSubscriber() error {
	r := c.r
	front := atomic.LoadUint64(r.head)
	if front > c.head {
		return nil
	}
	var err error
	if r.multi() {
		_, err = c.recoverHead()
	} else {
		err = c.checkStuck()
	}
	if err != nil {
		// Producers may have moved the frontier past the head, and the
		// tail a capacity past it, between the looks: what looked like
		// corruption was a lap, which the next read call reports.
		if atomic.LoadUint64(r.head) > c.head {
			return nil
		}
		return err
	}
	n, err := r.reap(front)
	if n > 0 {
		c.reaped += uint64(n)
		storeRelease64(r.u64(c.line+consReaped), c.reaped)
	}
	return err
}
