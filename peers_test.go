package shmring_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/stream"
)

// consumerChild is the consumer process of TestConsumerKilled: it prints
// "producer seq" for each message it has read, before releasing it, until
// io.EOF.
func consumerChild() int {
	c, done := childConsumer(shmring.Open(os.Getenv("SHMRING_TEST_NAME"), shmring.WithEOFAfter(2)))
	if c == nil {
		return 2
	}
	defer done()
	line := make([]byte, 0, 64)
	for {
		msg, err := c.Peek(context.Background())
		if errors.Is(err, io.EOF) {
			return 0
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		h, err := stream.Decode(msg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if h.Flags&stream.FlagFinal == 0 {
			line = strconv.AppendUint(append(strconv.AppendUint(line[:0], uint64(h.Producer), 10), ' '), h.Seq, 10)
			os.Stdout.Write(append(line, '\n'))
		}
		c.Release()
	}
}

type delivery struct {
	producer, seq uint64
}

// readDeliveries collects the lines a consumerChild prints.
func readDeliveries(r io.Reader, into *[]delivery, mu *sync.Mutex) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var d delivery
		if _, err := fmt.Sscan(sc.Text(), &d.producer, &d.seq); err == nil {
			mu.Lock()
			*into = append(*into, d)
			mu.Unlock()
		}
	}
}

// TestConsumerKilled kills the consumer in mid-stream and starts another.
// Every committed message must be delivered at least once, and the only
// duplicates allowed are the documented ones: the last messages the dead
// consumer read after it last published its head, at most capacity/8 bytes
// of records.
func TestConsumerKilled(t *testing.T) {
	producer, _ := buildCommands(t)
	const capacity, count = 64 << 10, 100_000
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithCapacity(capacity), shmring.WithMultiProducer())
	skipUnsupported(t, err)
	defer r.Close()

	var mu sync.Mutex
	var first, second []delivery
	startConsumer := func(into *[]delivery) (*run, chan struct{}) {
		c := &run{}
		exe, _ := os.Executable()
		c.cmd = execChild(exe, "consumer", "SHMRING_TEST_NAME="+name)
		out, err := c.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.cmd.Stderr = &c.stderr
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.cmd.Process.Kill() })
		done := make(chan struct{})
		go func() { readDeliveries(out, into, &mu); close(done) }()
		return c, done
	}
	a, aDone := startConsumer(&first)
	var ps []*run
	for id := 1; id <= 2; id++ {
		ps = append(ps, start(t, producer, "-name", name, "-id", fmt.Sprint(id), "-count", fmt.Sprint(count),
			"-size", "32", "-max-size", "512", "-wait-consumer"))
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(first)
		mu.Unlock()
		if n >= count/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first consumer received %d messages in 10 s\n%s\n%s\n%s", n, &a.stderr, ps[0], ps[1])
		}
	}
	a.cmd.Process.Kill() // SIGKILL
	<-aDone              // all it printed (Wait would close the pipe)
	a.cmd.Wait()
	b, bDone := startConsumer(&second)
	for _, p := range ps {
		if code := p.wait(t, 5*time.Minute); code != 0 {
			b.cmd.Process.Kill()
			<-bDone
			b.cmd.Wait()
			t.Fatalf("producer exited %d\n%s\nthe second consumer's stderr:\n%s", code, p, &b.stderr)
		}
	}
	<-bDone
	if code := b.wait(t, time.Minute); code != 0 {
		t.Fatalf("second consumer exited %d\n%s", code, &b.stderr)
	}

	inSecond := make(map[delivery]bool)
	for _, d := range second {
		if inSecond[d] {
			t.Fatalf("the second consumer got %v twice", d)
		}
		inSecond[d] = true
	}
	dup := -1 // index in first of the first message delivered again
	for i, d := range first {
		if inSecond[d] && dup < 0 {
			dup = i
		}
		if dup >= 0 && !inSecond[d] {
			t.Fatalf("message %v was delivered again, but %v, read after it, was not", first[dup], d)
		}
	}
	duplicates := 0
	if dup >= 0 {
		duplicates = len(first) - dup
	}
	// Records are at least 48 bytes (a 32-byte message and its header).
	if limit := capacity/8/48 + 1; duplicates > limit {
		t.Fatalf("%d messages delivered twice, more than the %d a capacity/8 batch holds", duplicates, limit)
	}
	all := make(map[delivery]bool)
	for _, d := range append(first, second...) {
		all[d] = true
	}
	for id := uint64(1); id <= 2; id++ {
		for seq := range uint64(count) {
			if !all[delivery{id, seq}] {
				t.Fatalf("producer %d message %d was never delivered (first consumer got %d, second %d)", id, seq, len(first), len(second))
			}
		}
	}
	t.Logf("first consumer read %d messages before kill -9, the second %d; %d delivered twice", len(first), len(second), duplicates)
}

// churnChild attaches a producer SHMRING_TEST_ROUNDS times, each time
// opening the ring, sending SHMRING_TEST_COUNT messages, and closing it all;
// then it sends the final message.
func churnChild() int {
	name := os.Getenv("SHMRING_TEST_NAME")
	id, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_ID"))
	rounds, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_ROUNDS"))
	per, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_COUNT"))
	enc := stream.NewEncoder(uint32(id), 256)
	seq := uint64(0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for round := 0; round <= rounds; round++ {
		p, done := childProducer(shmring.Open(name))
		if p == nil {
			return 2
		}
		n, flags := per, uint32(0)
		if round == rounds {
			n, flags = 1, stream.FlagFinal
		}
		for range n {
			size := stream.MinSize + int(seq%200)
			buf, err := p.Reserve(ctx, size)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			enc.Encode(buf, seq, 0, flags)
			p.Commit(size)
			if flags == 0 {
				seq++
			}
		}
		done()
	}
	return 0
}

// TestAttachChurn has producer processes attach and detach over and over
// while this process attaches and detaches the consumer: no message is lost
// or reordered, and no slot leaks.
func TestAttachChurn(t *testing.T) {
	const children, rounds, per = 4, 50, 200
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithCapacity(16<<10), shmring.WithMultiProducer(), shmring.WithSlots(8),
		shmring.WithEOFAfter(children*(rounds+1)))
	skipUnsupported(t, err)
	defer r.Close()
	var outs []func() string
	var cmds []*run
	for id := 1; id <= children; id++ {
		cmd, out := startChild(t, "churn", "SHMRING_TEST_NAME="+name, fmt.Sprint("SHMRING_TEST_ID=", id),
			fmt.Sprint("SHMRING_TEST_ROUNDS=", rounds), fmt.Sprint("SHMRING_TEST_COUNT=", per))
		cmds = append(cmds, &run{cmd: cmd})
		outs = append(outs, out.String)
	}
	checker := stream.NewChecker()
	buf := make([]byte, 256)
	consumers := 0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for done := false; !done; {
		c, err := r.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		consumers++
		for range 300 {
			n, err := c.Recv(ctx, buf)
			if errors.Is(err, io.EOF) {
				done = true
				break
			}
			if err != nil {
				t.Fatalf("after %d consumers: %v", consumers, err)
			}
			checker.Add(buf[:n])
		}
		c.Close()
	}
	for i, cmd := range cmds {
		if err := cmd.cmd.Wait(); err != nil {
			t.Fatalf("producer %d: %v\n%s", i+1, err, outs[i]())
		}
	}
	res := checker.Result(0)
	if !res.OK() || res.Messages != children*rounds*per || checker.Finished() != children {
		t.Fatalf("summary %+v, %d finished", res, checker.Finished())
	}
	st, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	gens := uint64(0)
	for _, s := range st.Slots {
		if s.Attached {
			t.Fatalf("slot %d still attached: %+v", s.Slot, s)
		}
		gens += s.Generation
	}
	if st.Attached != 0 || st.Attaches != children*(rounds+1) || gens != st.Attaches || len(st.Slots) > 8 {
		t.Fatalf("attached %d, attaches %d, slot generations sum to %d over %d slots", st.Attached, st.Attaches, gens, len(st.Slots))
	}
	if st.Consumer.Attached || st.Consumer.Attaches != uint64(consumers) {
		t.Fatalf("consumer %+v after %d attaches", st.Consumer, consumers)
	}
	t.Logf("%d producer attaches over %d slots, %d consumer attaches", st.Attaches, len(st.Slots), consumers)
}

// tinyMessage is message seq of producer id in TestMultiProducerTinyToLarge:
// 1 to 4096 bytes, the first byte the producer's id, the rest derived from
// (id, seq). Too small to carry a sequence number, its size and bytes still
// tell the consumer whether it is the one it expects next from that producer.
func tinyMessage(buf []byte, id byte, seq uint64) []byte {
	h := (seq + 1) * 0x9e3779b97f4a7c15 * uint64(id+1)
	size := 1 + int(h>>52)%4096
	if seq%3 == 0 {
		size = 1 + int(h>>60) // one in three is 1 to 16 bytes
	}
	m := buf[:size]
	m[0] = id
	for i := 1; i < size; i++ {
		m[i] = byte(h >> (i % 8 * 8))
	}
	return m
}

// tinyChild sends SHMRING_TEST_COUNT tinyMessages as producer SHMRING_TEST_ID.
func tinyChild() int {
	id, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_ID"))
	count, _ := strconv.ParseUint(os.Getenv("SHMRING_TEST_COUNT"), 10, 64)
	p, done := childProducer(shmring.Open(os.Getenv("SHMRING_TEST_NAME")))
	if p == nil {
		return 2
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	buf := make([]byte, 4096)
	for seq := range count {
		if err := p.Send(ctx, tinyMessage(buf, byte(id), seq)); err != nil {
			fmt.Fprintf(os.Stderr, "message %d: %v\n", seq, err)
			return 1
		}
	}
	return 0
}

// TestMultiProducerTinyToLarge: 4 producer processes x 300k messages of 1 B
// to 4 KiB into a 64 KiB multi-producer ring, which wraps and fills all the
// time. Each producer's messages must arrive complete, intact and in order.
func TestMultiProducerTinyToLarge(t *testing.T) {
	const producers = 4
	count := uint64(300_000)
	if testing.Short() {
		count = 30_000
	}
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithCapacity(64<<10), shmring.WithMultiProducer(), shmring.WithEOFAfter(producers))
	skipUnsupported(t, err)
	defer r.Close()
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for id := range producers {
		cmd, out := startChild(t, "tiny", "SHMRING_TEST_NAME="+name, fmt.Sprint("SHMRING_TEST_ID=", id), fmt.Sprint("SHMRING_TEST_COUNT=", count))
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var next [producers]uint64
	want := make([]byte, 4096)
	sizes := map[bool]int{} // messages under and over 16 bytes
	for {
		msg, err := c.Peek(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%v after %v", err, next)
		}
		if len(msg) == 0 || int(msg[0]) >= producers {
			t.Fatalf("a message of %d bytes from no producer", len(msg))
		}
		id := msg[0]
		if w := tinyMessage(want, id, next[id]); !bytes.Equal(msg, w) {
			t.Fatalf("producer %d message %d: got %d bytes, want %d bytes, or bytes differ", id, next[id], len(msg), len(w))
		}
		sizes[len(msg) > 16]++
		next[id]++
		c.Release()
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("producer %d: %v\n%s", i, err, outs[i])
		}
	}
	for id, n := range next {
		if n != count {
			t.Fatalf("producer %d: %d messages, want %d", id, n, count)
		}
	}
	t.Logf("%d messages of 1-16 bytes, %d larger", sizes[false], sizes[true])
}

// holdChild opens the ring SHMRING_TEST_NAME, says so, and keeps it open.
func holdChild() int {
	r, err := shmring.Open(os.Getenv("SHMRING_TEST_NAME"))
	if err != nil {
		os.Stdout.WriteString(err.Error() + "\n")
		return 2
	}
	defer r.Close()
	os.Stdout.WriteString("open\n")
	time.Sleep(time.Minute)
	return 0
}
