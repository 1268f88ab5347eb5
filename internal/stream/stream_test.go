package stream

import (
	"errors"
	"testing"
)

func TestEncodeDecode(t *testing.T) {
	e := NewEncoder(7, 300)
	for _, size := range []int{MinSize, MinSize + 1, 100, 300} {
		buf := make([]byte, size)
		e.Encode(buf, 12345, 999, FlagTimed)
		h, err := Decode(buf)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if h != (Header{Producer: 7, Flags: FlagTimed, Seq: 12345, SentNs: 999, Size: uint32(size)}) {
			t.Fatalf("size %d: got %+v", size, h)
		}
		// Every byte matters: flipping any one is detected.
		for i := range buf {
			buf[i] ^= 0x10
			if _, err := Decode(buf); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("size %d: byte %d flipped: got %v, want ErrCorrupt", size, i, err)
			}
			buf[i] ^= 0x10
		}
		if _, err := Decode(buf[:size-1]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("size %d: truncated: got %v, want ErrCorrupt", size, err)
		}
	}
	// A payload from another sequence number under this header is caught.
	a, b := make([]byte, 100), make([]byte, 100)
	e.Encode(a, 1, 0, 0)
	e.Encode(b, 2, 0, 0)
	copy(a[MinSize:], b[MinSize:])
	if _, err := Decode(a); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("torn message: got %v, want ErrCorrupt", err)
	}
}

func TestChecker(t *testing.T) {
	c := NewChecker()
	e0, e1 := NewEncoder(0, 64), NewEncoder(1, 64)
	buf := make([]byte, 64)
	send := func(e *Encoder, seq uint64, flags uint32) {
		e.Encode(buf, seq, Now(), flags|FlagTimed)
		c.Add(buf)
	}
	// Producer 0: 0 1 3 2 2 5, and a final message saying 6 were sent:
	// 4 is lost, the second 2 is a duplicate, the first 2 is reordered.
	for _, s := range []uint64{0, 1, 3, 2, 2, 5} {
		send(e0, s, 0)
	}
	send(e0, 6, FlagFinal)
	// Producer 1: 0..9 in order, never finishes.
	for s := range uint64(10) {
		send(e1, s, 0)
	}
	bad := make([]byte, 64)
	e1.Encode(bad, 10, 0, 0)
	bad[40]++
	c.Add(bad)
	if got := c.Finished(); got != 1 {
		t.Fatalf("Finished() = %d, want 1", got)
	}
	r := c.Result(2)
	want := Result{Messages: 16, Bytes: 16 * 64, Producers: 2, Lost: 1, Duplicates: 1, Reordered: 1, Corrupt: 1}
	if r.Messages != want.Messages || r.Bytes != want.Bytes || r.Producers != want.Producers ||
		r.Lost != want.Lost || r.Duplicates != want.Duplicates || r.Reordered != want.Reordered || r.Corrupt != want.Corrupt {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	if r.OK() {
		t.Fatal("OK() with losses")
	}
	if r.MsgsPerSec != 8 || r.Samples != 15 {
		t.Fatalf("rate %v, samples %d; want 8 and 15", r.MsgsPerSec, r.Samples)
	}
	if p := r.PerProd[1]; p.Finished || p.Sent != 10 || p.Lost != 0 {
		t.Fatalf("producer 1: %+v", p)
	}
}
