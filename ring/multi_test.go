package ring

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// msgFrom is a test message: producer id, sequence, and bytes derived from
// both, of a size that varies with the sequence.
func msgFrom(id, seq uint64, maxSize int) []byte {
	size := 16 + int((seq*7919+id*104729)%uint64(maxSize-15))
	buf := make([]byte, size)
	fill(buf, seq*131+id)
	binary.LittleEndian.PutUint64(buf, id)
	binary.LittleEndian.PutUint64(buf[8:], seq)
	return buf
}

// order checks messages from several producers: each producer's arrive in
// sequence, each intact.
type order struct {
	t    testing.TB
	next map[uint64]uint64
	max  int
}

func newOrder(t testing.TB, maxSize int) *order {
	return &order{t: t, next: make(map[uint64]uint64), max: maxSize}
}

func (o *order) add(msg []byte) {
	o.t.Helper()
	if len(msg) < 16 {
		o.t.Fatalf("message of %d bytes", len(msg))
	}
	id, seq := binary.LittleEndian.Uint64(msg), binary.LittleEndian.Uint64(msg[8:])
	if seq != o.next[id] {
		o.t.Fatalf("producer %d: message %d, want %d", id, seq, o.next[id])
	}
	if want := msgFrom(id, seq, o.max); string(want) != string(msg) {
		o.t.Fatalf("producer %d message %d: %d bytes, not the ones sent", id, seq, len(msg))
	}
	o.next[id]++
}

func multiRing(t testing.TB, capacity uint64) *Ring {
	return heapRing(t, Config{Capacity: capacity, MultiProducer: true, Slots: 8})
}

// die makes a producer vanish as a killed process does: its lock goes, and
// nothing else (its slot stays marked attached, its claim recorded).
func die(p *Producer) {
	p.closed = true
	p.r.locker.Unlock(int64(p.slotOff))
}

func TestMultiProducerStream(t *testing.T) {
	const producers, perProducer, maxSize = 4, 20000, 300
	r := multiRing(t, 4096)
	c, err := r.NewConsumer(ConsumerOptions{EOF: true, EOFAfter: producers})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for id := range uint64(producers) {
		p, err := r.NewProducer(ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer p.Close()
			for seq := range uint64(perProducer) {
				msg := msgFrom(id, seq, maxSize)
				var err error
				switch seq % 3 {
				case 0:
					err = p.Send(context.Background(), msg)
				case 1: // reserve more than needed, commit less
					var buf []byte
					if buf, err = p.Reserve(context.Background(), len(msg)+int(seq%40)); err == nil {
						copy(buf, msg)
						err = p.Commit(len(msg))
					}
				case 2: // an aborted reservation first: padding in the stream
					var buf []byte
					if buf, err = p.Reserve(context.Background(), int(seq%100)); err == nil {
						p.Abort()
						_ = buf
						err = p.Send(context.Background(), msg)
					}
				}
				if err != nil {
					t.Errorf("producer %d: %v", id, err)
					return
				}
			}
		})
	}
	o := newOrder(t, maxSize)
	buf := make([]byte, maxSize)
	n := 0
	for {
		m, err := c.Recv(context.Background(), buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		o.add(buf[:m])
		n++
	}
	wg.Wait()
	if n != producers*perProducer {
		t.Fatalf("received %d messages, want %d", n, producers*perProducer)
	}
	if a := atomic.LoadUint32(r.u32(offProducers + prodsAttached)); a != 0 {
		t.Fatalf("%d producers still counted as attached", a)
	}
}

// TestCommitShapes covers every way a multi-producer commit can use its
// claim: exactly, with 8 bytes of slack, with padding after the message,
// aborted, and each of these across the end of the data area.
func TestCommitShapes(t *testing.T) {
	r := multiRing(t, 512)
	p, c := pairMulti(t, r)
	buf := make([]byte, 512)
	seq := uint64(0)
	for round := range 200 {
		reserve := 1 + round*37%200
		for _, commit := range []int{reserve, max(reserve-8, 0), reserve / 2, -1} {
			res, err := p.TryReserve(reserve)
			if err != nil {
				t.Fatalf("round %d: reserve %d: %v", round, reserve, err)
			}
			if commit < 0 {
				p.Abort()
				continue
			}
			fill(res[:commit], seq)
			if err := p.Commit(commit); err != nil {
				t.Fatal(err)
			}
			// Peek and Release: Release gives the space back at once
			// (TryRecv gives it back at the consumer's next call), and
			// the next round needs it.
			msg, err := c.TryPeek()
			if err != nil {
				t.Fatalf("round %d: reserved %d, committed %d: %v", round, reserve, commit, err)
			}
			check(t, msg, seq, commit)
			c.Release()
			seq++
		}
		if _, err := c.TryRecv(buf); !errors.Is(err, ErrEmpty) {
			t.Fatalf("round %d: after an aborted reservation: got %v, want ErrEmpty", round, err)
		}
	}
}

func pairMulti(t testing.TB, r *Ring) (*Producer, *Consumer) {
	t.Helper()
	p, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.NewConsumer(ConsumerOptions{Liveness: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); c.Close() })
	return p, c
}

func TestSlotsReused(t *testing.T) {
	r := multiRing(t, 1024)
	for i := range 100 {
		var ps []*Producer
		for range 8 {
			p, err := r.NewProducer(ProducerOptions{})
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			ps = append(ps, p)
		}
		if _, err := r.NewProducer(ProducerOptions{}); !errors.Is(err, ErrProducerBusy) {
			t.Fatalf("ninth producer on 8 slots: got %v, want ErrProducerBusy", err)
		}
		for _, p := range ps {
			p.Close()
		}
	}
	if a := atomic.LoadUint32(r.u32(offProducers + prodsAttached)); a != 0 {
		t.Fatalf("%d still counted attached", a)
	}
	if g := atomic.LoadUint64(r.u64(r.slot(7) + slotGen)); g != 100 {
		t.Fatalf("slot 7 attached %d times, want 100", g)
	}
}
