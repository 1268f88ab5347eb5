package ring

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// sizeOf is the size of message seq in the batch tests: 0 to 300 bytes.
func sizeOf(seq uint64) int { return int(seq * 37 % 301) }

// sendBatches sends total messages through SendBatch in batches of random
// lengths (1 to 40 messages), each message filled from its sequence number.
func sendBatches(t *testing.T, p *Producer, total uint64, rng *rand.Rand) {
	ctx := context.Background()
	for seq := uint64(0); seq < total; {
		msgs := make([][]byte, min(uint64(1+rng.IntN(40)), total-seq))
		for i := range msgs {
			msgs[i] = make([]byte, sizeOf(seq+uint64(i)))
			fill(msgs[i], seq+uint64(i))
		}
		for len(msgs) > 0 {
			k, err := p.SendBatch(ctx, msgs)
			if err != nil {
				t.Error(err)
				return
			}
			if k < 1 || k > len(msgs) {
				t.Errorf("SendBatch of %d messages sent %d", len(msgs), k)
				return
			}
			msgs, seq = msgs[k:], seq+uint64(k)
		}
	}
}

// TestBatchStream streams batches through a small ring (every batch meets
// the end of the data area sooner or later) and checks every message, in
// order, on single- and multi-producer rings.
func TestBatchStream(t *testing.T) {
	for _, multi := range []bool{false, true} {
		r := heapRing(t, Config{Capacity: 4096, MaxMessage: 1024, MultiProducer: multi})
		p, c := pair(t, r, ConsumerOptions{Wait: DefaultWaitPolicy})
		const total = 50_000
		go sendBatches(t, p, total, rand.New(rand.NewPCG(1, uint64(len(t.Name())))))
		buf := make([]byte, 1024)
		for seq := range uint64(total) {
			n, err := c.Recv(context.Background(), buf)
			if err != nil {
				t.Fatalf("multi %v, message %d: %v", multi, seq, err)
			}
			check(t, buf[:n], seq, sizeOf(seq))
		}
		if _, err := c.TryRecv(buf); !errors.Is(err, ErrEmpty) {
			t.Fatalf("after the stream: %v, want ErrEmpty", err)
		}
		st := r.Stats()
		if st.Slots[0].Messages != total || st.Consumer.Messages != total {
			t.Fatalf("multi %v: producer counted %d messages, consumer %d, want %d", multi, st.Slots[0].Messages, st.Consumer.Messages, total)
		}
	}
}

func TestBatchEdges(t *testing.T) {
	r := heapRing(t, Config{Capacity: 4096, MaxMessage: 256})
	p, c := pair(t, r, ConsumerOptions{})
	buf := make([]byte, 256)

	if k, err := p.TrySendBatch(nil); k != 0 || err != nil {
		t.Fatalf("empty batch: %d, %v", k, err)
	}
	// A message of MaxMessage bytes cannot be in a batch: it goes alone.
	big, small := make([]byte, 256), make([]byte, 10)
	fill(big, 1)
	fill(small, 2)
	if k, err := p.TrySendBatch([][]byte{big, small}); k != 1 || err != nil {
		t.Fatalf("batch led by a maximal message: %d, %v; want 1 sent", k, err)
	}
	// 256 bytes hold 8 + 16 bytes per 10-byte message: 10 of them.
	msgs := make([][]byte, 20)
	for i := range msgs {
		msgs[i] = small
	}
	if k, err := p.TrySendBatch(msgs); k != 10 || err != nil {
		t.Fatalf("batch of 20 small messages: %d sent, %v; want 10", k, err)
	}
	if k, err := p.TrySendBatch([][]byte{make([]byte, 257)}); k != 0 || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("batch led by an oversized message: %d, %v; want ErrTooLarge", k, err)
	}
	n, err := c.TryRecv(buf)
	if err != nil {
		t.Fatal(err)
	}
	check(t, buf[:n], 1, 256)
	// A short buffer leaves a batched message in the ring.
	if _, err := c.TryRecv(buf[:9]); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short buffer: %v", err)
	}
	for i := range 10 {
		n, err := c.TryRecv(buf)
		if err != nil {
			t.Fatalf("batched message %d: %v", i, err)
		}
		check(t, buf[:n], 2, 10)
	}
	// Full: TrySendBatch says so and sends nothing.
	for {
		if _, err := p.TrySendBatch(msgs); errors.Is(err, ErrFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// TestBatchConsumerHandover: a consumer closed in the middle of a batch is
// followed by one that starts at the next message of that batch, and a
// lying consumer_batch word costs duplicates (at least once), never a loss
// or a crash.
func TestBatchConsumerHandover(t *testing.T) {
	r := heapRing(t, Config{Capacity: 4096, MaxMessage: 1024})
	p, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msgs := make([][]byte, 6)
	for i := range msgs {
		msgs[i] = make([]byte, 10+i)
		fill(msgs[i], uint64(i))
	}
	if k, err := p.TrySendBatch(msgs); k != 6 || err != nil {
		t.Fatalf("sent %d, %v", k, err)
	}
	buf := make([]byte, 1024)
	recv := func(c *Consumer) uint64 {
		t.Helper()
		n, err := c.TryRecv(buf)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(buf[0]) | uint64(n)<<32
	}
	want := func(i int) uint64 { return uint64(i) | uint64(10+i)<<32 }
	first, err := r.NewConsumer(ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if got := recv(first); got != want(i) {
			t.Fatalf("message %d: got %#x", i, got)
		}
	}
	first.Close()
	second, err := r.NewConsumer(ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := recv(second); got != want(2) {
		t.Fatalf("after the handover: got %#x, want message 2", got)
	}
	second.Close()
	// Lies in the word: a wrong head, an offset inside an entry, one past
	// the batch. Each gives the whole batch again, from message 0.
	mark := r.u64(offConsumer + consBatch)
	good := atomic.LoadUint64(mark)
	for _, lie := range []uint64{good ^ 1<<40, good + 8, good&^0xffffffff | 4096} {
		atomic.StoreUint64(mark, lie)
		c, err := r.NewConsumer(ConsumerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := recv(c); got != want(0) {
			t.Fatalf("word %#x: got %#x, want message 0 again", lie, got)
		}
		c.Close()
		atomic.StoreUint64(mark, good) // Close published its own place
	}
}

// TestBatchCorruptEntry: an entry whose length runs past its batch is
// reported, not read.
func TestBatchCorruptEntry(t *testing.T) {
	r := heapRing(t, Config{Capacity: 4096, MaxMessage: 1024})
	p, c := pair(t, r, ConsumerOptions{})
	if k, err := p.TrySendBatch([][]byte{make([]byte, 8), make([]byte, 8)}); k != 2 || err != nil {
		t.Fatalf("sent %d, %v", k, err)
	}
	// The second entry starts at 16 + 16 in the data area.
	r.data[RecordHeaderSize+16] = 200
	buf := make([]byte, 1024)
	if _, err := c.TryRecv(buf); err != nil {
		t.Fatalf("first message: %v", err)
	}
	if _, err := c.TryRecv(buf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("entry of 200 bytes in a 32-byte batch: %v, want ErrCorrupt", err)
	}
}
