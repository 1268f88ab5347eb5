package ring

import "sync/atomic"

// Fenced commits: sparing a sleeping consumer its membarrier.
//
// A producer's commit is a plain release store, and its load of the data
// waiter count that follows may be served before the store is visible; a
// consumer on its way to sleep covers that with membarrier(2) (FORMAT.md,
// "Doorbells"), which interrupts every CPU running a process registered for
// it: several microseconds on a virtual machine, on every sleep. Where the
// consumer sleeps often (request and response, a low rate), a full fence
// after each commit costs the producer little (a locked instruction per
// message that was to wake a sleeper anyway), and the consumer can skip the
// membarrier when every attached producer does so.
//
// So a producer is in one of two modes. Fenced, it executes a full fence
// between each commit and its load of the waiter count, and is counted in
// the ring's fenced word; unfenced, it does not, and is not counted. It
// starts fenced, turns unfenced after unfenceAfter commits in a row that
// found no waiter (a stream, where the fence would cost throughput), and
// fenced again at the first commit that finds one. A consumer about to
// sleep skips the membarrier when the fenced word equals the attached
// count.
//
// The orders that keep this safe (the model in wait.pml checks them):
//   - becoming fenced: the slot's fenced flag set, then the fenced word
//     incremented by a locked instruction (which drains the producer's
//     earlier commits); every commit after it fences;
//   - becoming unfenced (and detaching): the fenced word decremented by a
//     locked instruction, then the flag cleared, and only then commits
//     without the fence. A consumer that read the word before the
//     decrement counted itself as a waiter before it, so the producer's
//     later loads of the count see it;
//   - a dead producer's slot (reaped or taken over): its flag, if set,
//     decrements the word.
// Every step that a crash can cut short leaves the word too low, never too
// high: too low only costs sleepers a membarrier. The word is never
// decremented below zero.

// unfenceAfter is how many commits in a row that found no waiter turn a
// producer unfenced.
const unfenceAfter = 64

func (r *Ring) fencedWord() *uint32 { return r.u32(offProducers + prodsFenced) }

// producersFence reports whether every attached producer fences its
// commits, so that a consumer about to sleep needs no membarrier. The
// consumer calls it after counting itself as a waiter.
func (r *Ring) producersFence() bool {
	return atomic.LoadUint32(r.fencedWord()) == atomic.LoadUint32(r.u32(offProducers+prodsAttached))
}

// startFenced makes a producer that just took its slot fenced, after
// settling a flag its slot's previous owner may have left set.
func (p *Producer) startFenced() {
	p.r.unfenceSlot(p.slotOff)
	p.setFenced(true)
}

// setFenced changes the producer's mode, in the orders above.
func (p *Producer) setFenced(on bool) {
	r, flag := p.r, p.r.u32(p.slotOff+slotFenced)
	if on {
		p.fenced = true
		atomic.StoreUint32(flag, 1)
		atomic.AddUint32(r.fencedWord(), 1)
	} else {
		r.uncount(r.fencedWord())
		atomic.StoreUint32(flag, 0)
		p.fenced = false
	}
	p.quiet = 0
}

// adaptFence updates the producer's mode after a commit that found a
// waiter or not.
func (p *Producer) adaptFence(sawWaiter bool) {
	switch {
	case sawWaiter:
		p.quiet = 0
		if !p.fenced {
			p.setFenced(true)
		}
	case p.fenced:
		// Where a release store is a full fence, or where this process
		// has no membarrier (so it fences every commit anyway), the
		// fence costs nothing more: stay fenced.
		if p.quiet++; p.quiet >= unfenceAfter && !releaseIsFence && p.wait.barrier {
			p.setFenced(false)
		}
	}
}

// unfenceSlot uncounts the slot at off from the fenced word if its flag is
// set, and clears the flag: for a slot whose owner detaches or died (its
// lock is held).
func (r *Ring) unfenceSlot(off uint64) {
	flag := r.u32(off + slotFenced)
	if atomic.LoadUint32(flag) != 0 {
		r.uncount(r.fencedWord())
		atomic.StoreUint32(flag, 0)
	}
}

// uncount decrements a count in shared memory, but never below zero: a
// scribbled count must not wrap round.
func (r *Ring) uncount(w *uint32) {
	for {
		n := atomic.LoadUint32(w)
		if n == 0 || atomic.CompareAndSwapUint32(w, n, n-1) {
			return
		}
	}
}
