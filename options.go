package shmring

import (
	"os"
	"time"

	"github.com/shmring/shmring/ring"
	"github.com/shmring/shmring/shm"
)

// WaitPolicy says how blocking calls wait: spin, then yield, then sleep in
// the kernel until the other side rings a doorbell. See ring.WaitPolicy.
type WaitPolicy = ring.WaitPolicy

var (
	// DefaultWaitPolicy spins for 20 µs, yields for 30 µs more, then sleeps.
	DefaultWaitPolicy = ring.DefaultWaitPolicy
	// SpinWaitPolicy never sleeps in the kernel: lowest latency, and one
	// busy core for as long as a call waits.
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
func WithCapacity(bytes uint64) Option { return func(o *options) { o.capacity = bytes } }

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
