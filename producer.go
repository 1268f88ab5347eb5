package shmring

import (
	"context"
	"errors"

	"github.com/shmring/shmring/ring"
)

// Producer writes messages into a ring. It is not safe for concurrent use:
// one goroutine at a time may call its methods; goroutines that send at once
// need a Producer each, on a multi-producer ring (WithMultiProducer). It must
// not be copied.
//
// A Producer owns one slot of the ring, and a lock on it that the kernel
// releases if the process dies. A Producer waiting for room returns
// ErrConsumerDead when the consumer has died, unless the ring was opened
// WithWaitForConsumer. Once the ring is removed or replaced by any process,
// every call returns ErrRingRemoved, a blocked one at once.
type Producer struct {
	p    *ring.Producer
	ring *Ring    // nil after Close
	set  *WaitSet // the set it belongs to, if any
}

// MaxMessage returns the largest message the ring accepts, in bytes.
func (p *Producer) MaxMessage() int { return p.p.MaxMessage() }

// Send copies msg into the ring, waiting for room until ctx ends. When it
// returns an error, nothing of msg was written: a message over MaxMessage
// (ErrTooLarge), a dead consumer (ErrConsumerDead), a removed ring
// (ErrRingRemoved), a closed Producer, or the end of ctx, whose error it
// returns as it is.
func (p *Producer) Send(ctx context.Context, msg []byte) error {
	return p.p.Send(ctx, msg)
}

// TrySend copies msg into the ring if there is room now, else returns
// ErrFull, or ErrConsumerDead when the ring is full and its consumer has
// died (looked at no more than once per liveness interval). When it returns
// an error, nothing was written.
func (p *Producer) TrySend(msg []byte) error { return p.p.TrySend(msg) }

// SendBatch sends messages from msgs, in order, as one record, and returns
// how many it sent: as many as fit in MaxMessage bytes, counting 8 bytes
// and padding to a multiple of 8 for each. It waits for room until ctx ends.
// Call it again with the rest. The consumer receives the messages one by one,
// as if each had been sent alone.
//
// It returns n > 0 only with a nil error. When it returns an error, n is 0
// and nothing of this call was written (the messages of earlier calls were).
//
// A batch costs one claim and one commit however many messages it holds: on
// a multi-producer ring, one compare-and-swap on the shared tail. It is the
// ring's bufio: collect what is at hand, send it at once. A lone message, or
// a first one too large for a batch, is sent alone.
func (p *Producer) SendBatch(ctx context.Context, msgs [][]byte) (int, error) {
	return p.p.SendBatch(ctx, msgs)
}

// TrySendBatch is SendBatch without waiting: it returns ErrFull (or
// ErrConsumerDead, as TrySend does), having sent nothing, when there is no
// room now.
func (p *Producer) TrySendBatch(msgs [][]byte) (int, error) {
	return p.p.TrySendBatch(msgs)
}

// Reserve returns n bytes of the ring to write a message into in place,
// waiting for room until ctx ends. The message becomes visible at Commit and
// is dropped by Abort; the slice must not be used after either. When it
// returns an error, nothing is reserved.
func (p *Producer) Reserve(ctx context.Context, n int) ([]byte, error) {
	return p.p.Reserve(ctx, n)
}

// TryReserve is Reserve without waiting: it returns ErrFull (or
// ErrConsumerDead, as TrySend does) when there is no room now.
func (p *Producer) TryReserve(n int) ([]byte, error) {
	return p.p.TryReserve(n)
}

// Commit publishes the reserved message with its first n bytes. A length
// that is negative or over the reserved one returns ErrCommitSize and leaves
// the reservation in progress.
func (p *Producer) Commit(n int) error { return p.p.Commit(n) }

// Abort drops the reserved message. (On a multi-producer ring its space was
// claimed already, and becomes padding that the consumer skips.)
func (p *Producer) Abort() error { return p.p.Abort() }

// Close detaches the producer; a reservation in progress is dropped. It is
// idempotent.
func (p *Producer) Close() error {
	if p.ring == nil {
		return nil
	}
	if s := p.set; s != nil {
		s.Remove(p)
	}
	err := Guarded(p.p.Close)
	r := p.ring
	p.ring = nil
	return errors.Join(err, r.release())
}
