package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

var (
	// ErrBadMagic is returned by Attach when the memory does not start with
	// the shmring magic number: it is not a ring.
	ErrBadMagic = errors.New("ring: bad magic number, not a shmring segment")
	// ErrVersion is returned by Attach when the layout version is not one
	// this package implements.
	ErrVersion = errors.New("ring: unsupported layout version")
	// ErrSize is returned by Attach when the memory's size disagrees with
	// the sizes the header records.
	ErrSize = errors.New("ring: segment has the wrong size")
	// ErrBadHeader is returned by Attach when a header field is out of its
	// valid range (capacity not a power of two, an impossible maximum
	// message size, a zero key, and so on).
	ErrBadHeader = errors.New("ring: invalid header field")
	// ErrNotReady is returned by Attach when the creator has not finished
	// initialising the segment (or died before it did).
	ErrNotReady = errors.New("ring: segment initialisation not complete")
	// ErrBadConfig is returned by Init and Size for a configuration that
	// cannot be laid out.
	ErrBadConfig = errors.New("ring: invalid configuration")
	// ErrCorrupt is returned when a word in shared memory holds a value no
	// correct peer could have written. The error names the word.
	ErrCorrupt = errors.New("ring: shared memory corrupt")
	// ErrTooLarge is returned when a message exceeds the ring's maximum
	// message size. Nothing is written.
	ErrTooLarge = errors.New("ring: message larger than the maximum")
	// ErrFull is returned by the non-blocking producer calls when the ring
	// has no room for the message now.
	ErrFull = errors.New("ring: full")
	// ErrEmpty is returned by the non-blocking consumer calls when no
	// committed message is waiting.
	ErrEmpty = errors.New("ring: empty")
	// ErrProducerBusy is returned when every producer slot is taken.
	ErrProducerBusy = errors.New("ring: no free producer slot")
	// ErrConsumerBusy is returned when another consumer is attached.
	ErrConsumerBusy = errors.New("ring: another consumer is attached")
	// ErrConsumerDead is returned by a producer waiting for room when the
	// ring's consumer has died (its liveness lock was released while it was
	// still marked attached), unless the producer was told to wait for a
	// new consumer.
	ErrConsumerDead = errors.New("ring: the consumer died")
	// ErrConsumerClosed is returned by a producer with
	// ProducerOptions.EndWithConsumer waiting for room when the ring's
	// consumer line is not attached: its consumer closed.
	ErrConsumerClosed = errors.New("ring: the consumer closed")
	// ErrRingRemoved is returned by producer calls, by consumer calls once
	// the ring is drained, and by NewProducer and NewConsumer, when the
	// ring has been marked removed (MarkRemoved): its name was removed, or
	// replaced by a new ring, and nobody will read or write it again.
	ErrRingRemoved = errors.New("ring: removed or replaced")
	// ErrCommitSize is returned by Commit for a length outside the
	// reservation (negative, or more than was reserved). The reservation
	// stays in progress.
	ErrCommitSize = errors.New("ring: commit length outside the reservation")
	// ErrClosed is returned by calls on a closed Producer or Consumer; it
	// wraps os.ErrClosed.
	ErrClosed = fmt.Errorf("ring: producer or consumer: %w", os.ErrClosed)
	// ErrShortBuffer is returned by Consumer.Recv when the caller's buffer
	// cannot hold the next message; the message stays in the ring.
	ErrShortBuffer = errors.New("ring: buffer too small for message")
	// ErrNoReservation is returned by Commit and Abort without a Reserve.
	ErrNoReservation = errors.New("ring: no reservation in progress")
	// ErrReservation is returned by a producer call made while a
	// reservation is in progress.
	ErrReservation = errors.New("ring: reservation in progress")
)

// ErrorNamed says which ring, and which side of it, an error of a Producer
// or Consumer call comes from, when ProducerOptions.Name or
// ConsumerOptions.Name gave the ring a name. The errors callers compare or
// meet in a loop are returned as they are: ErrFull and ErrEmpty (a
// non-blocking call finding nothing to do must not allocate), io.EOF, and a
// context's own errors. Errors are named only on their way out, never on the
// path of a message.
func ErrorNamed(name, side string, err error) error {
	switch err {
	case nil, ErrFull, ErrEmpty, io.EOF, context.Canceled, context.DeadlineExceeded:
		return err
	}
	if name == "" {
		return err
	}
	return fmt.Errorf("ring %s: %s: %w", name, side, err)
}
