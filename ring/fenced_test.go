package ring

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestFencedAccounting follows the fenced word through a producer's life:
// fenced when it attaches, unfenced after a run of commits that found no
// waiter, fenced again when a commit finds the consumer asleep, uncounted
// when it detaches, and when it dies (its slot reaped, or taken over by a
// new producer). The consumer skips the barrier only while the word equals
// the attached count.
func TestFencedAccounting(t *testing.T) {
	if releaseIsFence {
		t.Skip("here a release store is a full fence: producers stay fenced")
	}
	if !barrierAvailable() {
		t.Skip("no membarrier here: producers fence every commit and stay fenced")
	}
	r := heapRing(t, Config{Capacity: 1 << 16, MultiProducer: true, Slots: 4})
	word := func() uint32 { return atomic.LoadUint32(r.fencedWord()) }
	flag := func(p *Producer) uint32 { return atomic.LoadUint32(r.u32(p.slotOff + slotFenced)) }
	c, err := r.NewConsumer(ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if word() != 1 || flag(a) != 1 || !a.fenced || !r.producersFence() {
		t.Fatalf("a new producer: word %d, flag %d, fenced %v", word(), flag(a), a.fenced)
	}
	// A stream with nobody asleep: unfenced after unfenceAfter commits.
	buf := make([]byte, 64)
	for i := range unfenceAfter {
		if a.fenced != true {
			t.Fatalf("unfenced after %d commits, want %d", i, unfenceAfter)
		}
		if err := a.TrySend(buf); err != nil {
			t.Fatal(err)
		}
		c.TryRecv(buf)
	}
	if word() != 0 || flag(a) != 0 || a.fenced || r.producersFence() {
		t.Fatalf("after a stream: word %d, flag %d, fenced %v", word(), flag(a), a.fenced)
	}
	// The consumer asleep: the next commit wakes it and fences again.
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Recv(ctx, make([]byte, 64))
		got <- err
	}()
	for atomic.LoadUint32(r.dataDoor.waiters) == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := a.TrySend(buf); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if word() != 1 || flag(a) != 1 || !a.fenced {
		t.Fatalf("after waking a sleeper: word %d, flag %d, fenced %v", word(), flag(a), a.fenced)
	}
	// A second producer: counted too; the barrier is skipped only while
	// both fence.
	b, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if word() != 2 || !r.producersFence() {
		t.Fatalf("two fenced producers: word %d", word())
	}
	b.setFenced(false)
	if word() != 1 || r.producersFence() {
		t.Fatalf("one of two unfenced: word %d, producersFence %v", word(), r.producersFence())
	}
	// Detaching uncounts.
	b.setFenced(true)
	b.Close()
	if word() != 1 || !r.producersFence() {
		t.Fatalf("after a fenced producer detached: word %d", word())
	}
	// A dead fenced producer (nothing in flight): reaping uncounts it.
	f, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if word() != 2 {
		t.Fatalf("a third producer: word %d", word())
	}
	die(f)
	if n, err := r.reap(atomic.LoadUint64(r.head)); err != nil || n != 1 {
		t.Fatalf("reap: %d, %v", n, err)
	}
	if word() != 1 {
		t.Fatalf("after a dead fenced producer was reaped: word %d", word())
	}
	a.Close()
	if word() != 0 {
		t.Fatalf("after the last producer detached: word %d", word())
	}
	// A dead fenced producer whose slot a new one takes over: counted
	// once, for the newcomer.
	d, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	die(d)
	e, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.slot != d.slot || word() != 1 || flag(e) != 1 || !r.producersFence() {
		t.Fatalf("a slot taken over: slots %d and %d, word %d, flag %d", d.slot, e.slot, word(), flag(e))
	}
	// A scribbled word never wraps below zero.
	atomic.StoreUint32(r.fencedWord(), 0)
	e.setFenced(false)
	if word() != 0 {
		t.Fatalf("decrement of a zero word: %d", word())
	}
}
