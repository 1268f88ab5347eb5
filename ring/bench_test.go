package ring

import (
	"context"
	"testing"
	"time"
)

// benchStream measures one-way throughput between two goroutines through a
// 1 MiB heap ring: the single-process version of the two-process stream that
// cmd/shmbench measures.
func benchStream(b *testing.B, size int, policy WaitPolicy) {
	r := heapRing(b, Config{Capacity: 1 << 20})
	p, c := pair(b, r, ConsumerOptions{Wait: policy})
	b.ReportAllocs()
	b.SetBytes(int64(size))
	done := make(chan struct{})
	go func() {
		defer close(done)
		msg := make([]byte, size)
		ctx := context.Background()
		for i := range b.N {
			msg[0] = byte(i)
			if err := p.Send(ctx, msg); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	buf := make([]byte, size)
	ctx := context.Background()
	for i := range b.N {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			b.Fatal(err)
		}
		if n != size || buf[0] != byte(i) {
			b.Fatalf("message %d: %d bytes starting %d", i, n, buf[0])
		}
	}
	<-done
}

func BenchmarkStream64(b *testing.B)       { benchStream(b, 64, DefaultWaitPolicy) }
func BenchmarkStream1K(b *testing.B)       { benchStream(b, 1024, DefaultWaitPolicy) }
func BenchmarkStream64K(b *testing.B)      { benchStream(b, 65536, DefaultWaitPolicy) }
func BenchmarkStream64Spin(b *testing.B)   { benchStream(b, 64, SpinWaitPolicy) }
func BenchmarkStream64NoSpin(b *testing.B) { benchStream(b, 64, WaitPolicy{}) }

// BenchmarkZeroCopy64 is the stream with Reserve/Commit and Peek/Release.
func BenchmarkZeroCopy64(b *testing.B) {
	r := heapRing(b, Config{Capacity: 1 << 20})
	p, c := pair(b, r, ConsumerOptions{Wait: DefaultWaitPolicy})
	b.ReportAllocs()
	b.SetBytes(64)
	go func() {
		ctx := context.Background()
		for i := range b.N {
			buf, err := p.Reserve(ctx, 64)
			if err != nil {
				b.Error(err)
				return
			}
			buf[0] = byte(i)
			p.Commit(64)
		}
	}()
	ctx := context.Background()
	for i := range b.N {
		v, err := c.Peek(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if v[0] != byte(i) {
			b.Fatalf("message %d starts %d", i, v[0])
		}
		c.Release()
	}
}

// BenchmarkOneGoroutine sends and receives in one goroutine: the instruction
// cost of a message, without cache-line transfers between cores.
func BenchmarkOneGoroutine(b *testing.B) {
	r := heapRing(b, Config{Capacity: 1 << 20})
	p, c := pair(b, r, ConsumerOptions{})
	b.ReportAllocs()
	b.SetBytes(64)
	for i := range b.N {
		buf, err := p.TryReserve(64)
		if err != nil {
			b.Fatal(err)
		}
		buf[0] = byte(i)
		p.Commit(64)
		v, err := c.TryPeek()
		if err != nil || v[0] != byte(i) {
			b.Fatal(err)
		}
		c.Release()
	}
}

// BenchmarkOneGoroutineSend is BenchmarkOneGoroutine through the copying
// calls, Send and Recv: what cmd/shmbench's stream calls.
func BenchmarkOneGoroutineSend(b *testing.B) {
	r := heapRing(b, Config{Capacity: 1 << 20})
	p, c := pair(b, r, ConsumerOptions{})
	b.ReportAllocs()
	b.SetBytes(64)
	msg, buf := make([]byte, 64), make([]byte, 64)
	ctx := context.Background()
	for i := range b.N {
		msg[0] = byte(i)
		if err := p.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if n, err := c.Recv(ctx, buf); err != nil || n != 64 || buf[0] != byte(i) {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkRecoverDeadProducer measures how long a consumer waiting for data
// takes to skip the claim of a producer that died holding it, with the
// default liveness interval: the time from the death to the next message.
func BenchmarkRecoverDeadProducer(b *testing.B) {
	r := heapRing(b, Config{Capacity: 1 << 16, MultiProducer: true, Slots: 4})
	c, err := r.NewConsumer(ConsumerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	live, err := r.NewProducer(ProducerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer live.Close()
	buf := make([]byte, 64)
	for range b.N {
		dead, err := r.NewProducer(ProducerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		dead.TryReserve(10)
		go func() {
			time.Sleep(3 * DefaultLiveness / 2) // a death at an arbitrary point of the interval
			die(dead)
			live.TrySend(buf)
		}()
		if _, err := c.Recv(context.Background(), buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)-float64(3*DefaultLiveness/2), "ns/recovery")
}

// BenchmarkBatch64 is the 64-byte stream sent with SendBatch, 64 messages at
// a time, and received one by one.
func BenchmarkBatch64(b *testing.B) {
	r := heapRing(b, Config{Capacity: 1 << 20})
	p, c := pair(b, r, ConsumerOptions{Wait: DefaultWaitPolicy})
	b.ReportAllocs()
	b.SetBytes(64)
	go func() {
		ctx := context.Background()
		msgs := make([][]byte, 64)
		for i := range msgs {
			msgs[i] = make([]byte, 64)
		}
		for sent := 0; sent < b.N; {
			batch := msgs[:min(len(msgs), b.N-sent)]
			for len(batch) > 0 {
				k, err := p.SendBatch(ctx, batch)
				if err != nil {
					b.Error(err)
					return
				}
				batch, sent = batch[k:], sent+k
			}
		}
	}()
	buf := make([]byte, 64)
	ctx := context.Background()
	for range b.N {
		if n, err := c.Recv(ctx, buf); err != nil || n != 64 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkMultiProducer64 is four producer goroutines sending 64-byte
// messages one at a time into a multi-producer ring, and one consumer: the
// claims' contention on the tail (see claimBackoff). ns/op is per message.
func BenchmarkMultiProducer64(b *testing.B) {
	const producers = 4
	r := heapRing(b, Config{Capacity: 1 << 20, MultiProducer: true, Slots: producers})
	c, err := r.NewConsumer(ConsumerOptions{Wait: DefaultWaitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	b.SetBytes(64)
	ctx := context.Background()
	per := b.N/producers + 1
	errs := make(chan error, producers)
	for range producers {
		p, err := r.NewProducer(ProducerOptions{Wait: DefaultWaitPolicy})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		go func() {
			msg := make([]byte, 64)
			for range per {
				if err := p.Send(ctx, msg); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	buf := make([]byte, 64)
	for range per * producers {
		if n, err := c.Recv(ctx, buf); err != nil || n != 64 {
			b.Fatal(n, err)
		}
	}
	for range producers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}
