package ring

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = 0x9e3779b97f4a7c15

// heapRing lays out a ring in 8-byte aligned heap memory.
func heapRing(tb testing.TB, c Config) *Ring {
	tb.Helper()
	if c.Key == 0 {
		c.Key = testKey
	}
	size, err := Size(c)
	if err != nil {
		tb.Fatal(err)
	}
	words := make([]uint64, size/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), size)
	r, err := Init(mem, c, LocalLocker())
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func pair(tb testing.TB, r *Ring, o ConsumerOptions) (*Producer, *Consumer) {
	tb.Helper()
	p, err := r.NewProducer(ProducerOptions{Wait: o.Wait})
	if err != nil {
		tb.Fatal(err)
	}
	c, err := r.NewConsumer(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close(); c.Close() })
	return p, c
}

// fill writes a message whose bytes derive from seq, so that any byte out of
// place shows.
func fill(buf []byte, seq uint64) {
	for i := range buf {
		buf[i] = byte(seq*31 + uint64(i))
	}
	if len(buf) >= 8 {
		binary.LittleEndian.PutUint64(buf, seq)
	}
}

func check(tb testing.TB, got []byte, seq uint64, size int) {
	tb.Helper()
	if len(got) != size {
		tb.Fatalf("message %d: %d bytes, want %d", seq, len(got), size)
	}
	want := make([]byte, size)
	fill(want, seq)
	for i := range got {
		if got[i] != want[i] {
			tb.Fatalf("message %d (%d bytes): byte %d is %#x, want %#x", seq, size, i, got[i], want[i])
		}
	}
}
