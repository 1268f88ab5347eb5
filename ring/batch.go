package ring

import (
	"context"
	"fmt"
	"unsafe"
)

// Batches: several messages in one record (FORMAT.md, "Batches"). A
// producer that has many small messages at hand sends them with one claim
// and one commit instead of one each: on a multi-producer ring, one
// compare-and-swap on the shared tail for the lot. The consumer hands them
// out one by one, exactly like messages of their own.

// entrySize is the space a message of n bytes takes in a batch.
func entrySize(n uint64) uint64 {
	return EntryHeaderSize + (n+RecordAlign-1)&^(RecordAlign-1)
}

// batchFit returns how many of msgs, from the first, fit in one batch
// record, and the record's payload size.
func (p *Producer) batchFit(msgs [][]byte) (k int, size uint64) {
	for _, m := range msgs {
		s := size + entrySize(uint64(len(m)))
		if s > uint64(p.r.maxMessage) {
			break
		}
		k, size = k+1, s
	}
	return k, size
}

// SendBatch sends messages from msgs, in order, as one record: as many as
// fit in MaxMessage bytes counting EntryHeaderSize and padding to
// RecordAlign for each. It waits for space as the policy says and returns
// how many it sent; send the rest with another call. A first message too
// large for a batch is sent alone (if it is not over MaxMessage), and so is a
// lone message. The consumer receives each message separately. It returns
// a count above 0 only with a nil error; with an error, nothing of this call
// was written.
func (p *Producer) SendBatch(ctx context.Context, msgs [][]byte) (int, error) {
	return p.sendBatch(msgs, func(n int) ([]byte, error) { return p.Reserve(ctx, n) })
}

// TrySendBatch is SendBatch without waiting: it returns ErrFull when the ring
// has no room for the batch now.
func (p *Producer) TrySendBatch(msgs [][]byte) (int, error) {
	return p.sendBatch(msgs, p.TryReserve)
}

func (p *Producer) sendBatch(msgs [][]byte, reserve func(int) ([]byte, error)) (int, error) {
	k, size := p.batchFit(msgs)
	if k <= 1 {
		if len(msgs) == 0 {
			return 0, nil
		}
		buf, err := reserve(len(msgs[0]))
		if err := p.copyCommit(buf, msgs[0], err); err != nil {
			return 0, err
		}
		return 1, nil
	}
	buf, err := reserve(int(size))
	if err != nil {
		return 0, err
	}
	var bytes uint64
	off := uint64(0)
	for _, m := range msgs[:k] {
		hdr := unsafe.Pointer(&buf[off])
		*(*uint32)(hdr) = uint32(len(m))
		*(*uint32)(unsafe.Add(hdr, 4)) = 0
		copy(buf[off+EntryHeaderSize:], m)
		off += entrySize(uint64(len(m)))
		bytes += uint64(len(m))
	}
	p.resv = false
	p.commitAs(uint32(size), KindBatch|p.slot<<kindSlotShift, uint64(k), bytes)
	return k, nil
}

// enterBatch starts reading the batch record rec (validated by recordAt)
// and returns its first message.
func (c *Consumer) enterBatch(rec record) (off, n, after uint64, ok bool, err error) {
	c.inBatch = true
	c.batchStart = rec.pos&c.r.mask + RecordHeaderSize
	c.entryOff = c.batchStart
	c.batchEnd = c.batchStart + rec.length
	c.batchAfter = rec.after
	return c.nextEntry()
}

// nextEntry returns the message at the consumer's place in a batch. The
// head stays at the batch's record until its last message is consumed, so
// the position returned as after is the head's, except for the last.
func (c *Consumer) nextEntry() (off, n, after uint64, ok bool, err error) {
	r := c.r
	hdr := unsafe.Pointer(&r.data[c.entryOff])
	n = uint64(*(*uint32)(hdr))
	zero := *(*uint32)(unsafe.Add(hdr, 4))
	next := c.entryOff + entrySize(n)
	if zero != 0 || n > uint64(r.maxMessage) || next > c.batchEnd {
		return 0, 0, 0, false, fmt.Errorf("%w: batch at position %d: entry at offset %d claims %d bytes (second word %#x), the batch ends at offset %d",
			ErrCorrupt, c.head, c.entryOff, n, zero, c.batchEnd)
	}
	after = c.head
	if next == c.batchEnd {
		after = c.batchAfter
	}
	return c.entryOff + EntryHeaderSize, n, after, true, nil
}

// consumeEntry moves past the batch's message of n bytes just consumed.
func (c *Consumer) consumeEntry(n uint64) {
	c.entryOff += entrySize(n)
	if c.entryOff >= c.batchEnd {
		c.inBatch = false
	}
}

// batchMark is the consumer_batch word for the consumer's place now: the low
// 32 bits of the head, and the offset of the next entry in the batch at the
// head (zero outside a batch).
func (c *Consumer) batchMark() uint64 {
	if !c.inBatch {
		return 0
	}
	return uint64(uint32(c.head))<<32 | (c.entryOff - c.batchStart)
}

// resumeBatch continues a predecessor's batch where it stopped, as the
// consumer_batch word says. The word is untrusted: it is used only if it
// names the head, the record there is a batch, and walking its entries
// lands exactly on the offset. Otherwise the whole batch is delivered again
// (at least once, as after a consumer's death).
func (c *Consumer) resumeBatch(mark uint64) {
	skip := mark & 0xffffffff
	if skip == 0 || uint32(mark>>32) != uint32(c.head) {
		return
	}
	rec, ok, err := c.r.recordAt(c.head)
	if !ok || err != nil || rec.typ != KindBatch || skip >= rec.length {
		return
	}
	start := rec.pos&c.r.mask + RecordHeaderSize
	off := uint64(0)
	for off < skip {
		n := uint64(*(*uint32)(unsafe.Pointer(&c.r.data[start+off])))
		if n > uint64(c.r.maxMessage) {
			return
		}
		off += entrySize(n)
	}
	if off != skip {
		return
	}
	c.inBatch = true
	c.batchStart, c.entryOff, c.batchEnd, c.batchAfter = start, start+skip, start+rec.length, rec.after
}
