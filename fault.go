package shmring

import (
	"runtime/debug"

	"github.com/shmring/shmring/ring"
)

// Opening a ring, attaching to it, and Stats run with debug.SetPanicOnFault,
// so that a peer truncating the ring's file turns the SIGBUS that would kill
// the process into ErrTruncated. The per-message calls do not yet: a
// deferred recover in each costs 5 to 15 ns per message as measured, and a
// guard that costs nothing when unwanted is still to be designed.

// The calls of package ring that touch the mapping outside the per-message
// path, guarded.

func attach(mem []byte) (r *ring.Ring, err error) {
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	return ring.Attach(mem)
}

func (r *Ring) newProducer() (p *ring.Producer, err error) {
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	return r.r.NewProducer(ring.ProducerOptions{Wait: r.opts.wait, Liveness: r.opts.liveness, WaitForConsumer: r.opts.waitConsumer})
}

func (r *Ring) newConsumer() (c *ring.Consumer, err error) {
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	return r.r.NewConsumer(ring.ConsumerOptions{Wait: r.opts.wait, EOF: r.opts.eof, EOFAfter: r.opts.eofAfter, Liveness: r.opts.liveness})
}

func (r *Ring) stats() (ring.Stats, error) { return stats(r.r) }
