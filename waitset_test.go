package shmring_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/shmring/shmring"
)

// memberPairs creates n rings, each with a producer and a consumer in this
// process, and puts the consumers in a new set.
func memberPairs(t *testing.T, n int, opts ...shmring.Option) (*shmring.WaitSet, []*shmring.Producer, []*shmring.Consumer) {
	t.Helper()
	set := shmring.NewWaitSet()
	t.Cleanup(func() { set.Close() })
	var ps []*shmring.Producer
	var cs []*shmring.Consumer
	for range n {
		r, err := shmring.Create(ringName(t), append([]shmring.Option{shmring.WithCapacity(4096)}, opts...)...)
		skipUnsupported(t, err)
		t.Cleanup(func() { r.Close() })
		p, c := pairOf(t, r)
		if err := set.AddConsumer(c); err != nil {
			t.Fatal(err)
		}
		ps, cs = append(ps, p), append(cs, c)
	}
	return set, ps, cs
}

func waitFor(t *testing.T, set *shmring.WaitSet, d time.Duration) ([]shmring.Ready, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return set.Wait(ctx, nil)
}

func consumersOf(ready []shmring.Ready) []*shmring.Consumer {
	var cs []*shmring.Consumer
	for _, r := range ready {
		if r.Consumer != nil {
			cs = append(cs, r.Consumer)
		}
	}
	return cs
}

// TestWaitSetConsumers: Wait reports exactly the consumers with a message,
// level-triggered, and times out on idle ones.
func TestWaitSetConsumers(t *testing.T) {
	set, ps, cs := memberPairs(t, 5)
	if ready, err := waitFor(t, set, 30*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) || len(ready) != 0 {
		t.Fatalf("idle set: got %v, %v; want a timeout and nothing", ready, err)
	}
	for _, i := range []int{1, 3} {
		if err := ps[i].TrySend([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ps[3].TrySend([]byte{3})
	got := map[*shmring.Consumer]bool{}
	for len(got) < 2 {
		ready, err := waitFor(t, set, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range consumersOf(ready) {
			got[c] = true
		}
	}
	if !got[cs[1]] || !got[cs[3]] || len(got) != 2 {
		t.Fatalf("ready: %v, want consumers 1 and 3", got)
	}
	buf := make([]byte, 8)
	if _, err := cs[1].TryRecv(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := cs[3].TryRecv(buf); err != nil {
		t.Fatal(err)
	}
	// Level-triggered: consumer 3 holds a second message.
	ready, err := waitFor(t, set, 10*time.Second)
	if err != nil || !slices.Equal(consumersOf(ready), []*shmring.Consumer{cs[3]}) {
		t.Fatalf("after one message each: got %v, %v; want consumer 3 alone", ready, err)
	}
	if _, err := cs[3].TryRecv(buf); err != nil {
		t.Fatal(err)
	}
	if ready, err := waitFor(t, set, 30*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drained set: got %v, %v; want a timeout", ready, err)
	}
	// A message sent while Wait sleeps wakes it.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		time.Sleep(20 * time.Millisecond)
		ps[4].TrySend([]byte{4})
	}()
	ready, err = waitFor(t, set, 10*time.Second)
	<-sent
	if err != nil || !slices.Equal(consumersOf(ready), []*shmring.Consumer{cs[4]}) {
		t.Fatalf("message sent while waiting: got %v, %v; want consumer 4", ready, err)
	}
}

// TestWaitSetProducers: a producer on a full ring is reported once the
// consumer makes room for the size it was added with.
func TestWaitSetProducers(t *testing.T) {
	r, err := shmring.Create(ringName(t), shmring.WithCapacity(4096))
	skipUnsupported(t, err)
	defer r.Close()
	p, c := pairOf(t, r)
	msg := make([]byte, 200)
	for p.TrySend(msg) == nil {
	}
	set := shmring.NewWaitSet()
	defer set.Close()
	if err := set.AddProducer(p, len(msg)); err != nil {
		t.Fatal(err)
	}
	if ready, err := waitFor(t, set, 30*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("full ring: got %v, %v; want a timeout", ready, err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		time.Sleep(20 * time.Millisecond)
		buf := make([]byte, 256)
		for range 8 { // past the consumer's publishing batch (capacity/8)
			c.TryRecv(buf)
		}
		c.TryRecv(buf) // publishes
	}()
	ready, err := waitFor(t, set, 10*time.Second)
	<-drained
	if err != nil || len(ready) != 1 || ready[0].Producer != p || ready[0].Err != nil {
		t.Fatalf("room made: got %v, %v; want the producer", ready, err)
	}
	if err := p.TrySend(msg); err != nil {
		t.Fatalf("TrySend after Wait reported room: %v", err)
	}
	if err := set.AddProducer(p, 1<<30); err == nil {
		t.Fatal("AddProducer of a message over the maximum succeeded")
	}
}

// TestWaitSetMembership: adding from another goroutine while Wait sleeps,
// removing, closing a member, closing the set, and two Waits at once.
func TestWaitSetMembership(t *testing.T) {
	set, ps, cs := memberPairs(t, 2)
	if err := set.AddConsumer(cs[0]); err == nil {
		t.Fatal("a consumer added twice")
	}
	other := shmring.NewWaitSet()
	defer other.Close()
	if err := other.AddConsumer(cs[0]); err == nil {
		t.Fatal("a consumer added to a second set")
	}
	if !set.Remove(cs[1]) || set.Remove(cs[1]) || set.Len() != 1 {
		t.Fatalf("Remove: the set holds %d", set.Len())
	}
	ps[1].TrySend([]byte{1})
	if ready, err := waitFor(t, set, 30*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("message into a removed member: got %v, %v; want a timeout", ready, err)
	}
	// Added while Wait sleeps: looked at before it sleeps again.
	added := make(chan struct{})
	go func() {
		defer close(added)
		time.Sleep(20 * time.Millisecond)
		set.AddConsumer(cs[1])
	}()
	ready, err := waitFor(t, set, 10*time.Second)
	<-added
	if err != nil || !slices.Equal(consumersOf(ready), []*shmring.Consumer{cs[1]}) {
		t.Fatalf("member added while waiting: got %v, %v", ready, err)
	}
	cs[1].TryRecv(make([]byte, 8))
	// A second Wait while one runs.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := set.Wait(ctx, nil)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if _, err := set.Wait(context.Background(), nil); !errors.Is(err, shmring.ErrWaitSetBusy) {
		t.Fatalf("concurrent Wait: %v, want ErrWaitSetBusy", err)
	}
	<-done
	// Closing a member takes it out.
	cs[0].Close()
	if set.Len() != 1 {
		t.Fatalf("a closed consumer stays in the set (%d members)", set.Len())
	}
	// Close ends a Wait.
	go func() {
		time.Sleep(20 * time.Millisecond)
		set.Close()
	}()
	if _, err := set.Wait(context.Background(), nil); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Wait on a closed set: %v, want os.ErrClosed", err)
	}
	if err := set.AddConsumer(cs[1]); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("AddConsumer to a closed set: %v", err)
	}
}
