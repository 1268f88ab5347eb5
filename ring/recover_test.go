package ring

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/futex"
)

func counter(r *Ring, off uint64) uint64 { return atomic.LoadUint64(r.u64(offConsumer + off)) }

// recvWithin receives one message, failing the test if none comes in d.
func recvWithin(t *testing.T, c *Consumer, d time.Duration) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	buf := make([]byte, 4096)
	n, err := c.Recv(ctx, buf)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return buf[:n]
}

// nearTheEnd sends and receives messages through a fresh 1 KiB ring until 88
// bytes are left before the end of its data area: 7 records of 128 bytes and
// 1 of 40.
func nearTheEnd(t *testing.T, p *Producer, c *Consumer) {
	t.Helper()
	for i := range 8 {
		p.TrySend(make([]byte, map[bool]int{true: 24, false: 112}[i == 7]))
		recvWithin(t, c, time.Second)
	}
}

func TestRecoverDeadClaim(t *testing.T) {
	for _, wrap := range []bool{false, true} {
		r := multiRing(t, 1024)
		live, c := pairMulti(t, r)
		if wrap { // put the dead claim across the end of the data area
			nearTheEnd(t, live, c)
		}
		dead, err := r.NewProducer(ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dead.TryReserve(100); err != nil {
			t.Fatal(err)
		}
		if wrap && dead.claimPos == dead.resvPos {
			t.Fatal("the claim does not cross the end of the data area")
		}
		die(dead)
		died := time.Now()
		for seq := range uint64(3) {
			msg := make([]byte, 50)
			fill(msg, seq)
			if err := live.TrySend(msg); err != nil {
				t.Fatal(err)
			}
		}
		for seq := range uint64(3) {
			check(t, recvWithin(t, c, 5*time.Second), seq, 50)
			if seq == 0 {
				t.Logf("wrap %v: the claim was skipped %v after the death (liveness interval 5ms)", wrap, time.Since(died))
			}
		}
		if n := counter(r, consRecovered); n != 1 {
			t.Fatalf("wrap %v: %d recoveries counted, want 1", wrap, n)
		}
		if st := atomic.LoadUint32(r.u32(dead.slotOff + slotState)); st != 0 {
			t.Fatalf("wrap %v: the dead producer's slot is still marked %d", wrap, st)
		}
	}
}

// A stopped producer is alive: its claim holds the consumer up for as long as
// it lasts, and its message arrives, followed by the others.
func TestNoRecoveryOverLiveProducer(t *testing.T) {
	r := multiRing(t, 1024)
	slow, c := pairMulti(t, r)
	fast, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	buf, err := slow.TryReserve(40)
	if err != nil {
		t.Fatal(err)
	}
	if err := fast.TrySend([]byte("after")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond) // 40 liveness checks
	defer cancel()
	if _, err := c.Recv(ctx, make([]byte, 64)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv past a live producer's claim: got %v, want a timeout", err)
	}
	copy(buf, "slow but alive")
	slow.Commit(len("slow but alive"))
	if got := string(recvWithin(t, c, time.Second)); got != "slow but alive" {
		t.Fatalf("got %q first", got)
	}
	if got := string(recvWithin(t, c, time.Second)); got != "after" {
		t.Fatalf("got %q second", got)
	}
	if n := counter(r, consRecovered); n != 0 {
		t.Fatalf("%d recoveries over a live producer", n)
	}
}

// Dead slots may record stale claims at the head, left by a compare-and-swap
// that failed just before their producer died. Recovery must skip the true
// claim, whichever of the stale ones is shorter or longer.
func TestRecoverAmongStaleClaims(t *testing.T) {
	for _, stale := range []uint64{16, 24, 48, 64, 200} {
		r := multiRing(t, 1024)
		live, c := pairMulti(t, r)
		owner, err := r.NewProducer(ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := owner.TryReserve(32); err != nil { // a 48-byte claim
			t.Fatal(err)
		}
		head := owner.claimPos
		loser, err := r.NewProducer(ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		atomic.StoreUint64(r.u64(loser.slotOff+slotClaimPos), head)
		atomic.StoreUint64(r.u64(loser.slotOff+slotClaimLen), stale)
		die(loser)
		die(owner)
		for seq := range uint64(4) {
			msg := make([]byte, 8+seq*8)
			fill(msg, seq)
			if err := live.TrySend(msg); err != nil {
				t.Fatal(err)
			}
		}
		for seq := range uint64(4) {
			check(t, recvWithin(t, c, 5*time.Second), seq, int(8+seq*8))
		}
		if n := counter(r, consRecovered); n != 1 {
			t.Fatalf("stale length %d: %d recoveries, want 1", stale, n)
		}
	}
}

func TestDeadProducerEndsStream(t *testing.T) {
	for _, multi := range []bool{false, true} {
		r := heapRing(t, Config{Capacity: 1024, MultiProducer: multi, Slots: 4})
		c, err := r.NewConsumer(ConsumerOptions{EOF: true, Liveness: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.NewProducer(ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.TrySend([]byte("last words"))
		p.TryReserve(10) // dies with a claim in flight
		die(p)
		if got := string(recvWithin(t, c, time.Second)); got != "last words" {
			t.Fatalf("multi %v: got %q", multi, got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Recv(ctx, nil)
		cancel()
		if !errors.Is(err, io.EOF) {
			t.Fatalf("multi %v: after the only producer died: got %v, want io.EOF", multi, err)
		}
		if n := counter(r, consReaped); n != 1 {
			t.Fatalf("multi %v: %d slots reaped, want 1", multi, n)
		}
		c.Close()
	}
}

// A single producer that died between committing a record and publishing
// the tail is replaced by one that resumes after the record.
func TestSingleProducerResumesAfterCommitted(t *testing.T) {
	r := heapRing(t, Config{Capacity: 1024})
	c, err := r.NewConsumer(ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(20) { // wraps: padding on the way
		msg := make([]byte, 90)
		fill(msg, seq)
		before := atomic.LoadUint64(r.tail)
		p.TrySend(msg)
		if seq == 19 {
			atomic.StoreUint64(r.tail, before) // the tail store never happened
		}
		if seq < 15 {
			check(t, recvWithin(t, c, time.Second), seq, 90)
		}
	}
	die(p)
	q, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatalf("replacing a dead single producer: %v", err)
	}
	defer q.Close()
	msg := make([]byte, 90)
	fill(msg, 20)
	q.TrySend(msg)
	for seq := uint64(15); seq <= 20; seq++ {
		check(t, recvWithin(t, c, time.Second), seq, 90)
	}
}

// TestProducerEndWithConsumer: with EndWithConsumer, a producer waiting for
// room ends with ErrConsumerClosed when the consumer closes (woken by the
// close, not by its deadline), and a later wait ends at once; without it,
// the wait goes on, for a consumer may come back.
func TestProducerEndWithConsumer(t *testing.T) {
	for _, kind := range []Config{{Capacity: 256}, {Capacity: 256, MultiProducer: true, Slots: 2}} {
		r := heapRing(t, kind)
		c, err := r.NewConsumer(ConsumerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ending, err := r.NewProducer(ProducerOptions{EndWithConsumer: true})
		if err != nil {
			t.Fatal(err)
		}
		for ending.TrySend(make([]byte, 50)) == nil {
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		done := make(chan error, 1)
		go func() { done <- ending.Send(ctx, make([]byte, 50)) }()
		time.Sleep(20 * time.Millisecond) // the Send is waiting
		c.Close()
		if err := <-done; !errors.Is(err, ErrConsumerClosed) || ctx.Err() != nil {
			t.Fatalf("%+v: a wait for room as the consumer closed: %v (context: %v), want ErrConsumerClosed", kind, err, ctx.Err())
		}
		if err := ending.Send(ctx, make([]byte, 50)); !errors.Is(err, ErrConsumerClosed) {
			t.Fatalf("%+v: a wait for room after the consumer closed: %v, want ErrConsumerClosed", kind, err)
		}
		cancel()
		ending.Close()
		patient, err := r.NewProducer(ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
		if err := patient.Send(ctx, make([]byte, 50)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%+v: without EndWithConsumer: %v, want the wait to last until its deadline", kind, err)
		}
		cancel()
		patient.Close()
	}
}

func TestProducerSeesDeadConsumer(t *testing.T) {
	r := heapRing(t, Config{Capacity: 256, MultiProducer: true, Slots: 2})
	c, err := r.NewConsumer(ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.NewProducer(ProducerOptions{Liveness: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	patient, err := r.NewProducer(ProducerOptions{Liveness: 5 * time.Millisecond, WaitForConsumer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer patient.Close()
	for p.TrySend(make([]byte, 50)) == nil {
	}
	// Alive: the producer waits for room until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err = p.Send(ctx, make([]byte, 50))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("full ring, live consumer: got %v, want a timeout", err)
	}
	if err := p.TrySend(make([]byte, 50)); !errors.Is(err, ErrFull) {
		t.Fatalf("TrySend, full ring, live consumer: got %v, want ErrFull", err)
	}
	c.closed = true
	r.locker.Unlock(offConsumer)     // the consumer dies
	time.Sleep(5 * time.Millisecond) // the liveness interval: TrySend looks again
	if err := p.TrySend(make([]byte, 50)); !errors.Is(err, ErrConsumerDead) {
		t.Fatalf("TrySend, full ring, dead consumer: got %v, want ErrConsumerDead", err)
	}
	if _, err := p.TrySendBatch([][]byte{make([]byte, 8), make([]byte, 8)}); !errors.Is(err, ErrConsumerDead) && !errors.Is(err, ErrFull) {
		t.Fatalf("TrySendBatch, full ring, dead consumer: got %v", err)
	}
	if err := patient.TrySend(make([]byte, 50)); !errors.Is(err, ErrFull) {
		t.Fatalf("TrySend, full ring, dead consumer, WaitForConsumer: got %v, want ErrFull", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	err = p.Send(ctx, make([]byte, 50))
	cancel()
	if !errors.Is(err, ErrConsumerDead) {
		t.Fatalf("full ring, dead consumer: got %v, want ErrConsumerDead", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	err = patient.Send(ctx, make([]byte, 50))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("full ring, dead consumer, WaitForConsumer: got %v, want a timeout", err)
	}
	// A new consumer takes over and gets everything committed.
	c2, err := r.NewConsumer(ConsumerOptions{})
	if err != nil {
		t.Fatalf("replacing a dead consumer: %v", err)
	}
	defer c2.Close()
	if _, err := c2.TryPeek(); err != nil {
		t.Fatal(err)
	}
	c2.Release()
	if err := p.Send(context.Background(), make([]byte, 50)); err != nil {
		t.Fatalf("after the new consumer made room: %v", err)
	}
}

func TestStats(t *testing.T) {
	r := multiRing(t, 1024)
	p, c := pairMulti(t, r)
	for range 3 {
		p.TrySend([]byte("hello"))
	}
	recvWithin(t, c, time.Second)
	q, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	die(q)
	s := r.Stats()
	if s.Attaches != 2 || s.Attached != 2 || len(s.Slots) != 2 {
		t.Fatalf("attaches %d, attached %d, %d slots listed; want 2, 2, 2", s.Attaches, s.Attached, len(s.Slots))
	}
	if sl := s.Slots[0]; !sl.Attached || !sl.Alive || sl.Messages != 3 || sl.Bytes != 15 || sl.ClaimLen != 24 {
		t.Fatalf("live slot: %+v", sl)
	}
	if sl := s.Slots[1]; !sl.Attached || sl.Alive {
		t.Fatalf("dead slot: %+v", sl)
	}
	if !s.Consumer.Attached || !s.Consumer.Alive || s.Consumer.Attaches != 1 || s.Tail != 72 {
		t.Fatalf("consumer %+v, tail %d", s.Consumer, s.Tail)
	}
}

// A producer that dies between committing a record placed after padding and
// committing that padding has committed its message: it is delivered, and
// only the padding is skipped.
func TestRecoverMissingPaddingOnly(t *testing.T) {
	r := multiRing(t, 1024)
	live, c := pairMulti(t, r)
	nearTheEnd(t, live, c)
	dead, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	buf, err := dead.TryReserve(100)
	if err != nil || dead.claimPos == dead.resvPos {
		t.Fatalf("reserve across the end: %v", err)
	}
	fill(buf, 7)
	r.writeHeader(dead.resvPos, 100, dead.kind) // the record, not the padding
	die(dead)
	check(t, recvWithin(t, c, 5*time.Second), 7, 100)
	if n := counter(r, consRecovered); n != 1 {
		t.Fatalf("%d recoveries counted, want 1", n)
	}
}

// A record whose header was overwritten after it was committed would hold
// the consumer up forever; the consumer reports it instead, on both kinds
// of ring, and a merely empty ring or a live claim is not reported.
func TestOverwrittenHeaderReported(t *testing.T) {
	for _, multi := range []bool{false, true} {
		r := heapRing(t, Config{Capacity: 1024, MultiProducer: multi, Slots: 2})
		c, err := r.NewConsumer(ConsumerOptions{Liveness: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.NewProducer(ProducerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if _, err := c.Recv(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("multi %v: empty ring: got %v, want a timeout", multi, err)
		}
		cancel()
		if multi {
			p.TryReserve(8) // a live claim at head: waited for, not reported
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			if _, err := c.Recv(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("live claim: got %v, want a timeout", err)
			}
			cancel()
			p.Commit(8)
			recvWithin(t, c, time.Second)
		}
		for range 3 {
			p.TrySend(make([]byte, 40))
		}
		*r.u64(c.head&r.mask + recStamp + r.dataOffset) ^= 0xdead // the next header, scribbled
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Recv(ctx, make([]byte, 64))
		cancel()
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("multi %v: overwritten header: got %v, want ErrCorrupt", multi, err)
		}
		if n := counter(r, consCorrupt); n != 1 {
			t.Fatalf("multi %v: %d corruptions counted, want 1", multi, n)
		}
		p.Close()
		c.Close()
	}
}

// A scribbled attach count must not end the stream while a producer lives,
// nor the count and the producer's slot state together (TestScribbler's
// consumer once ended so, cleanly, with its producer running).
func TestLyingAttachedCount(t *testing.T) {
	for _, state := range []bool{false, true} {
		r := heapRing(t, Config{Capacity: 1024})
		p, c := pair(t, r, ConsumerOptions{EOF: true})
		p.TrySend([]byte("x"))
		recvWithin(t, c, time.Second)
		*r.u32(offProducers + prodsAttached) = 0 // says: nobody
		if state {
			*r.u32(r.slot(0) + slotState) = 0 // says: a free slot
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if _, err := c.Recv(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("state scribbled %v, with a live producer: got %v, want a timeout", state, err)
		}
		cancel()
		die(p) // now it is true
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := c.Recv(ctx, nil); !errors.Is(err, io.EOF) {
			t.Fatalf("state scribbled %v, after the producer died: got %v, want io.EOF", state, err)
		}
		cancel()
	}
}

// A scribbled, misaligned tail is refused, not used: the stamp of a record
// there would be a misaligned atomic store.
func TestMisalignedTailRefused(t *testing.T) {
	r := multiRing(t, 1024)
	p, _ := pairMulti(t, r)
	p.TrySend([]byte("ok"))
	*r.tail += 3
	if err := p.TrySend([]byte("x")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("misaligned tail: got %v, want ErrCorrupt", err)
	}
}

// A consumer that dies between its compare-and-swap of the space doorbell
// and its wake call leaves the word past the armed value, and a producer
// asleep on it never woken. A producer that waits for a new consumer
// (WaitForConsumer) watches nobody; the new consumer's attach must wake it
// all the same, or it sleeps for ever while the new consumer drains the
// ring (seen under Wine, where the wake call is slow enough to die in).
func TestWakerDiedMidWake(t *testing.T) {
	r := heapRing(t, Config{Capacity: 256})
	p, err := r.NewProducer(ProducerOptions{Wait: WaitPolicy{}, WaitForConsumer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c1, err := r.NewConsumer(ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 40)
	for p.TrySend(msg) == nil {
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sent := make(chan error, 1)
	go func() { sent <- p.Send(ctx, msg) }()
	// Wait until the producer sleeps on the space doorbell.
	d := r.spaceDoor
	for atomic.LoadUint32(d.waiters) == 0 || atomic.LoadUint32(d.armed) != atomic.LoadUint32(d.word) {
		time.Sleep(100 * time.Microsecond)
	}
	time.Sleep(10 * time.Millisecond)
	// The consumer's wake, cut short: the word moves, no wake call.
	b := atomic.LoadUint32(d.word)
	if !atomic.CompareAndSwapUint32(d.word, b, b+1) {
		t.Fatal("the doorbell moved")
	}
	c1.closed = true
	r.locker.Unlock(offConsumer) // and the consumer dies
	c2, err := r.NewConsumer(ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	buf := make([]byte, 256)
	for {
		if _, err := c2.TryRecv(buf); err != nil {
			break
		}
	}
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the producer still sleeps 5 s after a new consumer drained the ring")
	}
}

// TestScribbledSlotStateEndsWait: a producer slot whose state word holds a
// value no producer writes (the slot table was written over) ends a waiting
// consumer's wait with ErrCorrupt at its next look at the peers, rather
// than leaving it asleep: a producer such a slot hides could die unseen.
func TestScribbledSlotStateEndsWait(t *testing.T) {
	for _, multi := range []bool{false, true} {
		c := Config{Capacity: 4096}
		if multi {
			c.MultiProducer, c.Slots = true, 2
		}
		r := heapRing(t, c)
		_, cons := pair(t, r, ConsumerOptions{Wait: DefaultWaitPolicy, Liveness: 20 * time.Millisecond})
		atomic.StoreUint32(r.u32(r.slot(0)+slotState), 0x89ab_cdef)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := cons.Peek(ctx)
		cancel()
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("multi %v: Peek over a scribbled slot state: %v, want ErrCorrupt", multi, err)
		}
	}
}

// TestScribbledLinesNameNoPeer: a line whose state no peer writes, or whose
// PID no process has, lists -1 among the peers to watch (a line attached
// with no PID, which a detaching peer leaves for a moment, lists nothing),
// and a waiter given -1 watches nothing for it and looks on the timer
// instead.
func TestScribbledLinesNameNoPeer(t *testing.T) {
	r := heapRing(t, Config{Capacity: 4096, MultiProducer: true, Slots: 4})
	state := func(i uint32) *uint32 { return r.u32(r.slot(i) + slotState) }
	pid := func(i uint32) *uint32 { return r.u32(r.slot(i) + slotPID) }
	atomic.StoreUint32(state(0), slotAttached)
	atomic.StoreUint32(pid(0), 4242)
	atomic.StoreUint32(state(1), slotAttached) // and no PID: detaching
	atomic.StoreUint32(state(2), 7)
	atomic.StoreUint32(state(3), slotAttached)
	atomic.StoreUint32(pid(3), 0x8000_0001)
	if got := r.producerPIDs(nil); len(got) != 3 || got[0] != 4242 || got[1] != -1 || got[2] != -1 {
		t.Fatalf("producerPIDs: %v, want [4242 -1 -1]", got)
	}
	atomic.StoreUint32(r.u32(offConsumer+consState), 5)
	if got := r.consumerPIDs(nil); len(got) != 1 || got[0] != -1 {
		t.Fatalf("consumerPIDs with a scribbled state: %v, want [-1]", got)
	}
	looks := 0
	w := waiter{
		peers: func(dst []int) []int { return append(dst, -1) },
		check: func() error { looks++; return nil },
		alarm: futex.NewAlarm(),
	}
	defer w.stopWatching()
	unwatched, err := w.watchPeers(false)
	if err != nil || !unwatched || len(w.watched) != 0 {
		t.Fatalf("watchPeers over a line that names no peer: unwatched %v, %d watched, %v; want the timer, nothing watched", unwatched, len(w.watched), err)
	}
}
