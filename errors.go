package shmring

import (
	"errors"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/ring"
)

// The errors of this package. Each is the same value as the sentinel of the
// package that detects it, so errors.Is works with either. Besides these,
// calls return errors that wrap os.ErrExist (Create of a name that exists),
// os.ErrNotExist (Open of a name that does not), os.ErrClosed (use after
// Close), context.Canceled and context.DeadlineExceeded (a blocking call
// whose context ended), and io.EOF (Recv at the end of the stream).
var (
	// ErrBadName is returned for a ring name that is empty, longer than
	// shm.MaxNameLen bytes, or contains '/', '\\', NUL or "..".
	ErrBadName = shm.ErrBadName
	// ErrNoSpace is returned by Create when the file system cannot hold
	// the ring (a full /dev/shm, for example).
	ErrNoSpace = shm.ErrNoSpace
	// ErrBadConfig is returned by Create for a capacity or maximum message
	// size that cannot be laid out.
	ErrBadConfig = ring.ErrBadConfig
	// ErrBadMagic is returned by Open for a file that is not a ring.
	ErrBadMagic = ring.ErrBadMagic
	// ErrVersion is returned by Open for a ring of another layout version.
	ErrVersion = ring.ErrVersion
	// ErrSize is returned by Open when the file's size disagrees with the
	// ring's header (a truncated or extended file), or the file is too small
	// to hold a header at all.
	ErrSize = ring.ErrSize
	// ErrBadHeader is returned by Open when a header field is out of range.
	ErrBadHeader = ring.ErrBadHeader
	// ErrNotReady is returned by Open when the ring's creator has not
	// finished initialising it within the init wait (it may have died).
	ErrNotReady = ring.ErrNotReady
	// ErrCorrupt is returned when shared memory holds a value no correct
	// peer writes; the error names the word.
	ErrCorrupt = ring.ErrCorrupt
	// ErrTooLarge is returned by Send and Reserve for a message over the
	// ring's maximum; nothing is written.
	ErrTooLarge = ring.ErrTooLarge
	// ErrFull is returned by TrySend and TryReserve when there is no room.
	ErrFull = ring.ErrFull
	// ErrEmpty is returned by TryRecv and TryPeek when nothing is waiting.
	ErrEmpty = ring.ErrEmpty
	// ErrShortBuffer is returned by Recv and TryRecv when the buffer cannot
	// hold the next message; the message stays in the ring.
	ErrShortBuffer = ring.ErrShortBuffer
	// ErrProducerBusy is returned by Producer when no producer slot is free
	// (a single-producer ring has one).
	ErrProducerBusy = ring.ErrProducerBusy
	// ErrConsumerBusy is returned by Consumer when another consumer is
	// attached.
	ErrConsumerBusy = ring.ErrConsumerBusy
	// ErrConsumerDead is returned by a Producer waiting for room, and by
	// TrySend, TrySendBatch and TryReserve on a full ring, when the
	// consumer has died (see WithLiveness and WithWaitForConsumer).
	ErrConsumerDead = ring.ErrConsumerDead
	// ErrRingRemoved is returned by a Producer's calls, by a Consumer's
	// once the ring is drained, and by Ring.Producer and Ring.Consumer,
	// when the ring was removed (Remove, RemoveIfUnused, Ring.Remove) or
	// replaced (WithReplaceUnused) by any process: nobody will read or
	// write it again. A call blocked at that moment returns it at once.
	ErrRingRemoved = ring.ErrRingRemoved
	// ErrInUse is returned by RemoveIfUnused and RemoveFileIfUnused, and
	// by Create and CreateFile WithReplaceUnused, when a process has the
	// ring open (or a creator may still be writing it): it is not removed.
	ErrInUse = errors.New("shmring: ring in use")
	// ErrTruncated is returned by Open, OpenFile, Producer, Consumer, Stats,
	// Close, and by Guarded for the calls made inside it, when the ring's
	// memory faulted under them because its file was truncated. Outside
	// Guarded the per-message calls do not catch that fault.
	ErrTruncated = ring.ErrTruncated
	// ErrNotSupported is returned on systems other than Unix and Windows,
	// where shared-memory segments are not implemented, and by List and
	// RemoveUnused on Windows, where named rings are kernel objects that
	// live only while open.
	ErrNotSupported = shm.ErrNotSupported
)

var (
	// ErrReservation is returned by a producer call made while a Reserve
	// is waiting for its Commit or Abort.
	ErrReservation = ring.ErrReservation
	// ErrNoReservation is returned by Commit and Abort without a Reserve.
	ErrNoReservation = ring.ErrNoReservation
	// ErrCommitSize is returned by Commit for a length that is negative
	// or more than was reserved; the reservation stays in progress.
	ErrCommitSize = ring.ErrCommitSize
)
