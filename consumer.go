package shmring

import (
	"context"
	"errors"

	"github.com/shmring/shmring/ring"
)

// Consumer reads messages from a ring, in the order they were committed. It
// is not safe for concurrent use: one goroutine at a time may call its
// methods. It must not be copied.
//
// A ring has one consumer at a time, enforced by a lock the kernel releases
// when its holder dies; a second gets ErrConsumerBusy. Delivery is exactly
// once while a consumer lives, and at least once across its death: the
// consumer publishes its position in shared memory only past messages a call
// has already returned to its caller (a message from Recv or TryRecv when the
// next call starts, one from Peek at Release), every capacity/8 bytes, when
// it finds the ring empty, and at Close. A new consumer resumes at the last
// position published: after Close that is exactly where the old one stopped;
// after a crash, the messages the dead one had returned since it last
// published (at most capacity/8 bytes of them, plus one) are returned again.
// No committed message is ever skipped.
//
// While it waits, a consumer checks its producers' liveness locks (see
// WithLiveness): it frees the slot of a producer that died, and on a
// multi-producer ring it skips the claim a dead producer left unfinished at
// the head, counted in Ring.Stats as Recovered. A stopped producer is alive:
// its claim is waited for, however long.
//
// A Consumer is also what Ring.Subscribe returns for a subscriber of a
// fan-out ring (see WithSubscribers). It reads the same way, from a position
// of its own, and publishes that position instead of the ring's head. A
// lossy subscriber's read calls return a *LostError (errors.Is ErrLost) when
// the producers lapped it, and then go on at the oldest message left; an
// evicted reliable subscriber's calls return ErrEvicted.
type Consumer struct {
	c    *ring.Consumer
	ring *Ring    // nil after Close
	set  *WaitSet // the set it belongs to, if any
}

// MaxMessage returns the largest message the ring carries: a buffer of this
// size always suffices for Recv.
func (c *Consumer) MaxMessage() int { return c.c.MaxMessage() }

// Recv copies the next message into buf and returns its length, waiting
// until ctx ends. If buf is too small it returns ErrShortBuffer and leaves
// the message in the ring. At the end of the stream it returns io.EOF. The
// message's space in the ring is given back to producers when the next call
// starts (or at Close), so that a consumer killed before Recv returns does
// not lose the message: its successor reads it again.
func (c *Consumer) Recv(ctx context.Context, buf []byte) (int, error) {
	return c.c.Recv(ctx, buf)
}

// TryRecv is Recv without waiting: it returns ErrEmpty when nothing waits.
func (c *Consumer) TryRecv(buf []byte) (int, error) {
	return c.c.TryRecv(buf)
}

// Peek returns the next message in place, waiting until ctx ends. The slice
// points into shared memory: it is valid until the next call of Release,
// Peek, TryPeek, Recv, TryRecv or Close, and must not be written. Release
// consumes the message.
func (c *Consumer) Peek(ctx context.Context) ([]byte, error) {
	return c.c.Peek(ctx)
}

// TryPeek is Peek without waiting: it returns ErrEmpty when nothing waits.
func (c *Consumer) TryPeek() ([]byte, error) {
	return c.c.TryPeek()
}

// Release consumes the message returned by Peek or TryPeek. Its space goes
// back to the producers when the consumer next publishes its position (see
// Consumer).
func (c *Consumer) Release() { c.c.Release() }

// ReleaseChecked is Release that also says whether the view was intact. On a
// lossy subscriber of a fan-out ring, producers may overwrite a view while it
// is held: then ReleaseChecked returns a *LostError that counts the message,
// and what the view showed must be dropped. (On an evicted reliable
// subscriber it returns ErrEvicted.) Elsewhere a view cannot change, and it
// returns nil.
func (c *Consumer) ReleaseChecked() error { return c.c.ReleaseChecked() }

// Lossy reports whether the Consumer is a lossy subscriber of a fan-out
// ring.
func (c *Consumer) Lossy() bool { return c.c.Lossy() }

// Close detaches the consumer. Messages not released stay in the ring for the
// next consumer. It is idempotent.
func (c *Consumer) Close() error {
	if c.ring == nil {
		return nil
	}
	if s := c.set; s != nil {
		s.Remove(c)
	}
	err := Guarded(c.c.Close)
	r := c.ring
	c.ring = nil
	return errors.Join(err, r.release())
}
