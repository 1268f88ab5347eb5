package shmring_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/osthreads"
	"github.com/shmring/shmring/internal/peerwatch"
)

// Waiting on many rings with real processes: a consumer process serving a
// thousand rings fed at random by eight producer processes, and peers that
// die while the waiter sleeps.

// attachChild attaches to the ring SHMRING_TEST_NAME as SHMRING_TEST_SIDE
// (producer or consumer), says "attached", and idles.
func attachChild() int {
	r, err := shmring.Open(os.Getenv("SHMRING_TEST_NAME"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer r.Close()
	if os.Getenv("SHMRING_TEST_SIDE") == "consumer" {
		c, err := r.Consumer()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer c.Close()
	} else {
		p, err := r.Producer()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer p.Close()
	}
	fmt.Println("attached")
	time.Sleep(time.Minute)
	return 0
}

func needWatching(t *testing.T) {
	t.Helper()
	if !peerwatch.Supported() || !futex.ManyPerThread() {
		t.Skipf("%s cannot watch processes and interrupt a sleep (needs Linux 5.16: pidfd and futex_waitv)", runtime.GOOS)
	}
}

// feederChild opens the rings SHMRING_TEST_PREFIX0..N-1 and sends
// SHMRING_TEST_COUNT messages to rings chosen at random; each message says
// who sent it, to which ring, and its number among this sender's messages
// to that ring.
func feederChild() int {
	prefix := os.Getenv("SHMRING_TEST_PREFIX")
	n, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_RINGS"))
	count, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_COUNT"))
	id, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_ID"))
	ps := make([]*shmring.Producer, n)
	for i := range ps {
		r, err := shmring.Open(fmt.Sprint(prefix, i))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer r.Close()
		if ps[i], err = r.Producer(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer ps[i].Close()
	}
	fmt.Println("attached")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seqs := make([]uint64, n)
	rnd := rand.New(rand.NewPCG(uint64(id), 1))
	msg := make([]byte, 24)
	for range count {
		i := rnd.IntN(n)
		binary.LittleEndian.PutUint64(msg[0:], uint64(id))
		binary.LittleEndian.PutUint64(msg[8:], uint64(i))
		binary.LittleEndian.PutUint64(msg[16:], seqs[i])
		seqs[i]++
		if err := ps[i].Send(ctx, msg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if rnd.IntN(64) == 0 {
			time.Sleep(100 * time.Microsecond) // let rings go idle now and then
		}
	}
	return 0
}

// TestManyRingsManyProducers: one consumer process waits on 1000 rings
// while 8 producer processes send into them at random. Every message must
// arrive, in order per producer and ring, and the process must not run a
// thread per ring: at most GOMAXPROCS + 16 threads, whether it waits with a
// WaitSet or with a goroutine blocked in Recv per ring.
func TestManyRingsManyProducers(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 rings and 8 processes: not in -short")
	}
	const rings, feeders, count = 1000, 8, 3000
	if n := openFilesAllowed(); n < 2*rings+200 {
		t.Skipf("%d open files allowed, the test needs about %d", n, 2*rings+200)
	}
	for _, mode := range []string{"WaitSet", "goroutines"} {
		t.Run(mode, func(t *testing.T) {
			if !freshProcess(t) {
				return // it counts this process's threads
			}
			prefix := ringName(t) + "-"
			cs := make([]*shmring.Consumer, rings)
			rs := make([]*shmring.Ring, rings)
			for i := range cs {
				name := fmt.Sprint(prefix, i)
				r, err := shmring.Create(name, shmring.WithCapacity(4096), shmring.WithMultiProducer(), shmring.WithSlots(feeders), shmring.WithEOF(false))
				skipUnsupported(t, err)
				t.Cleanup(func() { r.Close(); shmring.Remove(name) })
				rs[i] = r
				if cs[i], err = r.Consumer(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cs[i].Close() })
			}
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			var cmds []*exec.Cmd
			for id := range feeders {
				cmd := execChild(exe, "feeder", "SHMRING_TEST_PREFIX="+prefix, fmt.Sprint("SHMRING_TEST_RINGS=", rings),
					fmt.Sprint("SHMRING_TEST_COUNT=", count), fmt.Sprint("SHMRING_TEST_ID=", id))
				var stderr strings.Builder
				cmd.Stderr = &stderr
				cmd = startRetrying(t, cmd)
				t.Cleanup(func() {
					cmd.Process.Kill()
					cmd.Wait()
					if s := stderr.String(); s != "" {
						t.Logf("feeder %d: %s", id, s)
					}
				})
				cmds = append(cmds, cmd)
			}
			next := make([][]uint64, feeders) // next[id][ring]
			for i := range next {
				next[i] = make([]uint64, rings)
			}
			check := func(ring int, msg []byte) error {
				id, to, seq := binary.LittleEndian.Uint64(msg), binary.LittleEndian.Uint64(msg[8:]), binary.LittleEndian.Uint64(msg[16:])
				if len(msg) != 24 || id >= feeders || to != uint64(ring) {
					return fmt.Errorf("ring %d: message %x", ring, msg)
				}
				if want := next[id][ring]; seq != want {
					return fmt.Errorf("ring %d: producer %d's message %d, want %d", ring, id, seq, want)
				}
				next[id][ring]++
				return nil
			}
			// stalled says, when the deadline passes, whether the
			// messages missing were sent and left unread (a lost wake-up)
			// or never sent (slow or stuck feeders).
			stalled := func() string {
				var b strings.Builder
				for id := range feeders {
					got := uint64(0)
					for _, n := range next[id] {
						got += n
					}
					fmt.Fprintf(&b, "\nfeeder %d: %d of its %d messages received", id, got, count)
				}
				unread := 0
				var sent, parks, wakes uint64
				for i, r := range rs {
					st, err := r.Stats()
					if err != nil {
						fmt.Fprintf(&b, "\nring %d: %v", i, err)
						continue
					}
					parks += st.Consumer.Parks
					for _, sl := range st.Slots {
						sent += sl.Messages
						wakes += sl.Wakes
					}
					if st.Head != st.Tail {
						unread++
						if unread <= 3 {
							fmt.Fprintf(&b, "\nring %d: %d bytes unread (head %d, tail %d)", i, st.Tail-st.Head, st.Head, st.Tail)
						}
					}
				}
				fmt.Fprintf(&b, "\n%d rings hold unread messages; %d messages sent; the consumers slept %d times, the feeders woke them %d times", unread, sent, parks, wakes)
				b.WriteString(goroutineSummary())
				return b.String()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			stop := threadPeak()
			total := 0
			if mode == "WaitSet" {
				total = serveWithSet(t, ctx, cs, feeders*count, check, stalled)
			} else {
				total = serveWithGoroutines(t, ctx, cs, feeders*count, check, stalled)
			}
			peak := stop()
			for i, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					t.Errorf("feeder %d: %v", i, err)
				}
			}
			if total != feeders*count {
				t.Fatalf("%d messages received, want %d", total, feeders*count)
			}
			if futex.ManyPerThread() && peak >= 0 {
				// GOMAXPROCS + 16 + busySlack on Linux, where a thread
				// waits on 127 rings. busySlack: with eight processes
				// feeding it, the server's goroutines block and wake in
				// system calls all the time, and on a loaded machine the
				// runtime takes Ps back from threads blocked in them and
				// starts new ones, which Go never ends. Peaks of 19 to 21
				// were counted in 32-bit runs of .ci/run, and up to 19 on
				// a quiet machine, the same with the code before the
				// connection changes that came with this bound. A thread
				// per ring would be 1,000. The bound for idle
				// connections, GOMAXPROCS + 16 with no slack, is
				// TestManyIdleConns's. On Windows a thread waits on 63
				// (the limit of WaitForMultipleObjects), and the death
				// of each peer process is waited for by a thread of its
				// own; and
				// under Wine a semaphore call goes through the
				// wineserver and takes tens of microseconds, long enough
				// for the runtime to hand the caller's P to a new thread:
				// 26-37 threads were seen there (16 per-group watchers,
				// 8 peer watchers), against 1000 rings.
				const busySlack = 8
				limit := runtime.GOMAXPROCS(0) + 16 + busySlack
				if runtime.GOOS == "windows" {
					limit = runtime.GOMAXPROCS(0) + 16 + (rings+futex.WordsPerThread-1)/futex.WordsPerThread + feeders
				}
				if peak > limit {
					t.Errorf("peak of %d threads waiting on %d rings, want at most %d", peak, rings, limit)
				}
			}
			t.Logf("%d messages from %d processes into %d rings; peak %d threads (GOMAXPROCS %d)", total, feeders, rings, peak, runtime.GOMAXPROCS(0))
		})
	}
}

func serveWithSet(t *testing.T, ctx context.Context, cs []*shmring.Consumer, want int, check func(int, []byte) error, stalled func() string) (total int) {
	set := shmring.NewWaitSet()
	defer set.Close()
	index := map[*shmring.Consumer]int{}
	for i, c := range cs {
		index[c] = i
		if err := set.AddConsumer(c); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	var ready []shmring.Ready
	for waits := 0; total < want; waits++ {
		var err error
		ready, err = set.Wait(ctx, ready[:0])
		if err != nil {
			t.Fatalf("Wait after %d messages of %d: %v%s", total, want, err, stalled())
		}
		for _, r := range ready {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			for {
				n, err := r.Consumer.TryRecv(buf)
				if errors.Is(err, shmring.ErrEmpty) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := check(index[r.Consumer], buf[:n]); err != nil {
					t.Fatal(err)
				}
				total++
			}
		}
	}
	return total
}

func serveWithGoroutines(t *testing.T, ctx context.Context, cs []*shmring.Consumer, want int, check func(int, []byte) error, stalled func() string) (total int) {
	type got struct {
		ring int
		msg  []byte
		err  error
	}
	ch := make(chan got, 1024)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	for i, c := range cs {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				buf := make([]byte, 64)
				n, err := c.Recv(ctx, buf)
				if ctx.Err() != nil {
					return
				}
				ch <- got{i, buf[:n], err}
				if err != nil {
					return
				}
			}
		}()
	}
	// Five seconds before the deadline, while the goroutines still wait
	// in Recv, note where they are.
	var late <-chan time.Time
	before := ""
	if dl, ok := ctx.Deadline(); ok {
		late = time.After(time.Until(dl) - 5*time.Second)
	}
	for total < want {
		select {
		case g := <-ch:
			if g.err != nil {
				// A Recv can reach the context's deadline just before
				// the context says so.
				t.Fatalf("ring %d, after %d messages of %d: %v%s\nfive seconds before:%s", g.ring, total, want, g.err, stalled(), before)
			}
			if err := check(g.ring, g.msg); err != nil {
				t.Fatal(err)
			}
			total++
		case <-late:
			before = fmt.Sprintf(" %d messages received%s", total, stalled())
		case <-ctx.Done():
			t.Fatalf("%d messages of %d after %v%s\nfive seconds before:%s", total, want, ctx.Err(), stalled(), before)
		}
	}
	cancel()
	for range cs {
		<-done
	}
	return total
}

// threadPeak counts this process's threads every 20 ms, in a goroutine of
// its own, until stop, which returns the highest count seen. Counting
// takes a snapshot of every thread of the system on Windows, which takes
// tens of milliseconds under Wine beside a busy process: done in the loop
// that receives the messages, it slowed that loop to a few dozen messages a
// second.
func threadPeak() (stop func() int) {
	done := make(chan struct{})
	res := make(chan int)
	go func() {
		peak := osthreads.Count()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				peak = max(peak, osthreads.Count())
			case <-done:
				res <- max(peak, osthreads.Count())
				return
			}
		}
	}()
	return func() int {
		close(done)
		return <-res
	}
}

// claimChild attaches a producer to the ring SHMRING_TEST_NAME, reserves
// room for a message it never commits, says "claimed", and idles.
func claimChild() int {
	r, err := shmring.Open(os.Getenv("SHMRING_TEST_NAME"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	p, err := r.Producer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := p.TryReserve(8); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("claimed")
	time.Sleep(time.Minute)
	return 0
}

// TestWaitSetPeerDeath: peers die while a WaitSet sleeps on many rings, and
// the liveness interval is an hour, so only the death event can wake it in
// time. A producer process killed holding a claim at the head of one ring
// is recovered (the message committed behind its claim is delivered); a
// consumer process killed is reported to the producer waiting for room.
func TestWaitSetPeerDeath(t *testing.T) {
	needWatching(t)
	t.Run("producer", func(t *testing.T) {
		set := shmring.NewWaitSet()
		defer set.Close()
		var names []string
		var ps []*shmring.Producer
		var cs []*shmring.Consumer
		for range 20 {
			name := ringName(t)
			r, err := shmring.Create(name, shmring.WithCapacity(4096), shmring.WithMultiProducer(), shmring.WithLiveness(time.Hour), shmring.WithEOF(false))
			skipUnsupported(t, err)
			t.Cleanup(func() { r.Close() })
			p, c := pairOf(t, r)
			set.AddConsumer(c)
			names, ps, cs = append(names, name), append(ps, p), append(cs, c)
		}
		cmd, lines, stderr := childLines(t, "claim", "SHMRING_TEST_NAME="+names[7])
		if l := nextLine(t, lines, stderr); l != "claimed" {
			t.Fatalf("child: %q", l)
		}
		if err := ps[7].TrySend([]byte("behind the dead claim")); err != nil {
			t.Fatal(err)
		}
		if ready, err := waitFor(t, set, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a live claim at the head: got %v, %v; want a timeout", ready, err)
		}
		cmd.Process.Kill()
		start := time.Now()
		ready, err := waitFor(t, set, 30*time.Second)
		if err != nil || len(ready) != 1 || ready[0].Consumer != cs[7] || ready[0].Err != nil {
			t.Fatalf("after the claimant was killed: got %v, %v; want consumer 7", ready, err)
		}
		buf := make([]byte, 64)
		n, err := cs[7].TryRecv(buf)
		if err != nil || string(buf[:n]) != "behind the dead claim" {
			t.Fatalf("TryRecv: %q, %v", buf[:n], err)
		}
		t.Logf("recovered %v after the kill", time.Since(start))
	})
	t.Run("consumer", func(t *testing.T) {
		set := shmring.NewWaitSet()
		defer set.Close()
		var target *shmring.Producer
		var cmd *exec.Cmd
		for i := range 5 {
			name := ringName(t)
			r, err := shmring.Create(name, shmring.WithCapacity(4096), shmring.WithLiveness(time.Hour))
			skipUnsupported(t, err)
			t.Cleanup(func() { r.Close() })
			p, err := r.Producer()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			if i == 2 {
				var lines <-chan string
				var stderr *strings.Builder
				cmd, lines, stderr = childLines(t, "attach", "SHMRING_TEST_NAME="+name, "SHMRING_TEST_SIDE=consumer")
				if l := nextLine(t, lines, stderr); l != "attached" {
					t.Fatalf("child: %q", l)
				}
				target = p
			} else {
				c, err := r.Consumer()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
			}
			for p.TrySend(make([]byte, 100)) == nil {
			}
			set.AddProducer(p, 100)
		}
		if ready, err := waitFor(t, set, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("full rings, live consumers: got %v, %v; want a timeout", ready, err)
		}
		cmd.Process.Kill()
		ready, err := waitFor(t, set, 30*time.Second)
		if err != nil || len(ready) != 1 || ready[0].Producer != target || !errors.Is(ready[0].Err, shmring.ErrConsumerDead) {
			t.Fatalf("after the consumer was killed: got %v, %v; want producer 2 with ErrConsumerDead", ready, err)
		}
	})
}

// goroutineSummary counts this process's goroutines by where they are (the
// functions on their stacks), most common first: what a stalled test was
// doing.
func goroutineSummary() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	counts := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		var fns []string
		lines := strings.Split(g, "\n")
		for _, l := range lines[1:] {
			if l != "" && !strings.HasPrefix(l, "\t") {
				fn, _, _ := strings.Cut(l, "(")
				fns = append(fns, fn)
			}
		}
		state := ""
		if _, rest, ok := strings.Cut(lines[0], "["); ok {
			state, _, _ = strings.Cut(rest, ",")
			state, _, _ = strings.Cut(state, "]")
		}
		counts[state+": "+strings.Join(fns, " < ")]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	var b strings.Builder
	for i, k := range keys {
		if i == 6 {
			break
		}
		fmt.Fprintf(&b, "\n%d goroutines, %s", counts[k], k)
	}
	return b.String()
}
