package ring

import "sync/atomic"

// Stats is a snapshot of a ring's shared state, each word loaded once. The
// words are written by other processes while they are read, so the snapshot
// is not atomic as a whole, and its values are reported as found: they are
// for people and tests, and nothing in this package acts on them.
type Stats struct {
	Head, Tail uint64
	// Attaches counts producer attaches since creation, Attached the slots
	// marked attached now (dead producers included until they are freed).
	Attaches uint64
	Attached uint32
	Consumer ConsumerStats
	// Slots lists the producer slots that were ever attached.
	Slots []SlotStats
}

// ConsumerStats describes the consumer line.
type ConsumerStats struct {
	Attached bool   // marked attached
	Alive    bool   // its liveness lock is held
	PID      uint32 // informational: PIDs are reused
	Attaches uint64
	Messages uint64 // as of its last head store
	Bytes    uint64
	Parks    uint64 // sleeps on the data doorbell
	Wakes    uint64 // wake system calls on the space doorbell
	// Recovered counts claims of dead producers skipped; Reaped the slots
	// of dead producers freed.
	Recovered uint64
	Reaped    uint64
}

// SlotStats describes one producer slot.
type SlotStats struct {
	Slot       uint32
	Attached   bool // marked attached
	Alive      bool // its liveness lock is held
	PID        uint32
	Generation uint64 // attaches of this slot
	// ClaimPos and ClaimLen are the claim in flight or last made
	// (multi-producer rings); ClaimLen 0 means none yet.
	ClaimPos, ClaimLen uint64
	Messages, Bytes    uint64 // committed by the current (or last) owner
	FullWaits          uint64 // times it found the ring full
	Parks, Wakes       uint64
}

// Stats reads the ring's shared state. It asks the Locker whether each
// attached peer is alive, which takes a system call each on a shared ring.
func (r *Ring) Stats() Stats {
	ld64 := func(off uint64) uint64 { return atomic.LoadUint64(r.u64(off)) }
	ld32 := func(off uint64) uint32 { return atomic.LoadUint32(r.u32(off)) }
	alive := func(off uint64) bool {
		held, err := r.locker.Locked(int64(off))
		return err == nil && held
	}
	s := Stats{
		Head:     ld64(offHead),
		Tail:     ld64(offTail),
		Attaches: ld64(offProducers + prodsAttaches),
		Attached: ld32(offProducers + prodsAttached),
		Consumer: ConsumerStats{
			Attached:  ld32(offConsumer+consState) == consAttached,
			PID:       ld32(offConsumer + consPID),
			Attaches:  ld64(offConsumer + consGen),
			Messages:  ld64(offConsumer + consMessages),
			Bytes:     ld64(offConsumer + consBytes),
			Parks:     ld64(offConsumer + consParks),
			Wakes:     ld64(offConsumer + consWakes),
			Recovered: ld64(offConsumer + consRecovered),
			Reaped:    ld64(offConsumer + consReaped),
		},
	}
	s.Consumer.Alive = s.Consumer.Attached && alive(offConsumer)
	for i := range r.slots {
		off := r.slot(i)
		gen := ld64(off + slotGen)
		if gen == 0 {
			continue
		}
		st := SlotStats{
			Slot:       i,
			Attached:   ld32(off+slotState) == slotAttached,
			PID:        ld32(off + slotPID),
			Generation: gen,
			ClaimPos:   ld64(off + slotClaimPos),
			ClaimLen:   ld64(off + slotClaimLen),
			Messages:   ld64(off + slotMessages),
			Bytes:      ld64(off + slotBytes),
			FullWaits:  ld64(off + slotFullWaits),
			Parks:      ld64(off + slotParks),
			Wakes:      ld64(off + slotWakes),
		}
		st.Alive = st.Attached && alive(off)
		s.Slots = append(s.Slots, st)
	}
	return s
}
