package ring

import "sync/atomic"

// Stats is a snapshot of a ring's shared state, each word loaded once. The
// words are written by other processes while they are read, so the snapshot
// is not atomic as a whole, and its values are reported as found: they are
// for people and tests, and nothing in this package acts on them.
type Stats struct {
	Head uint64 `json:"head"`
	Tail uint64 `json:"tail"`
	// Removed says the ring was marked removed or replaced (MarkRemoved).
	Removed bool `json:"removed"`
	// Attaches counts producer attaches since creation, Attached the slots
	// marked attached now (dead producers included until they are freed).
	Attaches uint64 `json:"attaches"`
	Attached uint32 `json:"attached"`
	// Fenced counts the producers that fence every commit, sparing a
	// sleeping consumer its membarrier (FORMAT.md, "Fenced commits").
	Fenced   uint32        `json:"fenced"`
	Consumer ConsumerStats `json:"consumer"`
	// Slots lists the producer slots that were ever attached.
	Slots []SlotStats `json:"slots"`
}

// ConsumerStats describes the consumer line.
type ConsumerStats struct {
	Attached bool   `json:"attached"` // marked attached
	Alive    bool   `json:"alive"`    // its liveness lock is held
	PID      uint32 `json:"pid"`      // informational: PIDs are reused
	Attaches uint64 `json:"attaches"`
	Messages uint64 `json:"messages"` // as of its last head store
	Bytes    uint64 `json:"bytes"`
	Parks    uint64 `json:"parks"` // sleeps on the data doorbell
	Wakes    uint64 `json:"wakes"` // wake system calls on the space doorbell
	// Recovered counts claims of dead producers skipped; Reaped the slots
	// of dead producers freed.
	Recovered uint64 `json:"recovered"`
	Reaped    uint64 `json:"reaped"`
	// Corrupt counts the corrupt records or words the consumer found.
	Corrupt uint64 `json:"corrupt"`
}

// SlotStats describes one producer slot.
type SlotStats struct {
	Slot       uint32 `json:"slot"`
	Attached   bool   `json:"attached"` // marked attached
	Alive      bool   `json:"alive"`    // its liveness lock is held
	PID        uint32 `json:"pid"`
	Generation uint64 `json:"generation"` // attaches of this slot
	// ClaimPos and ClaimLen are the claim in flight or last made
	// (multi-producer rings); ClaimLen 0 means none yet.
	ClaimPos uint64 `json:"claim_pos"`
	ClaimLen uint64 `json:"claim_len"`
	// Messages and Bytes were committed by the current (or last) owner.
	Messages  uint64 `json:"messages"`
	Bytes     uint64 `json:"bytes"`
	FullWaits uint64 `json:"full_waits"` // times it found the ring full
	Parks     uint64 `json:"parks"`      // sleeps on the space doorbell
	Wakes     uint64 `json:"wakes"`      // wake system calls on the data doorbell
	Fenced    bool   `json:"fenced"`     // counted in Stats.Fenced
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
		Removed:  ld32(offRemoved) != 0,
		Attaches: ld64(offProducers + prodsAttaches),
		Attached: ld32(offProducers + prodsAttached),
		Fenced:   ld32(offProducers + prodsFenced),
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
			Corrupt:   ld64(offConsumer + consCorrupt),
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
			Fenced:     ld32(off+slotFenced) != 0,
		}
		st.Alive = st.Attached && alive(off)
		s.Slots = append(s.Slots, st)
	}
	return s
}
