package shmring

import (
	"runtime/debug"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/ring"
)

// A peer that truncates the ring's file makes the mapping's pages vanish,
// and touching them raises SIGBUS, which kills a Go process unless the
// goroutine runs with debug.SetPanicOnFault. Opening a ring, attaching to
// it, Stats and Close do, and turn the fault into ErrTruncated. The
// per-message calls do not: a guard (a deferred recover and two
// SetPanicOnFault calls) costs 7 ns per call as measured, two calls per
// message, against 46-49 ns for a whole 64-byte message between processes.
// Guarded protects a whole loop of them instead, for nothing per message.
//
// The guard does not hold in a process built with -race: atomic operations
// run in the race runtime's C code there, and a fault in C code cannot be
// turned into a Go panic.

// Guarded runs f with memory faults in this goroutine turned into
// ErrTruncated: wrap the loop that sends or receives (and the code that
// reads or writes the slices Reserve and Peek return) in one Guarded call.
// After ErrTruncated the ring is gone: Close it (Close is guarded).
//
//	err := shmring.Guarded(func() error {
//		for {
//			n, err := c.Recv(ctx, buf)
//			...
//		}
//	})
func Guarded(f func() error) (err error) {
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	return f()
}

// The calls of package ring that touch the mapping outside the per-message
// path, guarded.

func attach(seg *shm.Segment) (r *ring.Ring, err error) {
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	if seg.Rounded() {
		return ring.AttachRounded(seg.Bytes(), seg)
	}
	return ring.Attach(seg.Bytes(), seg)
}

func (r *Ring) newProducer() (p *ring.Producer, err error) {
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	return r.r.NewProducer(ring.ProducerOptions{Wait: r.opts.wait, Liveness: r.opts.liveness, WaitForConsumer: r.opts.waitConsumer, EndWithConsumer: r.opts.endConsumer, Name: r.name})
}

func (r *Ring) newConsumer() (c *ring.Consumer, err error) {
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	return r.r.NewConsumer(ring.ConsumerOptions{Wait: r.opts.wait, EOF: r.opts.eof, EOFAfter: r.opts.eofAfter, Liveness: r.opts.liveness, Name: r.name, GiveP: r.opts.giveP})
}

func (r *Ring) stats() (ring.Stats, error) { return stats(r.r) }

// consumerAlive reports whether the ring's consumer is attached and alive,
// its PID, and whether the ring is marked removed, guarded.
func (r *Ring) consumerAlive() (alive bool, pid uint32, removed bool, err error) {
	if err := r.acquire(); err != nil {
		return false, 0, false, err
	}
	defer r.release()
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	alive, pid = r.r.ConsumerAlive()
	return alive, pid, r.r.Removed(), nil
}
