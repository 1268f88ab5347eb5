package ring

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"unsafe"
)

// Consumer reads messages from a ring. There is at most one per ring at a
// time.
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

	eof    bool // report io.EOF once producers came and went, and drained
	wait   waiter
	closed bool

	messages, bytes, wakes uint64 // mirrored into the consumer line
}

// ConsumerOptions tune a Consumer.
type ConsumerOptions struct {
	// Wait is the policy of blocking calls.
	Wait WaitPolicy
	// EOF makes the consumer report io.EOF once at least one producer has
	// attached, none is attached now, and the ring is drained. Without it
	// the consumer waits for new producers.
	EOF bool
}

// NewConsumer attaches the ring's consumer and resumes at the published head:
// a consumer that replaces a dead one loses nothing that was committed.
func (r *Ring) NewConsumer(o ConsumerOptions) (*Consumer, error) {
	state := r.u32(offConsumer + consState)
	if !atomic.CompareAndSwapUint32(state, 0, consAttached) {
		return nil, ErrConsumerBusy
	}
	head, tail := atomic.LoadUint64(r.head), atomic.LoadUint64(r.tail)
	if head > tail || tail-head > r.capacity || head%RecordAlign != 0 {
		atomic.StoreUint32(state, 0)
		return nil, fmt.Errorf("%w: head %d and tail %d are more than a capacity (%d) apart", ErrCorrupt, head, tail, r.capacity)
	}
	c := &Consumer{
		r:         r,
		head:      head,
		published: head,
		batch:     max(r.capacity/8, RecordAlign),
		eof:       o.EOF,
		wait:      waiter{policy: o.Wait, barrier: barrierAvailable(), parks: r.u64(offConsumer + consParks)},
		messages:  atomic.LoadUint64(r.u64(offConsumer + consMessages)),
		bytes:     atomic.LoadUint64(r.u64(offConsumer + consBytes)),
		wakes:     atomic.LoadUint64(r.u64(offConsumer + consWakes)),
	}
	c.wait.nparks = atomic.LoadUint64(c.wait.parks)
	atomic.StoreUint32(r.u32(offConsumer+consPID), uint32(os.Getpid()))
	return c, nil
}

// MaxMessage returns the largest message the ring carries.
func (c *Consumer) MaxMessage() int { return int(c.r.maxMessage) }

// next looks for the committed record at the head. It returns the payload's
// offset in the data area, its length, and the position after the record;
// ok is false when nothing is committed there yet.
func (c *Consumer) next() (off, n, after uint64, ok bool, err error) {
	r := c.r
	pos := c.head
	for range 2 { // at most one padding record before a message
		off = pos & r.mask
		rem := r.capacity - off
		if rem < RecordHeaderSize {
			pos += rem // the gap rule: too small for a header, skipped
			off, rem = 0, r.capacity
		}
		hdr := unsafe.Pointer(&r.data[off])
		if atomic.LoadUint64((*uint64)(unsafe.Add(hdr, recStamp))) != pos^r.key {
			return 0, 0, 0, false, nil
		}
		// The stamp was loaded with acquire semantics, so the header
		// words written before it are visible now. Load each once.
		length := uint64(*(*uint32)(hdr))
		kind := *(*uint32)(unsafe.Add(hdr, recKind))
		switch kind & kindTypeMask {
		case KindMessage:
			if length > uint64(r.maxMessage) || recordSize(length) > rem {
				return 0, 0, 0, false, fmt.Errorf("%w: record at position %d claims %d bytes (max %d, %d left before the end)", ErrCorrupt, pos, length, r.maxMessage, rem-RecordHeaderSize)
			}
			return off + RecordHeaderSize, length, pos + recordSize(length), true, nil
		case KindPadding:
			if length != rem-RecordHeaderSize {
				return 0, 0, 0, false, fmt.Errorf("%w: padding at position %d is %d bytes, %d remain before the end", ErrCorrupt, pos, length, rem-RecordHeaderSize)
			}
			pos += rem
		default:
			return 0, 0, 0, false, fmt.Errorf("%w: record at position %d has kind %#x", ErrCorrupt, pos, kind)
		}
	}
	return 0, 0, 0, false, fmt.Errorf("%w: padding follows padding at position %d", ErrCorrupt, pos)
}

// advance consumes records up to pos and publishes the head when a batch is
// complete.
func (c *Consumer) advance(pos, n uint64) {
	c.head = pos
	c.messages++
	c.bytes += n
	if pos-c.published >= c.batch {
		c.publish()
	}
}

// publish stores the head for the producers, with the counters, and rings
// the space doorbell if a producer may be asleep waiting for room.
func (c *Consumer) publish() {
	r := c.r
	c.published = c.head
	storeRelease64(r.head, c.head)
	storeRelease64(r.u64(offConsumer+consMessages), c.messages)
	storeRelease64(r.u64(offConsumer+consBytes), c.bytes)
	if !c.wait.barrier && !releaseIsFence {
		atomic.AddUint64(&c.bytes, 0) // a full fence before loading the waiter count
	}
	if ring(r.spaceBell, r.spaceWaiters) {
		c.wakes++
		storeRelease64(r.u64(offConsumer+consWakes), c.wakes)
	}
}

// poll is one look for a message: it releases a held view, then reports a
// record if one is committed. When the ring is empty it publishes the head
// and reports io.EOF if the producers are gone for good.
func (c *Consumer) poll() (off, n, after uint64, ok bool, err error) {
	if c.closed {
		return 0, 0, 0, false, ErrClosed
	}
	if c.viewing {
		c.viewing = false
		c.advance(c.viewNext, c.viewLen)
	}
	off, n, after, ok, err = c.next()
	if ok || err != nil {
		return off, n, after, ok, err
	}
	if c.head != c.published {
		c.publish()
	}
	if c.eof && c.producersGone() {
		// A producer commits before it detaches: look once more.
		if off, n, after, ok, err = c.next(); ok || err != nil {
			return off, n, after, ok, err
		}
		return 0, 0, 0, false, io.EOF
	}
	return 0, 0, 0, false, nil
}

// producersGone reports whether producers came and all went. It loads the
// attach count before the attached count; producers increment them in the
// other order.
func (c *Consumer) producersGone() bool {
	r := c.r
	return atomic.LoadUint64(r.u64(offProducers+prodsAttaches)) > 0 &&
		atomic.LoadUint32(r.u32(offProducers+prodsAttached)) == 0
}

// Peek returns a view of the next message, waiting for one as the policy
// says. The view points into shared memory and is valid until the next call
// of Peek, TryPeek, Release, Recv, TryRecv or Close; Release consumes it.
// With ConsumerOptions.EOF it returns io.EOF at the end of the stream.
func (c *Consumer) Peek(ctx context.Context) ([]byte, error) {
	var off, n, after uint64
	try := func() (bool, error) {
		var ok bool
		var err error
		off, n, after, ok, err = c.poll()
		return ok, err
	}
	if ok, err := try(); !ok {
		if err == nil {
			err = c.wait.wait(ctx, c.r.dataBell, c.r.dataWaiters, try)
		}
		if err != nil {
			return nil, err
		}
	}
	return c.view(off, n, after), nil
}

// TryPeek is Peek without waiting: it returns ErrEmpty when no message is
// committed now.
func (c *Consumer) TryPeek() ([]byte, error) {
	off, n, after, ok, err := c.poll()
	if err != nil {
		return nil, err
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

// Release consumes the message returned by Peek or TryPeek. Its view must
// not be used afterwards. Release without a view does nothing.
func (c *Consumer) Release() {
	if c.viewing {
		c.viewing = false
		c.advance(c.viewNext, c.viewLen)
	}
}

// Recv copies the next message into buf and returns its length, waiting for
// one as the policy says. If buf is too small it returns ErrShortBuffer and
// the message stays in the ring.
func (c *Consumer) Recv(ctx context.Context, buf []byte) (int, error) {
	msg, err := c.Peek(ctx)
	if err != nil {
		return 0, err
	}
	return c.copyOut(buf, msg)
}

// TryRecv is Recv without waiting: it returns ErrEmpty when no message is
// committed now.
func (c *Consumer) TryRecv(buf []byte) (int, error) {
	msg, err := c.TryPeek()
	if err != nil {
		return 0, err
	}
	return c.copyOut(buf, msg)
}

func (c *Consumer) copyOut(buf, msg []byte) (int, error) {
	if len(buf) < len(msg) {
		c.viewing = false // leave the message in the ring
		return 0, fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrShortBuffer, len(msg), len(buf))
	}
	n := copy(buf, msg)
	c.Release()
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
	atomic.StoreUint32(c.r.u32(offConsumer+consPID), 0)
	atomic.StoreUint32(c.r.u32(offConsumer+consState), 0)
	return nil
}
