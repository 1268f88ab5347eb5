package shmring_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/shmring/shmring"
)

// streamChild is the producer process of the two-process benchmarks: it
// sends SHMRING_TEST_COUNT messages of SHMRING_TEST_SIZE bytes, each holding
// its sequence number in its first 8 bytes.
func streamChild() int {
	count, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_COUNT"))
	size, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_SIZE"))
	policy := shmring.DefaultWaitPolicy
	if os.Getenv("SHMRING_TEST_SPIN") != "" {
		policy = shmring.SpinWaitPolicy
	}
	p, done := childProducer(shmring.Open(os.Getenv("SHMRING_TEST_NAME"), shmring.WithOpenWait(10*time.Second), shmring.WithWaitPolicy(policy)))
	if p == nil {
		return 2
	}
	defer done()
	ctx := context.Background()
	id, _ := strconv.ParseUint(os.Getenv("SHMRING_TEST_ID"), 10, 64)
	if batch, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_BATCH")); batch > 1 {
		return streamBatches(ctx, p, count, size, batch, byte(id))
	}
	for i := range count {
		buf, err := p.Reserve(ctx, size)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fillStream(buf, uint64(i), byte(id))
		p.Commit(size)
	}
	return 0
}

// fillStream writes message seq of producer id: the sequence number in every
// 8-byte word, the producer in the last byte (for the multi-producer
// benchmark).
func fillStream(buf []byte, seq uint64, id byte) {
	for j := 0; j+8 <= len(buf); j += 8 {
		binary.LittleEndian.PutUint64(buf[j:], seq)
	}
	buf[len(buf)-1] = id
}

// streamBatches is streamChild's loop with SendBatch: count messages, batch
// at a time, each written whole as streamChild writes them.
func streamBatches(ctx context.Context, p *shmring.Producer, count, size, batch int, id byte) int {
	msgs := make([][]byte, batch)
	for j := range msgs {
		msgs[j] = make([]byte, size)
	}
	for i := 0; i < count; {
		pending := msgs[:min(batch, count-i)]
		for j, m := range pending {
			fillStream(m, uint64(i+j), id)
		}
		for len(pending) > 0 {
			k, err := p.SendBatch(ctx, pending)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			pending, i = pending[k:], i+k
		}
	}
	return 0
}

// benchTwoProcesses measures one-way throughput from a producer process to
// this one. Every 8-byte word of every message is written by the producer;
// the consumer checks the sequence number in the first and the last word.
func benchTwoProcesses(b *testing.B, size int, capacity uint64, spin bool) {
	name := ringName(b)
	policy := shmring.DefaultWaitPolicy
	env := []string{"SHMRING_TEST_NAME=" + name, fmt.Sprint("SHMRING_TEST_COUNT=", b.N), fmt.Sprint("SHMRING_TEST_SIZE=", size)}
	if spin {
		policy = shmring.SpinWaitPolicy
		env = append(env, "SHMRING_TEST_SPIN=1")
	}
	r, err := shmring.Create(name, shmring.WithCapacity(capacity), shmring.WithWaitPolicy(policy))
	skipUnsupported(b, err)
	defer r.Close()
	c, err := r.Consumer()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cmd, out := startChild(b, "stream", env...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for i := range b.N {
		msg, err := c.Peek(ctx)
		if err != nil {
			b.Fatalf("message %d: %v\n%s", i, err, out)
		}
		if i == 0 {
			b.ResetTimer() // from the first message: process start-up is not the ring's
		}
		le := binary.LittleEndian
		if len(msg) != size || le.Uint64(msg) != uint64(i) || le.Uint64(msg[size-8:])&(1<<56-1) != uint64(i)&(1<<56-1) {
			b.Fatalf("message %d: %d bytes, sequence %d", i, len(msg), le.Uint64(msg))
		}
		c.Release()
	}
	b.StopTimer()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("producer: %v\n%s", err, out)
	}
	reportSleeps(b, r)
}

func BenchmarkTwoProcesses64(b *testing.B)     { benchTwoProcesses(b, 64, 1<<20, false) }
func BenchmarkTwoProcesses64Spin(b *testing.B) { benchTwoProcesses(b, 64, 1<<20, true) }
func BenchmarkTwoProcesses1K(b *testing.B)     { benchTwoProcesses(b, 1024, 1<<20, false) }
func BenchmarkTwoProcesses64K(b *testing.B)    { benchTwoProcesses(b, 65536, 16<<20, false) }

// benchMultiProducers measures the aggregate throughput of n producer
// processes into one consumer: each sends b.N/n messages (and one more for
// the first b.N%n), and the consumer checks that each producer's sequence
// numbers arrive in order.
func benchMultiProducers(b *testing.B, n, size, batch int) {
	name := ringName(b)
	r, err := shmring.Create(name, shmring.WithCapacity(1<<20), shmring.WithMultiProducer())
	skipUnsupported(b, err)
	defer r.Close()
	c, err := r.Consumer()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var outs []fmt.Stringer
	var cmds []*exec.Cmd
	for id := range n {
		count := b.N / n
		if id < b.N%n {
			count++
		}
		cmd, out := startChild(b, "stream", "SHMRING_TEST_NAME="+name, fmt.Sprint("SHMRING_TEST_COUNT=", count),
			fmt.Sprint("SHMRING_TEST_SIZE=", size), fmt.Sprint("SHMRING_TEST_ID=", id), fmt.Sprint("SHMRING_TEST_BATCH=", batch))
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	next := make([]uint64, n)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for i := range b.N {
		msg, err := c.Peek(ctx)
		if err != nil {
			b.Fatalf("message %d: %v\n%s", i, err, outs)
		}
		if i == 0 {
			b.ResetTimer()
		}
		id := int(msg[size-1])
		if len(msg) != size || id >= n || binary.LittleEndian.Uint64(msg) != next[id] {
			b.Fatalf("message %d: %d bytes from producer %d, out of order", i, len(msg), id)
		}
		next[id]++
		c.Release()
	}
	b.StopTimer()
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			b.Fatalf("producer %d: %v\n%s", i, err, outs[i])
		}
	}
	reportSleeps(b, r)
}

// reportSleeps reports how often each side slept in the kernel and made a
// wake-up system call, per million messages: what a slow run spent its time
// on.
func reportSleeps(b *testing.B, r *shmring.Ring) {
	st, err := r.Stats()
	if err != nil {
		b.Fatal(err)
	}
	var parks, wakes uint64
	for _, s := range st.Slots {
		parks += s.Parks
		wakes += s.Wakes
	}
	perM := 1e6 / float64(b.N)
	b.ReportMetric(float64(st.Consumer.Parks)*perM, "cons-sleeps/Mmsg")
	b.ReportMetric(float64(parks)*perM, "prod-sleeps/Mmsg")
	b.ReportMetric(float64(st.Consumer.Wakes+wakes)*perM, "wake-calls/Mmsg")
}

func BenchmarkMultiProducer4x64(b *testing.B) { benchMultiProducers(b, 4, 64, 1) }
func BenchmarkMultiProducer1x64(b *testing.B) { benchMultiProducers(b, 1, 64, 1) }

// BenchmarkMultiProducer4x64Batch64 is BenchmarkMultiProducer4x64 with
// SendBatch, 64 messages at a time.
func BenchmarkMultiProducer4x64Batch64(b *testing.B) { benchMultiProducers(b, 4, 64, 64) }
