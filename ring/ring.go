// Package ring implements the shmring segment layout and its algorithms over
// a []byte: a lock-free ring of variable-length records, with positions that
// live in the memory itself, so that several processes mapping the same
// segment can pass messages through it.
//
// It is shmring's low-level API. Most programs use the root package, which
// creates and maps segments, supplies the liveness locks, and hands out
// this package's Info, Stats and WaitPolicy as its own. Use this package
// directly to lay a ring into memory you map yourself: Init or Attach it with
// a Locker whose locks the operating system releases at a holder's death.
//
// The package makes no system calls of its own; sleeping and waking go
// through package futex. Most of its tests run on heap memory in one
// process. FORMAT.md at the root of the repository documents every byte.
//
// Memory shared with other processes is untrusted: every shared word is
// loaded once, checked, and only then used, and a value no correct peer
// could have written gives a wrapped ErrCorrupt, never a panic or an access
// out of bounds.
package ring

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/shmring/shmring/internal/futex"
)

// Ring is a view of a ring segment's memory. It holds the header fields,
// validated once, and pointers to the shared control words. Its methods are
// safe for concurrent use; it must not be copied.
type Ring struct {
	mem  []byte
	data []byte // the data area, len == capacity

	capacity   uint64
	mask       uint64
	maxMessage uint32
	slots      uint32
	flags      uint32
	key        uint64
	uuid       [16]byte
	creatorPID uint32
	createdNs  int64
	dataOffset uint64
	subs       uint32 // subscriber lines of a fan-out ring, 0 otherwise
	fanOff     uint64 // offset of the fan-out line (fanout.go)

	tail, head          *uint64
	removed             *uint32 // the header's removed mark (MarkRemoved)
	dataDoor, spaceDoor doorbell

	locker Locker // liveness locks of the peers (locker.go)
}

// Info describes a ring's header.
type Info struct {
	Capacity      uint64
	MaxMessage    uint32
	Slots         uint32
	MultiProducer bool
	// Subscribers is the number of subscriber lines of a fan-out ring, 0
	// for a ring with one consumer.
	Subscribers     uint32
	UUID            [16]byte
	CreatorPID      uint32
	CreatedUnixNano int64
	DataOffset      uint64
	Size            uint64
}

func (r *Ring) u32(off uint64) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }
func (r *Ring) u64(off uint64) *uint64 { return (*uint64)(unsafe.Pointer(&r.mem[off])) }

// checkMem rejects memory that cannot hold shared 64-bit words.
func checkMem(mem []byte, need uint64) error {
	if uint64(len(mem)) < need {
		return fmt.Errorf("%w: %d bytes, need at least %d", ErrSize, len(mem), need)
	}
	if uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0 {
		return fmt.Errorf("%w: memory is not 8-byte aligned", ErrBadConfig)
	}
	return nil
}

// Init lays out a new ring described by c in mem, which must be exactly
// Size(c) bytes, 8-byte aligned, and not yet visible to a peer that writes
// it. The init word is stored last: until then Attach reports ErrNotReady.
// l supplies the peers' liveness locks, as for Attach.
func Init(mem []byte, c Config, l Locker) (*Ring, error) {
	if l == nil {
		return nil, errNoLocker
	}
	c, err := c.normalize()
	if err != nil {
		return nil, err
	}
	size := dataOffsetFor(c.Slots, c.Subscribers) + c.Capacity
	if err := checkMem(mem, size); err != nil {
		return nil, err
	}
	if uint64(len(mem)) != size {
		return nil, fmt.Errorf("%w: %d bytes, the config needs exactly %d", ErrSize, len(mem), size)
	}
	clear(mem[:dataOffsetFor(c.Slots, c.Subscribers)])
	r := &Ring{mem: mem}
	*r.u64(offMagic) = Magic
	*r.u32(offVersion) = Version
	var flags uint32
	if c.MultiProducer {
		flags |= FlagMultiProducer
	}
	if c.Subscribers > 0 {
		flags |= FlagFanout
		*r.u32(offSubCount) = c.Subscribers
		fan := fanoutOffset(c.Slots)
		if c.EvictAfter > 0 {
			*r.u64(fan + fanEvictNs) = uint64(c.EvictAfter)
		}
	}
	*r.u32(offFlags) = flags
	*r.u32(offHeaderSize) = HeaderSize
	*r.u32(offLineSize) = LineSize
	*r.u32(offSlotCount) = c.Slots
	*r.u32(offMaxMessage) = c.MaxMessage
	*r.u64(offCapacity) = c.Capacity
	*r.u64(offDataOffset) = dataOffsetFor(c.Slots, c.Subscribers)
	*r.u64(offTotalSize) = size
	*r.u64(offKey) = c.Key
	copy(mem[offUUID:offUUID+16], c.UUID[:])
	*r.u32(offCreatorPID) = c.CreatorPID
	*r.u64(offCreatedNs) = uint64(c.CreatedUnixNano)
	// The sequentially consistent store orders every field above before it.
	atomic.StoreUint32(r.u32(offInit), InitComplete)
	return Attach(mem, l)
}

// Attach validates the header in mem and returns a view of the ring. Each
// failure has its own error: ErrSize, ErrBadMagic, ErrVersion, ErrNotReady,
// ErrBadHeader, all wrapped with the field and value at fault.
//
// l supplies the liveness locks of the peers (see Locker), and must be one
// every process that maps the memory agrees with: for a shared segment, the
// segment's own locks (the root package passes its internal shm.Segment).
// LocalLocker is right only for memory no other process maps.
func Attach(mem []byte, l Locker) (*Ring, error) { return attach(mem, l, false) }

// errNoLocker refuses a nil Locker: a ring without liveness locks would take
// every peer for dead.
var errNoLocker = fmt.Errorf("%w: no Locker given", ErrBadConfig)

// pageSize is the smallest page of the systems that round a mapping.
const pageSize = 4096

// AttachRounded is Attach for memory that may run past the ring's end by
// less than a page: the view of a named mapping on Windows, whose size the
// system reports rounded up to whole pages. The ring uses only the size its
// header states.
func AttachRounded(mem []byte, l Locker) (*Ring, error) { return attach(mem, l, true) }

func attach(mem []byte, l Locker, rounded bool) (*Ring, error) {
	if l == nil {
		return nil, errNoLocker
	}
	if err := checkMem(mem, HeaderSize); err != nil {
		return nil, err
	}
	r := &Ring{mem: mem}
	// Each field is loaded once; a peer may rewrite the header between two
	// loads, so the values checked are the values used.
	m := atomic.LoadUint64(r.u64(offMagic))
	if m == 0 {
		// A creator writes the magic first: zeros are a segment whose
		// creator has not started (or died before it did).
		return nil, fmt.Errorf("%w: magic number not written yet", ErrNotReady)
	}
	if m != Magic {
		return nil, fmt.Errorf("%w: %#016x", ErrBadMagic, m)
	}
	// The init word before the version: a creator stores the magic
	// number, then the other fields, then the init word; the version read
	// before the init word may not be written yet (seen: a producer
	// refused a ring being created, "version 0").
	if s := atomic.LoadUint32(r.u32(offInit)); s != InitComplete {
		return nil, fmt.Errorf("%w: init word %#x", ErrNotReady, s)
	}
	if v := atomic.LoadUint32(r.u32(offVersion)); v != Version {
		return nil, fmt.Errorf("%w: version %d, this package reads version %d", ErrVersion, v, Version)
	}
	if h := atomic.LoadUint32(r.u32(offHeaderSize)); h != HeaderSize {
		return nil, fmt.Errorf("%w: header size %d, want %d", ErrBadHeader, h, HeaderSize)
	}
	if l := atomic.LoadUint32(r.u32(offLineSize)); l != LineSize {
		return nil, fmt.Errorf("%w: line size %d, want %d", ErrBadHeader, l, LineSize)
	}
	c := Config{
		Capacity:        atomic.LoadUint64(r.u64(offCapacity)),
		MaxMessage:      atomic.LoadUint32(r.u32(offMaxMessage)),
		Slots:           atomic.LoadUint32(r.u32(offSlotCount)),
		Key:             atomic.LoadUint64(r.u64(offKey)),
		CreatorPID:      atomic.LoadUint32(r.u32(offCreatorPID)),
		CreatedUnixNano: int64(atomic.LoadUint64(r.u64(offCreatedNs))),
	}
	r.flags = atomic.LoadUint32(r.u32(offFlags))
	if r.flags&^(FlagMultiProducer|FlagFanout) != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrBadHeader, r.flags)
	}
	if r.flags&FlagFanout != 0 {
		c.Subscribers = atomic.LoadUint32(r.u32(offSubCount))
		if c.Subscribers == 0 {
			return nil, fmt.Errorf("%w: fan-out ring with no subscriber lines", ErrBadHeader)
		}
	}
	if c.Slots == 0 || c.MaxMessage == 0 {
		return nil, fmt.Errorf("%w: %d slots, max message %d", ErrBadHeader, c.Slots, c.MaxMessage)
	}
	if _, err := c.normalize(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	dataOff := atomic.LoadUint64(r.u64(offDataOffset))
	if want := dataOffsetFor(c.Slots, c.Subscribers); dataOff != want {
		return nil, fmt.Errorf("%w: data offset %d, want %d for %d slots and %d subscribers", ErrBadHeader, dataOff, want, c.Slots, c.Subscribers)
	}
	size := atomic.LoadUint64(r.u64(offTotalSize))
	if want := dataOff + c.Capacity; size != want {
		return nil, fmt.Errorf("%w: total size %d in header, want %d", ErrBadHeader, size, want)
	}
	switch n := uint64(len(mem)); {
	case rounded && n >= size && n-size < pageSize:
		mem = mem[:size:size]
		r.mem = mem
	case n != size:
		return nil, fmt.Errorf("%w: segment is %d bytes, its header says %d", ErrSize, len(mem), size)
	}
	copy(r.uuid[:], mem[offUUID:offUUID+16])
	r.capacity, r.mask = c.Capacity, c.Capacity-1
	r.maxMessage, r.slots, r.key = c.MaxMessage, c.Slots, c.Key
	r.creatorPID, r.createdNs, r.dataOffset = c.CreatorPID, c.CreatedUnixNano, dataOff
	if c.Subscribers > 0 {
		r.subs, r.fanOff = c.Subscribers, fanoutOffset(c.Slots)
	}
	r.data = mem[dataOff:size:size]
	r.tail, r.head = r.u64(offTail), r.u64(offHead)
	r.removed = r.u32(offRemoved)
	r.dataDoor = doorbell{word: r.u32(offDataBell), waiters: r.u32(offDataWaiters), armed: r.u32(offDataArmed)}
	r.spaceDoor = doorbell{word: r.u32(offSpaceBell), waiters: r.u32(offSpaceWaiters), armed: r.u32(offSpaceArmed)}
	r.locker = l
	return r, nil
}

// Info returns the header fields validated by Attach.
func (r *Ring) Info() Info {
	return Info{
		Capacity:        r.capacity,
		MaxMessage:      r.maxMessage,
		Slots:           r.slots,
		MultiProducer:   r.flags&FlagMultiProducer != 0,
		Subscribers:     r.subs,
		UUID:            r.uuid,
		CreatorPID:      r.creatorPID,
		CreatedUnixNano: r.createdNs,
		DataOffset:      r.dataOffset,
		Size:            uint64(len(r.mem)),
	}
}

// MaxMessage returns the largest message the ring accepts.
func (r *Ring) MaxMessage() int { return int(r.maxMessage) }

// MarkRemoved marks the ring removed, in shared memory, and wakes every
// sleeper on both doorbells. From then on its producers' calls, its
// consumer's calls once the ring is drained, and new attaches return
// ErrRingRemoved. Whoever removes a ring's name, or replaces it with a new
// ring, marks it first (FORMAT.md, "Removal"), so that the peers still
// attached learn that nobody will read or write it again. The mark is never
// cleared.
func (r *Ring) MarkRemoved() {
	atomic.StoreUint32(r.removed, 1)
	r.dataDoor.interrupt()
	r.spaceDoor.interrupt()
}

// SetDataBell makes b, in this process, the way the data doorbell's
// sleeper sleeps (this process's consumer) and the way its wakers wake
// (this process's producers): a Bell instead of the futex (see
// futex.Bell). Every process that wakes the consumer must then ring the
// same Bell, for a futex wake would not end its sleep: shmring's
// connections agree on it in their handshake (FORMAT.md, "Connections").
// A consumer whose ring has a Bell is not for a WaitSet. Call it while no
// other goroutine uses the ring's producers or consumer; nil restores the
// futex.
func (r *Ring) SetDataBell(b *futex.Bell) { r.dataDoor.bell = b }

// Removed reports whether the ring is marked removed.
func (r *Ring) Removed() bool { return atomic.LoadUint32(r.removed) != 0 }

// slot returns the offset of producer slot i.
func (r *Ring) slot(i uint32) uint64 { return offSlots + uint64(i)*LineSize }

// slotsInUse is the number of producer slots the ring's mode uses: all of
// them on a multi-producer ring, slot 0 alone otherwise.
func (r *Ring) slotsInUse() uint32 {
	if r.multi() {
		return r.slots
	}
	return 1
}

// spanOK reports whether head and tail can be a consumer's head and a tail:
// aligned positions, the tail at most a capacity ahead. A pair that is not
// was written by no correct peer (spanErr says so).
func (r *Ring) spanOK(head, tail uint64) bool {
	return head <= tail && tail-head <= r.capacity && (head|tail)%RecordAlign == 0
}

// spanErr is the corruption error for a pair that fails spanOK.
func (r *Ring) spanErr(head, tail uint64) error {
	return fmt.Errorf("%w: head %d and tail %d are not aligned positions with the tail at most a capacity (%d) ahead", ErrCorrupt, head, tail, r.capacity)
}

// multi reports whether producers claim space by compare-and-swap.
func (r *Ring) multi() bool { return r.flags&FlagMultiProducer != 0 }

// barrierAvailable registers this process for futex.Barrier. When it
// succeeds, commits may be release stores, because a waiter's Barrier fences
// this process for it (see wait.go).
func barrierAvailable() bool { return futex.RegisterBarrier() == nil }
