package ring

import (
	"fmt"
	"math/bits"
	"time"
)

// The segment layout. FORMAT.md documents every byte; layout_test.go pins
// these numbers so that they cannot drift from the document.
const (
	// Magic is the first 8 bytes of every segment: "SHMRING\x01" read as a
	// little-endian uint64.
	Magic uint64 = 0x01474e49524d4853
	// Version is the layout version this package reads and writes.
	Version uint32 = 1
	// InitComplete is stored in the header's init word, last, by the
	// creator once every other field is written.
	InitComplete uint32 = 0x59444552 // "REDY"

	// HeaderSize is the size of the header page.
	HeaderSize = 4096
	// LineSize is the stride of control lines and producer slots: two cache
	// lines, so that the adjacent-line prefetcher does not couple them.
	LineSize = 128
	// ControlLines is the number of control lines after the header.
	ControlLines = 8
	// EntryHeaderSize is the size of the header of a message in a batch.
	EntryHeaderSize = 8
	// RecordHeaderSize is the size of a record header.
	RecordHeaderSize = 16
	// RecordAlign is the alignment of every record.
	RecordAlign = 8

	// MinCapacity and MaxCapacity bound the data area.
	MinCapacity = 256
	MaxCapacity = 1 << 40
	// MaxSlots bounds the producer slot table.
	MaxSlots = 4096
	// DefaultSlots is the producer slot count when the config says 0.
	DefaultSlots = 64
	// MaxSubscribers bounds the subscriber table of a fan-out ring.
	MaxSubscribers = 4096
)

// Header field offsets, from the start of the segment.
const (
	offMagic      = 0   // uint64
	offVersion    = 8   // uint32
	offFlags      = 12  // uint32
	offHeaderSize = 16  // uint32
	offLineSize   = 20  // uint32
	offSlotCount  = 24  // uint32
	offMaxMessage = 28  // uint32
	offCapacity   = 32  // uint64
	offDataOffset = 40  // uint64
	offTotalSize  = 48  // uint64
	offKey        = 56  // uint64
	offUUID       = 64  // [16]byte
	offCreatorPID = 80  // uint32
	offCreatedNs  = 88  // int64, Unix nanoseconds
	offInit       = 96  // uint32, InitComplete when ready
	offRemoved    = 100 // uint32, non-zero once the ring was removed or replaced
	offSubCount   = 104 // uint32, subscriber lines of a fan-out ring (0 otherwise)
)

// Control lines, from the start of the segment.
const (
	offTail         = HeaderSize + 0*LineSize // uint64, producers' published tail
	offHead         = HeaderSize + 1*LineSize // uint64, consumer's published head
	offDataBell     = HeaderSize + 2*LineSize // uint32, consumer sleeps on it
	offDataWaiters  = offDataBell + 4         // uint32
	offDataArmed    = offDataBell + 8         // uint32: value the newest waiter sleeps on
	offSpaceBell    = HeaderSize + 3*LineSize // uint32, producers sleep on it
	offSpaceWaiters = offSpaceBell + 4        // uint32
	offSpaceArmed   = offSpaceBell + 8        // uint32
	offConsumer     = HeaderSize + 4*LineSize // consumer line, see cons* below
	offProducers    = HeaderSize + 5*LineSize // producers' shared line, see prods* below
	offSlots        = HeaderSize + ControlLines*LineSize
)

// Fields of the consumer line, relative to offConsumer.
const (
	consState     = 0  // uint32: 0 none, 1 attached
	consPID       = 4  // uint32
	consMessages  = 8  // uint64
	consBytes     = 16 // uint64
	consParks     = 24 // uint64: times the consumer slept on the data bell
	consWakes     = 32 // uint64: wake system calls made on the space bell
	consRecovered = 40 // uint64: claims of dead producers skipped
	consReaped    = 48 // uint64: slots of dead producers freed
	consGen       = 56 // uint64: consumer attaches since creation
	consCorrupt   = 64 // uint64: corrupt records or words the consumer found
	consBatch     = 72 // uint64: place in the batch at head (batch.go)
)

// Fields of the producers' shared line, relative to offProducers.
const (
	prodsAttaches = 0  // uint64: producer attaches since creation
	prodsAttached = 8  // uint32: producers attached now
	prodsFenced   = 12 // uint32: producers that fence every commit (fenced.go)
)

// Fields of the fan-out line of a fan-out ring, relative to its start
// (fanout.go): it follows the producer slots, and the subscriber lines follow
// it. The frontier is kept twice (copy 0 at fanCopy, copy 1 at
// fanCopy+fanCopySize); fanSeq's low bit says which copy is current.
const (
	fanSeq       = 0  // uint64: frontier updates since creation
	fanCopy      = 8  // two copies of {position, messages, bytes} before it
	fanCopySize  = 24 //
	fanEvictions = 56 // uint64: reliable subscribers evicted
	fanEvictNs   = 64 // uint64: the lag bound in nanoseconds, 0 for none
	fanAttaches  = 72 // uint64: subscriber attaches since creation
	fanRaises    = 80 // uint64: frontier updates that moved it
	fanLines     = 88 // uint32: subscriber lines ever taken (lines from here on are free)
)

// Fields of a subscriber line, relative to its start. The first ones are
// the consumer line's (cons* above), at the same offsets.
const (
	subPos       = 80  // uint64: the subscriber's published position
	subLost      = 88  // uint64: messages a lossy subscriber lost
	subLostBytes = 96  // uint64: their payload bytes
	subLaps      = 104 // uint64: times it was lapped
)

// Subscriber line states (the consState word of a subscriber line).
const (
	subFree     = 0
	subReliable = 1
	subLossy    = 2
	subEvicted  = 3
)

// Fields of a producer slot, relative to the slot's start.
const (
	slotState     = 0  // uint32: 0 free, 1 attached
	slotPID       = 4  // uint32
	slotGen       = 8  // uint64: attaches of this slot
	slotClaimPos  = 16 // uint64: position of the claim in flight (multi-producer)
	slotClaimLen  = 24 // uint64: length of the claim in flight
	slotMessages  = 32 // uint64
	slotBytes     = 40 // uint64
	slotFullWaits = 48 // uint64: times the producer found the ring full
	slotParks     = 56 // uint64: times it slept on the space bell
	slotWakes     = 64 // uint64: wake system calls made on the data bell
	slotFenced    = 72 // uint32: 1 while counted in prodsFenced (fenced.go)
)

// Header flags.
const (
	// FlagMultiProducer marks a ring whose producers claim space with a
	// compare-and-swap on the tail.
	FlagMultiProducer uint32 = 1 << 0
	// FlagFanout marks a fan-out ring: subscribers, each reading every
	// message, instead of one consumer (FORMAT.md, "Fan-out").
	FlagFanout uint32 = 1 << 1
)

// Record kinds: the low byte of the kind word. Zero is never valid, so a
// zeroed header is never mistaken for a record; the high 16 bits carry the
// writer's producer slot.
const (
	KindMessage uint32 = 1
	KindPadding uint32 = 2
	// KindBatch is a record whose payload holds several messages, each
	// an entry of EntryHeaderSize bytes (its length, then a zero word)
	// and its bytes, padded to RecordAlign (FORMAT.md, "Batches").
	KindBatch uint32 = 3
	// KindSlack, on a message, says that 8 unused bytes follow its record:
	// a multi-producer commit shorter than its reservation leaves them when
	// they are too few for a padding record.
	KindSlack uint32 = 1 << 8
)

// Fields of a record header, relative to the record's start.
const (
	recLength = 0 // uint32
	recKind   = 4 // uint32
	recStamp  = 8 // uint64
)

const (
	slotAttached  = 1
	consAttached  = 1
	kindTypeMask  = 0xff
	kindFlagMask  = 0xff00
	kindSlotShift = 16
)

// Config describes a ring to lay out. Zero fields take defaults.
type Config struct {
	// Capacity is the size of the data area in bytes, a power of two
	// between MinCapacity and MaxCapacity.
	Capacity uint64
	// MaxMessage is the largest message, in bytes. Zero means the largest
	// the capacity allows, MaxMessageFor(Capacity). It may not exceed that.
	MaxMessage uint32
	// Slots is the size of the producer slot table (DefaultSlots if 0).
	Slots uint32
	// MultiProducer selects the multi-producer claim protocol.
	MultiProducer bool
	// Subscribers, if non-zero, makes a fan-out ring with this many
	// subscriber lines (at most MaxSubscribers).
	Subscribers uint32
	// EvictAfter is the lag bound of a fan-out ring: a reliable subscriber
	// that has held a producer waiting for room for this long is evicted.
	// Zero means DefaultEvictAfter; a negative value, never.
	EvictAfter time.Duration
	// Key stamps records; it must be random and non-zero.
	Key uint64
	// UUID identifies this incarnation of the segment.
	UUID [16]byte
	// CreatorPID and CreatedUnixNano are informational.
	CreatorPID      uint32
	CreatedUnixNano int64
}

// MaxMessageFor returns the largest message a ring of the given capacity can
// carry: its record must fit in half the data area, so that a record and the
// padding before it always fit in an empty ring.
func MaxMessageFor(capacity uint64) uint32 {
	m := capacity/2 - RecordHeaderSize
	if m > 1<<31 {
		m = 1 << 31
	}
	return uint32(m)
}

// recordSize is the space a message of n bytes takes in the data area.
func recordSize(n uint64) uint64 {
	return (RecordHeaderSize + n + RecordAlign - 1) &^ (RecordAlign - 1)
}

// dataOffsetFor is where the data area starts for a slot count and a
// subscriber count: the first page boundary after the slot table, and after
// the fan-out line and the subscriber lines of a fan-out ring.
func dataOffsetFor(slots, subs uint32) uint64 {
	end := uint64(offSlots) + uint64(slots)*LineSize
	if subs > 0 {
		end += (1 + uint64(subs)) * LineSize
	}
	return (end + HeaderSize - 1) &^ (HeaderSize - 1)
}

// DefaultEvictAfter is the lag bound of a fan-out ring whose Config gives
// none.
const DefaultEvictAfter = time.Second

// normalize fills in defaults and checks a Config.
func (c Config) normalize() (Config, error) {
	if c.Slots == 0 {
		c.Slots = DefaultSlots
	}
	if c.Capacity < MinCapacity || c.Capacity > MaxCapacity || bits.OnesCount64(c.Capacity) != 1 {
		return c, fmt.Errorf("%w: capacity %d is not a power of two in [%d, %d]", ErrBadConfig, c.Capacity, MinCapacity, uint64(MaxCapacity))
	}
	if uint64(int(c.Capacity)) != c.Capacity {
		return c, fmt.Errorf("%w: capacity %d does not fit this process's address space", ErrBadConfig, c.Capacity)
	}
	limit := MaxMessageFor(c.Capacity)
	if c.MaxMessage == 0 {
		c.MaxMessage = limit
	}
	if c.MaxMessage > limit {
		return c, fmt.Errorf("%w: max message %d exceeds %d, the most a capacity of %d allows", ErrBadConfig, c.MaxMessage, limit, c.Capacity)
	}
	if c.Slots > MaxSlots {
		return c, fmt.Errorf("%w: %d producer slots, more than %d", ErrBadConfig, c.Slots, MaxSlots)
	}
	if c.Subscribers > MaxSubscribers {
		return c, fmt.Errorf("%w: %d subscribers, more than %d", ErrBadConfig, c.Subscribers, MaxSubscribers)
	}
	if c.EvictAfter == 0 {
		c.EvictAfter = DefaultEvictAfter
	}
	if c.Key == 0 {
		return c, fmt.Errorf("%w: zero record key", ErrBadConfig)
	}
	return c, nil
}

// Size returns the number of bytes a segment for c needs.
func Size(c Config) (int64, error) {
	c, err := c.normalize()
	if err != nil {
		return 0, err
	}
	return int64(dataOffsetFor(c.Slots, c.Subscribers) + c.Capacity), nil
}
