package ring

import (
	"fmt"
	"sync/atomic"
)

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
	// Fanout describes a fan-out ring's frontier (nil on other rings),
	// and Subscribers its subscriber lines that were ever taken.
	Fanout      *FanoutStats      `json:"fanout,omitempty"`
	Subscribers []SubscriberStats `json:"subscribers,omitempty"`
}

// FanoutStats describes a fan-out ring's fan-out line.
type FanoutStats struct {
	// Frontier is the position before which producers may overwrite;
	// Messages and Bytes were committed before it since creation.
	Frontier uint64 `json:"frontier"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// Raises counts the moves of the frontier.
	Raises uint64 `json:"raises"`
	// Evictions counts the reliable subscribers evicted.
	Evictions uint64 `json:"evictions"`
	// Attaches counts subscriber attaches since creation.
	Attaches uint64 `json:"attaches"`
	// EvictAfterNs is the lag bound in nanoseconds, 0 for none.
	EvictAfterNs uint64 `json:"evict_after_ns"`
	// Lines is the number of subscriber lines.
	Lines uint32 `json:"lines"`
}

// SubscriberStats describes one subscriber line of a fan-out ring.
type SubscriberStats struct {
	Line uint32 `json:"line"`
	// Kind is "reliable", "lossy", "evicted" (a reliable one the
	// producers no longer wait for) or "free".
	Kind       string `json:"kind"`
	Alive      bool   `json:"alive"` // its liveness lock is held
	PID        uint32 `json:"pid"`
	Generation uint64 `json:"generation"` // attaches of this line
	// Position is its published position, Lag the bytes of the ring
	// between it and the tail.
	Position uint64 `json:"position"`
	Lag      uint64 `json:"lag"`
	Messages uint64 `json:"messages"` // delivered, as of its last position store
	Bytes    uint64 `json:"bytes"`
	// Lost and LostBytes count what a lossy subscriber lost, in Laps
	// laps.
	Lost      uint64 `json:"lost"`
	LostBytes uint64 `json:"lost_bytes"`
	Laps      uint64 `json:"laps"`
	Parks     uint64 `json:"parks"`
	Wakes     uint64 `json:"wakes"`
	Recovered uint64 `json:"recovered"`
	Corrupt   uint64 `json:"corrupt"`
}

// subKinds names the subscriber line states.
var subKinds = [...]string{subFree: "free", subReliable: "reliable", subLossy: "lossy", subEvicted: "evicted"}

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
	if r.fanout() {
		r.fanStats(&s, ld32, ld64, alive)
	}
	return s
}

// fanStats adds a fan-out ring's lines to s.
func (r *Ring) fanStats(s *Stats, ld32 func(uint64) uint32, ld64 func(uint64) uint64, alive func(uint64) bool) {
	f, _ := r.loadFrontier()
	s.Fanout = &FanoutStats{
		Frontier:     f.pos,
		Messages:     f.msgs,
		Bytes:        f.bytes,
		Raises:       ld64(r.fanOff + fanRaises),
		Evictions:    ld64(r.fanOff + fanEvictions),
		Attaches:     ld64(r.fanOff + fanAttaches),
		EvictAfterNs: ld64(r.fanOff + fanEvictNs),
		Lines:        r.subs,
	}
	for i := range r.linesUsed() {
		off := r.subLine(i)
		gen := ld64(off + consGen)
		if gen == 0 {
			continue
		}
		kind := fmt.Sprintf("unknown(%d)", ld32(off+consState))
		if st := ld32(off + consState); st < uint32(len(subKinds)) {
			kind = subKinds[st]
		}
		pos := ld64(off + subPos)
		sub := SubscriberStats{
			Line:       i,
			Kind:       kind,
			PID:        ld32(off + consPID),
			Generation: gen,
			Position:   pos,
			Messages:   ld64(off + consMessages),
			Bytes:      ld64(off + consBytes),
			Lost:       ld64(off + subLost),
			LostBytes:  ld64(off + subLostBytes),
			Laps:       ld64(off + subLaps),
			Parks:      ld64(off + consParks),
			Wakes:      ld64(off + consWakes),
			Recovered:  ld64(off + consRecovered),
			Corrupt:    ld64(off + consCorrupt),
		}
		if s.Tail > pos {
			sub.Lag = s.Tail - pos
		}
		sub.Alive = kind != "free" && alive(off)
		s.Subscribers = append(s.Subscribers, sub)
	}
}
