package ring

import (
	"errors"
	"io"
	"testing"
	"time"
	"unsafe"
)

// The fuzz targets feed hostile memory to the code that reads it. Whatever
// the bytes, Attach and every producer and consumer call must return (no
// hang) without a panic or an access out of bounds, with errors that wrap
// the package's sentinels.

// alignedCopy copies b into 8-byte aligned memory, as a mapping is.
func alignedCopy(b []byte) []byte {
	words := make([]uint64, (len(b)+7)/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(b))
	copy(mem, b)
	return mem
}

// image lays out a small ring with a few messages in it, as a seed.
func image(tb testing.TB, multi bool) []byte {
	return imageOf(tb, Config{Capacity: 256, Slots: 2, MultiProducer: multi})
}

func imageOf(tb testing.TB, c Config) []byte {
	r := heapRing(tb, c)
	if r.fanout() {
		s, err := r.Subscribe(SubscriberOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		s.closed = true
		r.locker.Unlock(int64(s.line)) // dead, its line marked reliable
	}
	p, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range 5 {
		p.TrySend(make([]byte, 10+i*7))
	}
	p.TrySendBatch([][]byte{make([]byte, 3), make([]byte, 9), nil}) // a batch
	p.TryReserve(20)                                                // a claim in flight
	return append([]byte(nil), r.mem...)
}

var sentinels = []error{ErrBadMagic, ErrVersion, ErrSize, ErrBadHeader, ErrNotReady, ErrBadConfig, ErrCorrupt,
	ErrTooLarge, ErrFull, ErrEmpty, ErrProducerBusy, ErrConsumerBusy, ErrConsumerDead, ErrConsumerClosed, ErrRingRemoved, ErrClosed, ErrShortBuffer, io.EOF,
	ErrFanout, ErrNotFanout, ErrSubscribersFull, ErrEvicted, ErrLost}

func checkErr(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("%s: error %v wraps no sentinel", what, err)
}

// exercise runs every call that reads the shared memory, a bounded number
// of times.
func exercise(t *testing.T, r *Ring) {
	r.Stats()
	c, err := r.NewConsumer(ConsumerOptions{EOF: true})
	checkErr(t, "NewConsumer", err)
	if err == nil {
		buf := make([]byte, 64)
		for range 100 {
			_, err := c.TryRecv(buf)
			checkErr(t, "TryRecv", err)
			if err != nil && !errors.Is(err, ErrShortBuffer) {
				break
			}
		}
		checkErr(t, "maintain", c.maintain())
		_, err = c.TryPeek()
		checkErr(t, "TryPeek", err)
		c.Close()
	}
	for _, o := range []SubscriberOptions{{}, {Lossy: true}, {Oldest: true}, {Lossy: true, Oldest: true, EOF: true}} {
		s, err := r.Subscribe(o)
		checkErr(t, "Subscribe", err)
		if err != nil {
			continue
		}
		buf := make([]byte, 64)
		for range 100 {
			_, err := s.TryRecv(buf)
			checkErr(t, "subscriber TryRecv", err)
			if err != nil && !errors.Is(err, ErrShortBuffer) && !errors.Is(err, ErrLost) {
				break
			}
		}
		checkErr(t, "subscriber maintain", s.maintain())
		if _, err = s.TryPeek(); err == nil {
			checkErr(t, "ReleaseChecked", s.ReleaseChecked())
		}
		s.Close()
	}
	p, err := r.NewProducer(ProducerOptions{})
	checkErr(t, "NewProducer", err)
	if err == nil {
		for i := range 20 {
			checkErr(t, "TrySend", p.TrySend(make([]byte, i*5)))
		}
		checkErr(t, "checkSubscribers", p.checkSubscribers())
		p.Close()
	}
}

func FuzzAttach(f *testing.F) {
	f.Add(image(f, false))
	f.Add(image(f, true))
	f.Add(imageOf(f, Config{Capacity: 256, Slots: 2, Subscribers: 2}))
	f.Add(imageOf(f, Config{Capacity: 256, Slots: 2, Subscribers: 2, MultiProducer: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Attach(alignedCopy(b), LocalLocker())
		checkErr(t, "Attach", err)
		if err == nil {
			exercise(t, r)
		}
	})
}

// FuzzReadPath keeps a valid header and lets the fuzzer write the positions,
// the data area and a producer slot's claim: the consumer's read path and
// recovery, and the producer's claim, over arbitrary shared state.
func FuzzReadPath(f *testing.F) {
	f.Add(true, uint64(0), uint64(40), uint64(0), uint64(40), []byte{})
	f.Add(false, uint64(64), uint64(128), uint64(noClaim), uint64(0), []byte{24, 0, 0, 0, 1, 0, 0, 0})
	seed := image(f, true)
	r, _ := Attach(alignedCopy(seed), LocalLocker())
	f.Add(true, *r.head, *r.tail, *r.u64(r.slot(0) + slotClaimPos), *r.u64(r.slot(0) + slotClaimLen), append([]byte(nil), r.data...))
	f.Fuzz(func(t *testing.T, multi bool, head, tail, claimPos, claimLen uint64, data []byte) {
		r := heapRing(t, Config{Capacity: 256, Slots: 2, MultiProducer: multi})
		copy(r.data, data)
		*r.head, *r.tail = head, tail
		for i := range uint32(2) {
			*r.u32(r.slot(i) + slotState) = slotAttached * (i & 1) // slot 1 marked attached, unlocked: dead
			*r.u64(r.slot(i) + slotClaimPos) = claimPos + uint64(i)*8
			*r.u64(r.slot(i) + slotClaimLen) = claimLen
		}
		exercise(t, r)
	})
}

// FuzzFanout keeps a valid fan-out header and lets the fuzzer write the
// frontier's copies, the head and tail, the subscriber lines and the data
// area: subscribing, reading, laps, and the producers' frontier updates over
// arbitrary shared state.
func FuzzFanout(f *testing.F) {
	f.Add(false, uint64(0), uint64(0), uint64(0), uint64(0), uint32(1), uint64(0), []byte{})
	seed := imageOf(f, Config{Capacity: 256, Slots: 2, Subscribers: 2, MultiProducer: true})
	r, _ := Attach(alignedCopy(seed), LocalLocker())
	f.Add(true, *r.head, *r.tail, *r.u64(r.fanOff + fanSeq), *r.u64(r.fanOff + fanCopy), uint32(subReliable), *r.u64(r.subLine(0) + subPos), append([]byte(nil), r.data...))
	f.Fuzz(func(t *testing.T, multi bool, head, tail, seq, front uint64, state uint32, subPosition uint64, data []byte) {
		r := heapRing(t, Config{Capacity: 256, Slots: 2, MultiProducer: multi, Subscribers: 2, EvictAfter: time.Nanosecond})
		copy(r.data, data)
		*r.head, *r.tail = head, tail
		*r.u64(r.fanOff + fanSeq) = seq
		for i := range uint64(2) {
			*r.u64(r.fanOff + fanCopy + i*fanCopySize) = front
			*r.u64(r.fanOff + fanCopy + i*fanCopySize + 8) = front / 8
			*r.u64(r.fanOff + fanCopy + i*fanCopySize + 16) = front
		}
		*r.u32(r.fanOff + fanLines) = 2 + state>>16 // beyond the lines: clamped
		*r.u32(r.subLine(1) + consState) = state    // marked, unlocked: dead
		*r.u64(r.subLine(1) + subPos) = subPosition
		*r.u32(r.slot(1) + slotState) = slotAttached
		*r.u64(r.slot(1) + slotClaimPos) = tail - 16
		*r.u64(r.slot(1) + slotClaimLen) = 16
		exercise(t, r)
	})
}
