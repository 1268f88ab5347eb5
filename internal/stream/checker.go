package stream

import (
	"sort"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// MaxProducers bounds producer ids, so that per-producer state is a slice.
const MaxProducers = 1 << 16

// MaxSeq bounds sequence numbers, so that the record of what was seen stays
// in memory (a bit per message).
const MaxSeq = 1 << 31

// Checker verifies a stream of messages from several producers. It is not
// safe for concurrent use.
type Checker struct {
	producers []*producerState
	finished  int
	corrupt   uint64
	messages  uint64
	bytes     uint64
	latency   *hdrhistogram.Histogram
}

type producerState struct {
	seen       []uint64 // bit per sequence number
	received   uint64   // distinct messages
	duplicates uint64
	reordered  uint64
	maxSeq     uint64
	any        bool
	finished   bool
	total      uint64 // messages sent, from the final message
}

// NewChecker returns an empty Checker.
func NewChecker() *Checker {
	return &Checker{latency: hdrhistogram.New(1, 3600e9, 3)}
}

// Add checks one received message. For a message marked FlagTimed it reads
// the clock and records the latency since the send time. Final messages are not counted as messages;
// corrupt ones are counted only as corrupt.
func (c *Checker) Add(msg []byte) {
	h, err := Decode(msg)
	if err != nil || h.Producer >= MaxProducers || h.Seq >= MaxSeq {
		c.corrupt++
		return
	}
	for int(h.Producer) >= len(c.producers) {
		c.producers = append(c.producers, nil)
	}
	p := c.producers[h.Producer]
	if p == nil {
		p = &producerState{}
		c.producers[h.Producer] = p
	}
	if h.Flags&FlagFinal != 0 {
		if !p.finished {
			c.finished++
		}
		p.finished, p.total = true, h.Seq
		return
	}
	c.messages++
	c.bytes += uint64(len(msg))
	word, bit := h.Seq/64, uint64(1)<<(h.Seq%64)
	for uint64(len(p.seen)) <= word {
		p.seen = append(p.seen, make([]uint64, max(len(p.seen), 1024))...)
	}
	if p.seen[word]&bit != 0 {
		p.duplicates++
		return
	}
	p.seen[word] |= bit
	p.received++
	if p.any && h.Seq < p.maxSeq {
		p.reordered++
	}
	if !p.any || h.Seq > p.maxSeq {
		p.maxSeq, p.any = h.Seq, true
	}
	if h.Flags&FlagTimed != 0 {
		if d := Now() - h.SentNs; d >= 0 {
			c.latency.RecordValue(d)
		}
	}
}

// Finished returns how many producers have sent their final message.
func (c *Checker) Finished() int { return c.finished }

// ProducerResult is what one producer's stream came to.
type ProducerResult struct {
	ID         uint32 `json:"id"`
	Received   uint64 `json:"received"`
	Sent       uint64 `json:"sent"`
	Finished   bool   `json:"finished"`
	Lost       uint64 `json:"lost"`
	Duplicates uint64 `json:"duplicates"`
	Reordered  uint64 `json:"reordered"`
}

// Latency holds latency percentiles in nanoseconds.
type Latency struct {
	P50  int64 `json:"p50"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
}

// Result sums up a stream.
type Result struct {
	Messages   uint64           `json:"messages"`
	Bytes      uint64           `json:"bytes"`
	Producers  int              `json:"producers"`
	Lost       uint64           `json:"lost"`
	Duplicates uint64           `json:"duplicates"`
	Reordered  uint64           `json:"reordered"`
	Corrupt    uint64           `json:"corrupt"`
	Seconds    float64          `json:"seconds"`
	MsgsPerSec float64          `json:"msgs_per_sec"`
	MBPerSec   float64          `json:"mb_per_sec"`
	LatencyNs  Latency          `json:"latency_ns"`
	Samples    int64            `json:"latency_samples"`
	PerProd    []ProducerResult `json:"per_producer"`
	// Filled in by the consumer from the ring: claims of dead producers
	// skipped, and slots of dead producers freed.
	Recovered     uint64 `json:"recovered"`
	DeadProducers uint64 `json:"dead_producers"`
	// Filled in by a fan-out subscriber: its kind ("reliable" or
	// "lossy"), the messages the ring reported lost (LostError) in how
	// many laps, and whether it was evicted.
	Subscriber   string `json:"subscriber,omitempty"`
	LostReported uint64 `json:"lost_reported"`
	Laps         uint64 `json:"laps"`
	Evicted      bool   `json:"evicted"`
}

// OK reports whether nothing was lost, duplicated, reordered or corrupt;
// for a lossy subscriber, whether exactly the messages the ring reported lost
// are missing, and nothing was duplicated, reordered or corrupt.
func (r Result) OK() bool {
	lost := r.Lost == 0
	if r.Subscriber == "lossy" {
		lost = r.Lost == r.LostReported
	}
	return lost && r.Duplicates == 0 && r.Reordered == 0 && r.Corrupt == 0 && !r.Evicted
}

// Result sums up what the Checker saw, over the given duration. A producer
// that did not finish is counted lost for every sequence number below the
// highest one seen that never arrived.
func (c *Checker) Result(seconds float64) Result {
	r := Result{Messages: c.messages, Bytes: c.bytes, Corrupt: c.corrupt, Seconds: seconds}
	for id, p := range c.producers {
		if p == nil {
			continue
		}
		pr := ProducerResult{ID: uint32(id), Received: p.received, Finished: p.finished,
			Duplicates: p.duplicates, Reordered: p.reordered}
		pr.Sent = p.total
		if !p.finished && p.any {
			pr.Sent = p.maxSeq + 1
		}
		if pr.Sent > p.received {
			pr.Lost = pr.Sent - p.received
		}
		r.Lost += pr.Lost
		r.Duplicates += pr.Duplicates
		r.Reordered += pr.Reordered
		r.PerProd = append(r.PerProd, pr)
	}
	sort.Slice(r.PerProd, func(i, j int) bool { return r.PerProd[i].ID < r.PerProd[j].ID })
	r.Producers = len(r.PerProd)
	if seconds > 0 {
		r.MsgsPerSec = float64(c.messages) / seconds
		r.MBPerSec = float64(c.bytes) / seconds / 1e6
	}
	r.Samples = c.latency.TotalCount()
	if r.Samples > 0 {
		r.LatencyNs = Latency{
			P50:  c.latency.ValueAtQuantile(50),
			P99:  c.latency.ValueAtQuantile(99),
			P999: c.latency.ValueAtQuantile(99.9),
			Max:  c.latency.Max(),
		}
	}
	return r
}
