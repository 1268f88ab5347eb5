package ring

import (
	"sync/atomic"
)

// The multi-producer claim (FORMAT.md, "Many producers"). A producer records
// its intended claim in its slot, then makes it with a compare-and-swap of
// the shared tail; after a failed compare-and-swap it records the next
// attempt before trying again. So whenever the tail has moved past a
// position, some slot recorded a claim there first: the record recovery
// relies on (recover.go).
//
// A claim may begin with room skipped at the end of the data area. That
// padding is committed after the record, so the consumer's head never stops
// inside a claim: it is before it, or after all of it.

// claimMulti claims rec bytes (plus any padding before them) at the shared
// tail. It reports false when the ring is full.
func (p *Producer) claimMulti(rec uint64) (bool, error) {
	r := p.r
	for {
		pos := atomic.LoadUint64(r.tail)
		skip := uint64(0)
		if rem := r.capacity - pos&r.mask; rem < rec {
			skip = rem // records never wrap: pad to the end, start over
		}
		end := pos + skip + rec
		// A misaligned tail is checked on every claim: its stamp would be
		// a misaligned atomic store, which faults on some processors.
		if end-p.head > r.capacity || pos < p.head || pos%RecordAlign != 0 {
			h := atomic.LoadUint64(r.head)
			if !r.spanOK(h, pos) {
				if atomic.LoadUint64(r.tail) != pos {
					continue // others claimed, and the consumer passed pos, meanwhile
				}
				return false, r.spanErr(h, pos)
			}
			p.head = h
			if end-h > r.capacity {
				if !r.fanout() {
					return false, nil
				}
				nh, err := r.raise(end - r.capacity)
				if err != nil || end-nh > r.capacity {
					p.noteFull(nh)
					return false, err
				}
				p.head = nh
				continue // the tail may have moved meanwhile
			}
		}
		storeRelease64(r.u64(p.slotOff+slotClaimPos), pos)
		storeRelease64(r.u64(p.slotOff+slotClaimLen), skip+rec)
		if atomic.CompareAndSwapUint64(r.tail, pos, end) {
			p.claimPos, p.resvPos = pos, pos+skip
			return true, nil
		}
		for range claimBackoff {
			spinPause()
		}
	}
}

// claimBackoff is how many PAUSE instructions (spinPause) a producer waits
// after losing a claim to another before it tries again. Producers that
// retry at once pass the tail's cache line from core to core at every
// attempt, and the compare-and-swap waits each time for the producer's
// earlier stores to reach lines the consumer holds; a loser that stands back
// lets the winner claim on while the line stays in its cache. Four
// producers sending 64-byte messages one at a time (cmd/shmbench mpsc, two
// runs each, alternated): with free cores 15.4-16.6 M msg/s retrying at
// once, 22.7-23.6 M with 32, 23.5-24.7 M with 128; beside two busy threads
// 12.8-13.7, 15.7-17.0 and 17.9-18.1 M; on one CPU 23.0-23.4 M throughout
// (no claim is lost there). A PAUSE takes about 37 ns on the Intel Xeon
// this was measured on, so 32 is about 1.2 us added to a message whose
// claim was lost: the smaller value, since a lost claim is rare at low rates
// but where it happens it delays that one message. Older Intel and AMD
// processors pause for a few nanoseconds, and back off less.
const claimBackoff = 32

// commitMulti commits a message of n bytes in the claim: any space the
// message leaves unused in its record becomes padding (or slack), then the
// message's stamp, then the padding at the start of the claim.
func (p *Producer) commitMulti(n, kind uint32) {
	r := p.r
	used := p.resvPos + recordSize(uint64(n))
	switch end := p.resvPos + recordSize(uint64(p.resvLen)); end - used {
	case 0:
	case RecordAlign:
		kind |= KindSlack
	default:
		r.padTo(used, end, p.slot)
	}
	r.writeHeader(p.resvPos, n, kind)
	r.padTo(p.claimPos, p.resvPos, p.slot)
}

// abortMulti turns a claim into padding: its space is claimed already.
func (p *Producer) abortMulti() {
	r := p.r
	r.padTo(p.resvPos, p.resvPos+recordSize(uint64(p.resvLen)), p.slot)
	r.padTo(p.claimPos, p.resvPos, p.slot)
	p.commitFence()
	r.dataDoor.ring()
}
