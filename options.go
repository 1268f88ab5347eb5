package shmring

import (
	"os"
	"time"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/ring"
)

// WaitPolicy says how blocking calls wait: spin, then yield, then sleep in
// the kernel until the other side rings a doorbell. See ring.WaitPolicy.
type WaitPolicy = ring.WaitPolicy

var (
	// DefaultWaitPolicy spins for 20 µs, yields for 30 µs more, then
	// sleeps; it never spins in a process that may use one CPU only, and
	// elsewhere stops spinning while spins do not pay, as measured by each
	// waiter (see WaitPolicy).
	DefaultWaitPolicy = ring.DefaultWaitPolicy
	// SpinWaitPolicy never sleeps in the kernel: lowest latency, and one
	// busy core for as long as a call waits. Only for a process that owns
	// its cores: on a shared or single CPU it starves the peer it waits
	// for.
	SpinWaitPolicy = ring.SpinWaitPolicy
)

// DefaultCapacity is the data area of a ring created without WithCapacity.
const DefaultCapacity = 1 << 20

// DefaultInitWait bounds how long Open waits for a ring's creator to finish
// initialising it.
const DefaultInitWait = time.Second

// An Option configures Create, CreateFile, Open or OpenFile. Options that do
// not apply to a call are ignored by it.
type Option func(*options)

type options struct {
	capacity   uint64
	maxMessage uint32
	perm       os.FileMode
	wait       WaitPolicy
	eof        bool
	openWait   time.Duration
	initWait   time.Duration

	multi        bool
	slots        uint32
	liveness     time.Duration
	waitConsumer bool
	endConsumer  bool // a connection's ring: a wait for room ends when its consumer closes
	giveP        bool // a listener's ring, or a connection's to this process: its consumer's sleeps give up the P (ring.ConsumerOptions.GiveP)
	eofAfter     uint64
	replace      bool
	subscribers  uint32        // WithSubscribers
	lagBound     time.Duration // WithLagBound
	lossy        bool          // WithLossy (Subscribe)
	oldest       bool          // WithOldest (Subscribe)
	backlog      int           // Listen
	capacitySet  bool          // WithCapacity was given (Dial)
}

func defaultOptions() options {
	return options{
		capacity: DefaultCapacity,
		perm:     shm.DefaultPerm,
		wait:     DefaultWaitPolicy,
		eof:      true,
		initWait: DefaultInitWait,
	}
}

// WithCapacity sets the size of a new ring's data area in bytes: a power of
// two, at least ring.MinCapacity (256). The default is 1 MiB.
func WithCapacity(bytes uint64) Option {
	return func(o *options) { o.capacity, o.capacitySet = bytes, true }
}

// WithMaxMessage sets the largest message of a new ring. The default, and the
// most allowed, is capacity/2 - 16.
func WithMaxMessage(bytes int) Option {
	return func(o *options) {
		if bytes <= 0 || uint64(bytes) > 1<<31 {
			o.maxMessage = 1<<32 - 1 // rejected by Create with ErrBadConfig
			return
		}
		o.maxMessage = uint32(bytes)
	}
}

// WithPerm sets the permission bits of a new ring's file, exactly (the umask
// does not apply). The default is 0600; 0660 shares a ring with a group.
func WithPerm(perm os.FileMode) Option { return func(o *options) { o.perm = perm } }

// WithWaitPolicy sets how the Producers and Consumers made from this Ring
// wait. The default is DefaultWaitPolicy.
func WithWaitPolicy(p WaitPolicy) Option { return func(o *options) { o.wait = p } }

// WithEOF says whether the Consumer reports io.EOF once every producer that
// attached has closed and the ring is drained (the default, true). A
// long-lived service that waits for new producers passes false.
func WithEOF(eof bool) Option { return func(o *options) { o.eof = eof } }

// WithOpenWait makes Open and OpenFile wait up to d for the ring to be
// created, instead of failing at once with os.ErrNotExist.
func WithOpenWait(d time.Duration) Option { return func(o *options) { o.openWait = d } }

// WithInitWait bounds how long Open waits for a ring's creator to finish
// initialising it (default DefaultInitWait). A creator that died half-way is
// reported with ErrNotReady after this bound.
func WithInitWait(d time.Duration) Option { return func(o *options) { o.initWait = d } }

// WithMultiProducer makes a new ring accept several producers at once, in any
// processes: each claims space with a compare-and-swap on the shared tail. A
// single-producer ring (the default) has no compare-and-swap on its fast
// path, and a second producer gets ErrProducerBusy.
func WithMultiProducer() Option { return func(o *options) { o.multi = true } }

// WithSlots sets how many producers a new multi-producer ring admits at once
// (default ring.DefaultSlots, 64; at most ring.MaxSlots).
func WithSlots(n int) Option {
	return func(o *options) {
		if n <= 0 || n > ring.MaxSlots {
			n = ring.MaxSlots + 1 // rejected by Create with ErrBadConfig
		}
		o.slots = uint32(n)
	}
}

// WithLiveness sets how often a blocked Producer or Consumer checks whether
// its peers are alive (default ring.DefaultLiveness, 100 ms). A dead peer is
// noticed within about this interval: the consumer then frees a dead producer's
// slot and skips the claim it left unfinished, and a producer waiting for
// room returns ErrConsumerDead. Death is proven by the kernel's release of
// the peer's lock, never by a timeout: a stopped peer is waited for.
func WithLiveness(d time.Duration) Option { return func(o *options) { o.liveness = d } }

// WithWaitForConsumer makes a Producer waiting for room keep waiting when the
// consumer has died, until a new consumer drains the ring or the context
// ends, instead of returning ErrConsumerDead.
func WithWaitForConsumer() Option { return func(o *options) { o.waitConsumer = true } }

// WithEOFAfter makes the Consumer's io.EOF wait until at least n producers
// have attached since the ring was created (default 1): for a consumer
// that expects n producers that may start at different times.
func WithEOFAfter(n int) Option { return func(o *options) { o.eofAfter = uint64(max(n, 1)) } }

// WithReplaceUnused makes Create and CreateFile replace a ring left at the
// name (or path) that no process has open — the leftover of a creator
// killed before it could remove it — in the same call, instead of failing
// with os.ErrExist. A ring some process has open is never replaced: Create
// then fails with an error that wraps both os.ErrExist and ErrInUse. The
// check and the removal hold the old ring's presence lock exclusively, so a
// process opening it at that moment cannot join it (see RemoveIfUnused). A
// file there that is not a ring is left alone.
//
// On Windows a named ring exists only while some process has it open, so
// there is never a leftover to replace; whether a file-backed ring is open
// cannot be told there, and replacing one returns ErrNotSupported. A
// removed ring's name stays taken there until its last user closes it:
// Create then fails with os.ErrExist and ErrRingRemoved.
//
// A ring whose creator died while its peers still have it open is in use:
// a restarted consumer opens it (Open) and takes over where the dead one
// stopped, which loses nothing.
func WithReplaceUnused() Option { return func(o *options) { o.replace = true } }
