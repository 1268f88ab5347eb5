//go:build unix

package shmring_test

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/shmring/shmring"
)

// A sleeper learns of a peer's death as an event, not by looking on a
// timer: these tests set the liveness interval to an hour, so only the event
// can end their waits in time.

// TestSleepingConsumerSeesProducerDie: a consumer asleep on an idle ring
// (end of stream wanted) sees a producer process killed with SIGKILL: its
// slot is reaped and Recv reports io.EOF. A SIGSTOPped producer is alive.
func TestSleepingConsumerSeesProducerDie(t *testing.T) {
	needWatching(t)
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithCapacity(4096), shmring.WithEOF(true), shmring.WithLiveness(time.Hour))
	skipUnsupported(t, err)
	defer r.Close()
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd, lines, stderr := childLines(t, "attach", "SHMRING_TEST_NAME="+name, "SHMRING_TEST_SIDE=producer")
	if l := nextLine(t, lines, stderr); l != "attached" {
		t.Fatalf("child: %q", l)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Recv(context.Background(), make([]byte, 64))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGSTOP)
	select {
	case err := <-done:
		t.Fatalf("Recv returned %v while the producer was stopped (alive)", err)
	case <-time.After(300 * time.Millisecond):
	}
	cmd.Process.Signal(syscall.SIGCONT)
	start := time.Now()
	cmd.Process.Kill()
	select {
	case err := <-done:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("Recv after the producer was killed: %v, want io.EOF", err)
		}
		t.Logf("io.EOF %v after the kill", time.Since(start))
	case <-time.After(30 * time.Second):
		t.Fatal("Recv still asleep 30 s after its only producer was killed")
	}
}

// TestSleepingProducerSeesConsumerDie: a producer asleep on a full ring sees
// the consumer process killed with SIGKILL and reports ErrConsumerDead.
func TestSleepingProducerSeesConsumerDie(t *testing.T) {
	needWatching(t)
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithCapacity(4096), shmring.WithLiveness(time.Hour))
	skipUnsupported(t, err)
	defer r.Close()
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cmd, lines, stderr := childLines(t, "attach", "SHMRING_TEST_NAME="+name, "SHMRING_TEST_SIDE=consumer")
	if l := nextLine(t, lines, stderr); l != "attached" {
		t.Fatalf("child: %q", l)
	}
	msg := make([]byte, 64)
	for p.TrySend(msg) == nil {
	}
	done := make(chan error, 1)
	go func() { done <- p.Send(context.Background(), msg) }()
	select {
	case err := <-done:
		t.Fatalf("Send on a full ring returned %v while the consumer lives", err)
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	cmd.Process.Kill()
	select {
	case err := <-done:
		if !errors.Is(err, shmring.ErrConsumerDead) {
			t.Fatalf("Send after the consumer was killed: %v, want ErrConsumerDead", err)
		}
		t.Logf("ErrConsumerDead %v after the kill", time.Since(start))
	case <-time.After(30 * time.Second):
		t.Fatal("Send still asleep 30 s after the consumer was killed")
	}
}
