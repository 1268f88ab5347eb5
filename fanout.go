package shmring

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/shmring/shmring/ring"
)

// Fan-out rings: one ring, many subscribers that each read every message.
//
// A ring created WithSubscribers(n) has up to n subscribers instead of one
// consumer. Producers (one, or many WithMultiProducer) write each message
// once, whatever the number of subscribers. Each subscriber is a Consumer
// with a position of its own, attached with Ring.Subscribe:
//
//   - a reliable subscriber (the default) is waited for, as a consumer is:
//     the producers never overwrite what it has not read. One that holds
//     them back for longer than the ring's lag bound (WithLagBound, default
//     ring.DefaultEvictAfter) is evicted: its next call returns ErrEvicted,
//     and the producers stop waiting for it. Only the one furthest behind
//     holds them back; another that is behind too but reading gets a whole
//     bound of its own once the first is gone. A dead one (its process ended;
//     a stopped process is alive) stops holding them back at once.
//   - a lossy subscriber (WithLossy) is never waited for. When the
//     producers lap it, its next read call returns a *LostError that says
//     exactly how many messages and bytes it lost (errors.Is ErrLost), and
//     it goes on at the oldest message still in the ring. A record
//     overwritten while it was being read is never delivered.
//
// A subscriber starts after the last message committed when it attaches, or
// at the oldest message still in the ring (WithOldest). Ring.Stats lists
// every subscriber line: kind, position, lag, lost, evictions, PID, alive.
//
// A producer that needs room moves the ring's frontier holding a lock that
// a subscriber also holds for the last part of its attach. TrySend and
// TryReserve do not wait for it past a millisecond: on a loaded machine
// (the holder preempted) they can return ErrFull for a moment even with
// lossy subscribers only. Send and Reserve wait.
//
//	r, err := shmring.Create("ticks", shmring.WithSubscribers(16))
//	p, err := r.Producer()
//
//	r, err := shmring.Open("ticks")
//	s, err := r.Subscribe(shmring.WithLossy())
//	n, err := s.Recv(ctx, buf) // errors.Is(err, shmring.ErrLost): some were lost

// WithSubscribers makes Create and CreateFile make a fan-out ring with room
// for n subscribers (1 to ring.MaxSubscribers): readers attach with
// Ring.Subscribe, each reading every message, and Ring.Consumer is refused
// with ErrFanout.
func WithSubscribers(n int) Option {
	return func(o *options) {
		if n <= 0 || n > ring.MaxSubscribers {
			n = ring.MaxSubscribers + 1 // rejected by Create with ErrBadConfig
		}
		o.subscribers = uint32(n)
	}
}

// WithLagBound sets a new fan-out ring's lag bound: a reliable subscriber
// that holds a producer waiting for room for this long is evicted (default
// ring.DefaultEvictAfter). A negative bound never evicts: a stalled
// reliable subscriber then holds the producers for as long as it lives.
func WithLagBound(d time.Duration) Option { return func(o *options) { o.lagBound = d } }

// WithLossy makes Subscribe attach a lossy subscriber, which the producers
// never wait for.
func WithLossy() Option { return func(o *options) { o.lossy = true } }

// WithOldest makes Subscribe start at the oldest message still in the ring,
// rather than after the last one committed.
func WithOldest() Option { return func(o *options) { o.oldest = true } }

// Fan-out errors; see the ring package for each.
var (
	// ErrFanout is returned by Ring.Consumer on a fan-out ring.
	ErrFanout = ring.ErrFanout
	// ErrNotFanout is returned by Ring.Subscribe on a ring made for one
	// consumer.
	ErrNotFanout = ring.ErrNotFanout
	// ErrSubscribersFull is returned by Ring.Subscribe when every
	// subscriber line is taken by a live subscriber.
	ErrSubscribersFull = ring.ErrSubscribersFull
	// ErrEvicted is returned by every call of an evicted reliable
	// subscriber (see WithLagBound). Close it, and subscribe again.
	ErrEvicted = ring.ErrEvicted
	// ErrLost is matched by the *LostError of a lapped lossy subscriber.
	ErrLost = ring.ErrLost
)

// LostError is returned by a read call of a lossy subscriber that was
// lapped: Messages messages of Bytes bytes were overwritten before it read
// them. Its next call returns the oldest message left.
type LostError = ring.LostError

// Subscribe attaches a subscriber to a fan-out ring (WithSubscribers) and
// returns it as a Consumer: Recv, Peek, and the others read every message
// from where it starts, and Close detaches it. Options given here apply to
// this subscriber on top of the Ring's: WithLossy, WithOldest, and the
// consumer's options (WithWaitPolicy, WithEOF, WithEOFAfter, WithLiveness).
func (r *Ring) Subscribe(opts ...Option) (*Consumer, error) {
	o := r.opts
	for _, opt := range opts {
		opt(&o)
	}
	if err := r.acquire(); err != nil {
		return nil, err
	}
	c, err := r.subscribe(o)
	if err != nil {
		r.release()
		return nil, fmt.Errorf("ring %s: subscribe: %w", r.name, err)
	}
	return &Consumer{c: c, ring: r}, nil
}

func (r *Ring) subscribe(o options) (c *ring.Consumer, err error) {
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	return r.r.Subscribe(ring.SubscriberOptions{
		Lossy:    o.lossy,
		Oldest:   o.oldest,
		Wait:     o.wait,
		EOF:      o.eof,
		EOFAfter: o.eofAfter,
		Liveness: o.liveness,
		Name:     r.name,
	})
}
