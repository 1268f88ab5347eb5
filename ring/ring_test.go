package ring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/shmring/shmring/internal/futex"
)

func TestRoundTripSizes(t *testing.T) {
	r := heapRing(t, Config{Capacity: 4096})
	p, c := pair(t, r, ConsumerOptions{Wait: DefaultWaitPolicy})
	ctx := context.Background()
	buf := make([]byte, r.MaxMessage())
	for seq, size := range []int{0, 1, 7, 8, 9, 15, 16, 17, 100, r.MaxMessage()} {
		msg := make([]byte, size)
		fill(msg, uint64(seq))
		if err := p.Send(ctx, msg); err != nil {
			t.Fatalf("Send %d bytes: %v", size, err)
		}
		n, err := c.Recv(ctx, buf)
		if err != nil {
			t.Fatalf("Recv %d bytes: %v", size, err)
		}
		check(t, buf[:n], uint64(seq), size)
	}
}

// TestWrapEveryResidue sends messages of every size from 0 to 64 bytes,
// starting at every 8-byte offset of the smallest data area, so that records
// meet the end of the area with every possible number of bytes left: 0, 8
// (the header-less gap), 16 and more (padding records).
func TestWrapEveryResidue(t *testing.T) {
	for start := uint64(0); start < MinCapacity; start += RecordAlign {
		r := heapRing(t, Config{Capacity: MinCapacity})
		p, c := pair(t, r, ConsumerOptions{Wait: DefaultWaitPolicy})
		// Move both positions to start without a record: a fresh ring
		// whose producer and consumer agree on the head and tail.
		p.tail, p.head, c.head, c.published = start, start, start, start
		*r.tail, *r.head = start, start
		buf := make([]byte, r.MaxMessage())
		seq := uint64(0)
		for size := 0; size <= 64; size++ {
			for range 3 {
				msg := make([]byte, size)
				fill(msg, seq)
				if err := p.TrySend(msg); err != nil {
					t.Fatalf("start %d: TrySend %d bytes: %v", start, size, err)
				}
				n, err := c.TryRecv(buf)
				if err != nil {
					t.Fatalf("start %d: TryRecv of %d bytes: %v", start, size, err)
				}
				check(t, buf[:n], seq, size)
				seq++
			}
		}
		if _, err := c.TryRecv(buf); !errors.Is(err, ErrEmpty) {
			t.Fatalf("start %d: drained ring: got %v, want ErrEmpty", start, err)
		}
		p.Close()
		c.Close()
	}
}

func TestCapacityBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
		ok   bool
	}{
		{"smallest", Config{Capacity: MinCapacity, Key: 1}, true},
		{"below smallest", Config{Capacity: MinCapacity / 2, Key: 1}, false},
		{"not a power of two", Config{Capacity: 3000, Key: 1}, false},
		{"max message at limit", Config{Capacity: 4096, MaxMessage: MaxMessageFor(4096), Key: 1}, true},
		{"max message over limit", Config{Capacity: 4096, MaxMessage: MaxMessageFor(4096) + 1, Key: 1}, false},
		{"zero key", Config{Capacity: 4096}, false},
		{"too many slots", Config{Capacity: 4096, Slots: MaxSlots + 1, Key: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Size(tc.c)
			if tc.ok && err != nil {
				t.Fatalf("Size: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Size: got %v, want ErrBadConfig", err)
			}
		})
	}
	// The smallest ring carries its largest message, back to back.
	r := heapRing(t, Config{Capacity: MinCapacity})
	p, c := pair(t, r, ConsumerOptions{})
	buf := make([]byte, r.MaxMessage())
	for seq := range uint64(20) {
		msg := make([]byte, r.MaxMessage())
		fill(msg, seq)
		if err := p.TrySend(msg); err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		n, err := c.TryRecv(buf)
		if err != nil {
			t.Fatal(err)
		}
		check(t, buf[:n], seq, len(msg))
	}
}

func TestTooLargeWritesNothing(t *testing.T) {
	r := heapRing(t, Config{Capacity: 4096, MaxMessage: 100})
	p, c := pair(t, r, ConsumerOptions{})
	if err := p.TrySend(make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("TrySend 101 bytes, max 100: got %v, want ErrTooLarge", err)
	}
	if err := p.Send(context.Background(), make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Send 101 bytes, max 100: got %v, want ErrTooLarge", err)
	}
	if _, err := p.TryReserve(-1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("TryReserve(-1): got %v, want ErrTooLarge", err)
	}
	if _, err := c.TryRecv(make([]byte, 200)); !errors.Is(err, ErrEmpty) {
		t.Fatalf("after refused sends: got %v, want ErrEmpty", err)
	}
	if *r.tail != 0 {
		t.Fatalf("tail moved to %d", *r.tail)
	}
}

func TestShortBufferKeepsMessage(t *testing.T) {
	r := heapRing(t, Config{Capacity: 4096})
	p, c := pair(t, r, ConsumerOptions{})
	msg := make([]byte, 50)
	fill(msg, 9)
	if err := p.TrySend(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TryRecv(make([]byte, 49)); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("TryRecv into 49 bytes: got %v, want ErrShortBuffer", err)
	}
	buf := make([]byte, 50)
	n, err := c.TryRecv(buf)
	if err != nil {
		t.Fatal(err)
	}
	check(t, buf[:n], 9, 50)
}

func TestZeroCopy(t *testing.T) {
	r := heapRing(t, Config{Capacity: 1024})
	p, c := pair(t, r, ConsumerOptions{})
	ctx := context.Background()
	for seq := range uint64(100) {
		buf, err := p.Reserve(ctx, 40)
		if err != nil {
			t.Fatal(err)
		}
		fill(buf[:30], seq)
		if _, err := p.TryReserve(1); !errors.Is(err, ErrReservation) {
			t.Fatalf("second reservation: got %v, want ErrReservation", err)
		}
		for _, n := range []int{41, -1} {
			err := p.Commit(n)
			if !errors.Is(err, ErrCommitSize) || !strings.Contains(err.Error(), fmt.Sprintf("commit of %d bytes, 40 reserved", n)) {
				t.Fatalf("Commit(%d) of a 40-byte reservation: got %v, want ErrCommitSize saying both lengths", n, err)
			}
		}
		if err := p.Commit(30); err != nil { // commit less than reserved
			t.Fatal(err)
		}
		if seq%3 == 0 {
			if _, err := p.Reserve(ctx, 10); err != nil {
				t.Fatal(err)
			}
			if err := p.Abort(); err != nil {
				t.Fatal(err)
			}
		}
		view, err := c.Peek(ctx)
		if err != nil {
			t.Fatal(err)
		}
		check(t, view, seq, 30)
		// Peeking again without Release returns the next message, so the
		// view above was released implicitly; here Release is explicit.
		c.Release()
	}
	if err := p.Commit(0); !errors.Is(err, ErrNoReservation) {
		t.Fatalf("Commit without Reserve: got %v, want ErrNoReservation", err)
	}
	if err := p.Abort(); !errors.Is(err, ErrNoReservation) {
		t.Fatalf("Abort without Reserve: got %v, want ErrNoReservation", err)
	}
	if _, err := c.TryPeek(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("drained: got %v, want ErrEmpty", err)
	}
}

func TestFullBlocksAndUnblocks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy WaitPolicy
	}{
		{"default", DefaultWaitPolicy},
		{"park at once", WaitPolicy{}},
		{"spin", WaitPolicy{Spin: time.Millisecond, NoPark: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := heapRing(t, Config{Capacity: 1024})
			p, c := pair(t, r, ConsumerOptions{Wait: tc.policy})
			msg := make([]byte, 100)
			sent := uint64(0)
			for {
				fill(msg, sent)
				err := p.TrySend(msg)
				if errors.Is(err, ErrFull) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				sent++
			}
			done := make(chan error, 1)
			go func() {
				fill(msg, sent)
				done <- p.Send(context.Background(), msg)
			}()
			select {
			case err := <-done:
				t.Fatalf("Send on a full ring returned %v before anything was consumed", err)
			case <-time.After(20 * time.Millisecond):
			}
			buf := make([]byte, 100)
			for seq := range sent + 1 {
				n, err := c.Recv(context.Background(), buf)
				if err != nil {
					t.Fatal(err)
				}
				check(t, buf[:n], seq, 100)
			}
			if err := <-done; err != nil {
				t.Fatalf("blocked Send: %v", err)
			}
		})
	}
}

func TestCancelBlocked(t *testing.T) {
	for _, policy := range []WaitPolicy{DefaultWaitPolicy, {NoPark: true}} {
		r := heapRing(t, Config{Capacity: 1024})
		p, c := pair(t, r, ConsumerOptions{Wait: policy})
		// Recv on an empty ring, cancelled.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := c.Recv(ctx, make([]byte, 100)); done <- err }()
		time.AfterFunc(10*time.Millisecond, cancel)
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Recv: got %v, want context.Canceled", err)
		}
		// Recv with a deadline.
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		if _, err := c.Recv(dctx, make([]byte, 100)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Recv past its deadline: got %v, want context.DeadlineExceeded", err)
		}
		dcancel()
		// Send on a full ring, cancelled.
		for p.TrySend(make([]byte, 100)) == nil {
		}
		ctx, cancel = context.WithCancel(context.Background())
		go func() { done <- p.Send(ctx, make([]byte, 100)) }()
		time.AfterFunc(10*time.Millisecond, cancel)
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Send: got %v, want context.Canceled", err)
		}
		// Nothing half-written: the consumer drains whole messages only.
		for {
			_, err := c.TryRecv(make([]byte, 100))
			if errors.Is(err, ErrEmpty) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestEOF(t *testing.T) {
	r := heapRing(t, Config{Capacity: 1024})
	c, err := r.NewConsumer(ConsumerOptions{EOF: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// No producer has come yet: that is not the end of the stream.
	if _, err := c.TryRecv(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("before any producer: got %v, want ErrEmpty", err)
	}
	p, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(5) {
		msg := make([]byte, 10)
		fill(msg, i)
		if err := p.TrySend(msg); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 10)
		for seq := uint64(0); ; seq++ {
			n, err := c.Recv(context.Background(), buf)
			if err != nil {
				if seq != 5 {
					t.Errorf("stream ended after %d messages, want 5", seq)
				}
				done <- err
				return
			}
			check(t, buf[:n], seq, 10)
		}
	}()
	// Close must wake a consumer asleep in the kernel: wait until it is.
	for deadline := time.Now().Add(10 * time.Second); atomic.LoadUint32(r.dataDoor.waiters) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the consumer never parked")
		}
		runtime.Gosched()
	}
	p.Close()
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("after the producer closed: got %v, want io.EOF", err)
	}
}

func TestOneAtATime(t *testing.T) {
	r := heapRing(t, Config{Capacity: 1024})
	p, c := pair(t, r, ConsumerOptions{})
	if _, err := r.NewConsumer(ConsumerOptions{}); !errors.Is(err, ErrConsumerBusy) {
		t.Fatalf("second consumer: got %v, want ErrConsumerBusy", err)
	}
	if _, err := r.NewProducer(ProducerOptions{}); !errors.Is(err, ErrProducerBusy) {
		t.Fatalf("second producer on a single-producer ring: got %v, want ErrProducerBusy", err)
	}
	if err := p.TrySend([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.TrySend([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("TrySend after Close: got %v, want ErrClosed", err)
	}
	c.Close()
	if _, err := c.TryRecv(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryRecv after Close: got %v, want ErrClosed", err)
	}
	// Replacements resume where their predecessors stopped.
	p2, c2 := pair(t, r, ConsumerOptions{})
	if err := p2.TrySend([]byte("defg")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	for _, want := range []string{"abc", "defg"} {
		n, err := c2.TryRecv(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("got %q, %v; want %q", buf[:n], err, want)
		}
	}
}

// TestConcurrentStream runs a producer and a consumer goroutine through a
// small ring with sizes that wrap at every offset.
func TestConcurrentStream(t *testing.T) {
	count := uint64(200_000)
	if testing.Short() {
		count = 20_000
	}
	for i, policy := range []WaitPolicy{DefaultWaitPolicy, {}, SpinWaitPolicy, {}} {
		r := heapRing(t, Config{Capacity: 4096, MaxMessage: 300})
		p, c := pair(t, r, ConsumerOptions{Wait: policy, EOF: true})
		if i == 3 {
			// As in a process where membarrier(2) is missing: full
			// fences after commits and head stores, 1 ms sleeps.
			p.wait.barrier, c.wait.barrier = false, false
		}
		go func() {
			msg := make([]byte, 300)
			for seq := range count {
				m := msg[:seq%301]
				fill(m, seq)
				if err := p.Send(context.Background(), m); err != nil {
					t.Error(err)
					break
				}
			}
			p.Close()
		}()
		buf := make([]byte, 300)
		seq := uint64(0)
		for ; ; seq++ {
			n, err := c.Recv(context.Background(), buf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			check(t, buf[:n], seq, int(seq%301))
		}
		if seq != count {
			t.Fatalf("received %d messages, want %d", seq, count)
		}
	}
}

func TestAllocs(t *testing.T) {
	r := heapRing(t, Config{Capacity: 1 << 16})
	p, c := pair(t, r, ConsumerOptions{Wait: DefaultWaitPolicy})
	ctx := context.Background()
	msg, buf := make([]byte, 64), make([]byte, 64)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Send+Recv", func() {
			if p.Send(ctx, msg) != nil {
				panic("send")
			}
			if _, err := c.Recv(ctx, buf); err != nil {
				panic(err)
			}
		}},
		{"TrySend+TryRecv", func() {
			p.TrySend(msg)
			c.TryRecv(buf)
		}},
		{"SendBatch+Recv", func() {
			if k, err := p.SendBatch(ctx, [][]byte{msg, msg}); k != 2 || err != nil {
				panic("send batch")
			}
			c.Recv(ctx, buf)
			c.Recv(ctx, buf)
		}},
		{"TrySendBatch+TryRecv", func() {
			p.TrySendBatch([][]byte{msg, msg})
			c.TryRecv(buf)
			c.TryRecv(buf)
		}},
		{"Reserve+Commit+Peek+Release", func() {
			b, _ := p.Reserve(ctx, 64)
			b[0] = 1
			p.Commit(64)
			v, _ := c.Peek(ctx)
			_ = v[0]
			c.Release()
		}},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per message, want 0", tc.name, n)
		}
	}
}

// TestWakeOnlySleepers checks the doorbell rule: no wake system call while
// the consumer is awake (spinning), and one per message when it is waiting.
func TestWakeOnlySleepers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policy   WaitPolicy
		sleeping bool
	}{
		{"spinning consumer", SpinWaitPolicy, false},
		{"sleeping consumer", WaitPolicy{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := heapRing(t, Config{Capacity: 1 << 16})
			p, c := pair(t, r, ConsumerOptions{Wait: tc.policy, EOF: true})
			count := uint64(20_000)
			if tc.sleeping {
				count = 200
			}
			go func() {
				defer p.Close()
				msg := make([]byte, 32)
				for seq := range count {
					// A sleeping consumer is made to wait for every
					// message: send only once it counts itself a waiter,
					// and give it time to pass its last look and sleep.
					if tc.sleeping {
						for deadline := time.Now().Add(10 * time.Second); atomic.LoadUint32(r.dataDoor.waiters) == 0; {
							if time.Now().After(deadline) {
								t.Error("the consumer never waited")
								return
							}
							runtime.Gosched()
						}
						time.Sleep(100 * time.Microsecond)
					}
					fill(msg, seq)
					if err := p.Send(context.Background(), msg); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			buf := make([]byte, 32)
			seq := uint64(0)
			for ; ; seq++ {
				n, err := c.Recv(context.Background(), buf)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				check(t, buf[:n], seq, 32)
			}
			if seq != count {
				t.Fatalf("received %d messages, want %d", seq, count)
			}
			wakes := atomic.LoadUint64(r.u64(r.slot(0) + slotWakes))
			parks := atomic.LoadUint64(r.u64(offConsumer + consParks))
			if !tc.sleeping && (wakes != 0 || parks != 0) {
				t.Fatalf("%d wake calls and %d sleeps with a consumer that never sleeps", wakes, parks)
			}
			// A commit that finds a waiter makes the call; the waiter
			// may still have seen the message in its last look.
			if tc.sleeping && (wakes == 0 || wakes > count || parks == 0) {
				t.Fatalf("%d wake calls and %d sleeps for %d messages to a waiting consumer", wakes, parks, count)
			}
		})
	}
}

// TestLockerRequired refuses a ring without liveness locks: it would take
// every peer in another process for dead.
func TestLockerRequired(t *testing.T) {
	c := Config{Capacity: 4096, Key: testKey}
	size, err := Size(c)
	if err != nil {
		t.Fatal(err)
	}
	words := make([]uint64, size/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), size)
	if _, err := Init(mem, c, nil); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("Init without a Locker: %v, want ErrBadConfig", err)
	}
	if _, err := Init(mem, c, LocalLocker()); err != nil {
		t.Fatal(err)
	}
	for _, attach := range []func([]byte, Locker) (*Ring, error){Attach, AttachRounded} {
		if _, err := attach(mem, nil); !errors.Is(err, ErrBadConfig) {
			t.Fatalf("attach without a Locker: %v, want ErrBadConfig", err)
		}
	}
}

// TestOneCPUParksAtOnce runs a producer and a consumer goroutine as a
// process limited to one CPU would (GOMAXPROCS 1, and the one-CPU rule on),
// where a waiter skips the spin and sleeps at once: every message must
// still arrive, in order, through a ring small enough that both sides wait
// over and over.
func TestOneCPUParksAtOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer func(f func() bool) { oneCPU = f }(oneCPU)
	oneCPU = func() bool { return true }
	r := heapRing(t, Config{Capacity: 1024})
	// An hour of spinning: a waiter that spun would hold the one P
	// until preempted, 10 ms a message, and miss the deadline.
	policy := WaitPolicy{Spin: time.Hour}
	p, c := pair(t, r, ConsumerOptions{Wait: policy})
	p.wait.policy = policy
	const count = 20000
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		msg := make([]byte, 100)
		for seq := range uint64(count) {
			fill(msg, seq)
			if err := p.Send(ctx, msg); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	buf := make([]byte, 100)
	for seq := range uint64(count) {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		check(t, buf[:n], seq, 100)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A context that ends while its side sleeps ends the sleep, also when the
// side has slept under it many times before (the registration that rings
// the alarm is made once per context and kept between sleeps), and a
// context given after it replaces the registration.
func TestCancelAfterManySleeps(t *testing.T) {
	if !futex.ManyPerThread() {
		t.Skip("no futex_waitv here: cancellation rings the doorbell instead of the alarm")
	}
	start := time.Now()
	r := heapRing(t, Config{Capacity: 1024})
	p, c := pair(t, r, ConsumerOptions{Wait: WaitPolicy{}}) // sleep at once
	buf := make([]byte, 100)
	recvLate := func(ctx context.Context) error {
		sent := make(chan error, 1)
		go func() {
			time.Sleep(2 * time.Millisecond)
			sent <- p.TrySend([]byte("late"))
		}()
		_, err := c.Recv(ctx, buf)
		if serr := <-sent; serr != nil {
			return serr
		}
		return err
	}
	// sleepUnder receives late messages under ctx until one receive
	// slept (on a busy machine the message can come first).
	sleepUnder := func(ctx context.Context) {
		t.Helper()
		for parks := c.wait.nparks; c.wait.nparks == parks; {
			if err := recvLate(ctx); err != nil {
				t.Fatal(err)
			}
			if c.wait.nparks == parks && time.Since(start) > time.Minute {
				t.Fatal("no receive slept in a minute")
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	for range 5 {
		sleepUnder(ctx)
	}
	if c.wait.ctxRegs != 1 {
		t.Fatalf("%d registrations for one context over %d sleeps, want 1", c.wait.ctxRegs, c.wait.nparks)
	}
	time.AfterFunc(10*time.Millisecond, cancel)
	if _, err := c.Recv(ctx, buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv whose context was cancelled while it slept: got %v, want context.Canceled", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	sleepUnder(ctx2)
	if c.wait.ctxRegs != 2 || c.wait.ctxDone != ctx2.Done() {
		t.Fatalf("after a second context: %d registrations, want 2, for the second", c.wait.ctxRegs)
	}
	time.AfterFunc(10*time.Millisecond, cancel2)
	if _, err := c.Recv(ctx2, buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv under the second context: got %v, want context.Canceled", err)
	}
	// Close ends the registration of a context that is still alive.
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	sleepUnder(ctx3)
	if c.wait.ctxStop == nil {
		t.Fatal("no registration for a live context after a sleep")
	}
	stop := c.wait.ctxStop
	c.Close()
	if c.wait.ctxStop != nil || stop() {
		t.Fatal("the registration outlived Close")
	}
}

// TestSendRefusals checks that Send and TrySend, whose common case takes a
// shorter path than Reserve and Commit, refuse what Reserve refuses and
// write nothing then: with a reservation held, a message over the maximum,
// a full ring, a ring marked removed; and that they pad at the end of the
// data area as Reserve does.
func TestSendRefusals(t *testing.T) {
	r := heapRing(t, Config{Capacity: 1024})
	p, c := pair(t, r, ConsumerOptions{})
	ctx := context.Background()
	msg := make([]byte, 40)

	buf, err := p.TryReserve(8)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "reserved")
	if err := p.Send(ctx, msg); !errors.Is(err, ErrReservation) {
		t.Fatalf("Send with a reservation held: got %v, want ErrReservation", err)
	}
	if err := p.TrySend(msg); !errors.Is(err, ErrReservation) {
		t.Fatalf("TrySend with a reservation held: got %v, want ErrReservation", err)
	}
	if err := p.Commit(8); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2048)
	if n, err := c.TryRecv(got); err != nil || string(got[:n]) != "reserved" {
		t.Fatalf("after refused sends: got %q, %v; want the reservation's message alone", got[:n], err)
	}
	if _, err := c.TryRecv(got); !errors.Is(err, ErrEmpty) {
		t.Fatalf("a refused send wrote a message: %v", err)
	}

	if err := p.TrySend(make([]byte, p.r.MaxMessage()+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("TrySend over the maximum: got %v, want ErrTooLarge", err)
	}

	// Across the end of the data area many times, two messages behind,
	// and 40-byte messages do not divide it: padding at each turn.
	for seq := range uint64(200) {
		fill(msg, seq)
		if err := p.Send(ctx, msg); err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		if seq < 2 {
			continue
		}
		n, err := c.TryRecv(got)
		if err != nil {
			t.Fatal(err)
		}
		check(t, got[:n], seq-2, len(msg))
	}
	// Then fill it, and overfill it.
	for p.TrySend(msg) == nil {
	}
	if err := p.TrySend(msg); !errors.Is(err, ErrFull) {
		t.Fatalf("TrySend to a full ring: got %v, want ErrFull", err)
	}
	for {
		if _, err := c.TryRecv(got); errors.Is(err, ErrEmpty) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}

	// A removed ring, where the producer's last look at the head leaves
	// room.
	r2 := heapRing(t, Config{Capacity: 1024})
	p2, _ := pair(t, r2, ConsumerOptions{})
	if err := p2.TrySend(msg); err != nil {
		t.Fatal(err)
	}
	r2.MarkRemoved()
	if err := p2.TrySend(msg); !errors.Is(err, ErrRingRemoved) {
		t.Fatalf("TrySend to a removed ring: got %v, want ErrRingRemoved", err)
	}
	if err := p2.Send(ctx, msg); !errors.Is(err, ErrRingRemoved) {
		t.Fatalf("Send to a removed ring: got %v, want ErrRingRemoved", err)
	}
}

// TestOneCallReads drives two rings through the same random mix of sends
// (single messages of every size, batches, aborted reservations) and reads
// (Recv and TryRecv into buffers too small at times, Peek and TryPeek with
// and without Release), one consumer taking the one-call path of the
// reading calls (plainNext) and one not: every call must return the same
// message or error on both, and the rings must end with the same head.
func TestOneCallReads(t *testing.T) {
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	type side struct {
		p *Producer
		c *Consumer
	}
	var sides [2]side
	for i := range sides {
		r := heapRing(t, Config{Capacity: 4096})
		p, c := pair(t, r, ConsumerOptions{})
		c.oneCall = i == 1
		sides[i] = side{p, c}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	type result struct {
		msg string
		err string
	}
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	var sent, got uint64
	for step := range 20000 {
		var res [2]result
		op := rng.IntN(10)
		size := rng.IntN(300)
		bufSize := rng.IntN(320)
		release := rng.IntN(2) == 0
		for i, s := range sides {
			msg := make([]byte, size)
			fill(msg, sent)
			switch op {
			case 0, 1, 2:
				res[i].err = errText(s.p.TrySend(msg))
			case 3:
				_, err := s.p.TrySendBatch([][]byte{msg, msg[:size/2], {}})
				res[i].err = errText(err)
			case 4:
				if _, err := s.p.TryReserve(size); err == nil {
					s.p.Abort()
				}
			case 5, 6:
				buf := make([]byte, bufSize)
				n, err := s.c.TryRecv(buf)
				res[i] = result{string(buf[:n]), errText(err)}
			case 7:
				v, err := s.c.TryPeek()
				res[i] = result{string(v), errText(err)}
				if err == nil && release {
					s.c.Release()
				}
			case 8:
				v, err := s.c.TryPeek()
				res[i] = result{string(v), errText(err)}
			case 9:
				// Ended: a blocking call that finds nothing
				// returns at once.
				buf := make([]byte, 320)
				n, err := s.c.Recv(ended, buf)
				res[i] = result{string(buf[:n]), errText(err)}
			}
		}
		if a, b := sides[0].c, sides[1].c; a.head != b.head || a.viewing != b.viewing || a.viewing && a.viewNext != b.viewNext || a.inBatch != b.inBatch {
			t.Fatalf("step %d, operation %d: the consumers differ: head %d/%d, viewing %v/%v to %d/%d, in a batch %v/%v",
				step, op, a.head, b.head, a.viewing, b.viewing, a.viewNext, b.viewNext, a.inBatch, b.inBatch)
		}
		if res[0] != res[1] {
			t.Fatalf("step %d, operation %d: the general path gave %q, %q; the one-call path %q, %q",
				step, op, res[0].msg, res[0].err, res[1].msg, res[1].err)
		}
		if op <= 3 && res[0].err == "" {
			sent++
		}
		if res[0].msg != "" {
			got++
		}
	}
	if sides[0].c.head != sides[1].c.head {
		t.Fatalf("heads %d and %d", sides[0].c.head, sides[1].c.head)
	}
	if sent < 1000 || got < 1000 {
		t.Fatalf("only %d sends and %d messages read: the mix does not exercise the paths", sent, got)
	}
}

// Before it sleeps, a waiter lets the process's other goroutines run on its
// thread until none is left waiting, also one that yields in turn after
// some work (gRPC's writer does, before it writes): with one P, a sleeper
// that yielded only once would leave it queued, and the message it is
// about to send would wait for the runtime to take the P back. Here the
// sender runs 5 µs, yields, then sends: the receiver, which sleeps at
// once, must find the message after its yields instead of sleeping for it.
func TestParkLetsYieldersRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	r := heapRing(t, Config{Capacity: 1024})
	p, c := pair(t, r, ConsumerOptions{Wait: WaitPolicy{}}) // sleep at once
	buf := make([]byte, 100)
	const rounds = 200
	parks := c.wait.nparks
	for i := range rounds {
		sent := make(chan error, 1)
		go func() {
			for start := time.Now(); time.Since(start) < 5*time.Microsecond; {
			}
			runtime.Gosched()
			sent <- p.TrySend([]byte("after a yield"))
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Recv(ctx, buf)
		cancel()
		if serr := <-sent; serr != nil {
			t.Fatal(serr)
		}
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	slept := c.wait.nparks - parks
	t.Logf("the receiver slept in %d of %d rounds", slept, rounds)
	if slept > rounds/2 {
		t.Fatalf("the receiver slept in %d of %d rounds: it went to sleep with the sender still queued behind it", slept, rounds)
	}
}
