package shmring_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
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
	r, err := shmring.Open(os.Getenv("SHMRING_TEST_NAME"), shmring.WithOpenWait(10*time.Second), shmring.WithWaitPolicy(policy))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer r.Close()
	p, err := r.Producer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer p.Close()
	ctx := context.Background()
	for i := range count {
		buf, err := p.Reserve(ctx, size)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binary.LittleEndian.PutUint64(buf, uint64(i))
		for j := 8; j < size; j += 8 {
			binary.LittleEndian.PutUint64(buf[j:], uint64(i))
		}
		p.Commit(size)
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
		if len(msg) != size || le.Uint64(msg) != uint64(i) || le.Uint64(msg[size-8:]) != uint64(i) {
			b.Fatalf("message %d: %d bytes, sequence %d", i, len(msg), le.Uint64(msg))
		}
		c.Release()
	}
	b.StopTimer()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("producer: %v\n%s", err, out)
	}
}

func BenchmarkTwoProcesses64(b *testing.B)     { benchTwoProcesses(b, 64, 1<<20, false) }
func BenchmarkTwoProcesses64Spin(b *testing.B) { benchTwoProcesses(b, 64, 1<<20, true) }
func BenchmarkTwoProcesses1K(b *testing.B)     { benchTwoProcesses(b, 1024, 1<<20, false) }
func BenchmarkTwoProcesses64K(b *testing.B)    { benchTwoProcesses(b, 65536, 16<<20, false) }
