//go:build unix

package main

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/shmring/shmring/internal/stream"
)

// The patterns: what the peers do (peerRun) and what the parent measures
// (measure). stream and mpsc: the peers send as fast as they can for the
// duration, the parent receives; lowrate: the peer sends at a fixed rate,
// the parent measures one-way latency; pingpong: the parent sends, the peer
// echoes, the parent measures the round trip.

// peerRun is the peer's side of a pattern.
func peerRun(s spec, c conn) error {
	msg := make([]byte, s.Size)
	switch s.Pattern {
	case "stream", "mpsc":
		deadline := stream.Now() + int64(s.Duration)
		for seq := uint64(0); ; seq++ {
			if seq%64 == 0 && stream.Now() >= deadline {
				break
			}
			stamp(msg, seq, uint64(s.ID))
			if err := c.send(msg); err != nil {
				return err
			}
		}
	case "lowrate":
		err := paced(s, func(seq uint64) error {
			stamp(msg, seq, uint64(stream.Now()))
			if err := c.send(msg); err != nil {
				return err
			}
			return c.flush()
		})
		if err != nil {
			return err
		}
	case "pingpong":
		for {
			n, err := c.recv(msg)
			if err != nil {
				return err
			}
			seq, _, err := check(msg[:n], s.Size)
			if err != nil {
				return err
			}
			if seq == endSeq {
				return nil
			}
			if err := c.send(msg[:n]); err != nil {
				return err
			}
			if err := c.flush(); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown pattern %q", s.Pattern)
	}
	stamp(msg, endSeq, uint64(s.ID))
	if err := c.send(msg); err != nil {
		return err
	}
	return c.flush()
}

// paced calls send with 0, 1, 2... at s.Rate per second for s.Duration.
func paced(s spec, send func(seq uint64) error) error {
	interval := 1e9 / s.Rate
	start := stream.Now()
	for seq := uint64(0); ; seq++ {
		target := start + int64(float64(seq)*interval)
		if target >= start+int64(s.Duration) {
			return nil
		}
		stream.Pace(target)
		if err := send(seq); err != nil {
			return err
		}
	}
}

// measure is the parent's side: it returns the messages counted, the
// seconds they took, and the latency histogram (lowrate, pingpong).
func measure(s spec, cs []conn) (uint64, float64, *hdrhistogram.Histogram, error) {
	h := hdrhistogram.New(1, 60e9, 3)
	switch s.Pattern {
	case "stream", "mpsc":
		n, secs, err := receiveAll(s, cs)
		return n, secs, h, err
	case "lowrate":
		c, buf := cs[0], make([]byte, s.Size)
		for n := uint64(0); ; n++ {
			m, err := c.recv(buf)
			if err != nil {
				return 0, 0, nil, err
			}
			now := stream.Now()
			seq, sent, err := check(buf[:m], s.Size)
			if err != nil {
				return 0, 0, nil, err
			}
			if seq == endSeq {
				return n, s.Duration.Seconds(), h, nil
			}
			if seq != n {
				return 0, 0, nil, fmt.Errorf("message %d arrived as number %d", seq, n)
			}
			h.RecordValue(now - int64(sent))
		}
	case "pingpong":
		c, msg, buf := cs[0], make([]byte, s.Size), make([]byte, s.Size)
		start := stream.Now()
		deadline := start + int64(s.Duration)
		n := uint64(0)
		for ; stream.Now() < deadline; n++ {
			t0 := stream.Now()
			stamp(msg, n, uint64(t0))
			if err := c.send(msg); err != nil {
				return 0, 0, nil, err
			}
			if err := c.flush(); err != nil {
				return 0, 0, nil, err
			}
			m, err := c.recv(buf)
			if err != nil {
				return 0, 0, nil, err
			}
			h.RecordValue(stream.Now() - t0)
			if seq, _, err := check(buf[:m], s.Size); err != nil || seq != n {
				return 0, 0, nil, fmt.Errorf("reply %d to request %d: %v", seq, n, err)
			}
		}
		secs := float64(stream.Now()-start) / 1e9
		stamp(msg, endSeq, 0)
		if err := c.send(msg); err != nil {
			return 0, 0, nil, err
		}
		return n, secs, h, c.flush()
	}
	return 0, 0, nil, fmt.Errorf("unknown pattern %q", s.Pattern)
}

// receiveAll receives the streams of all peers, one goroutine per
// connection (as a Go server would read sockets), checking each peer's
// sequence. It times from the first message to the last end marker.
func receiveAll(s spec, cs []conn) (uint64, float64, error) {
	var total atomic.Uint64
	var first, last atomic.Int64
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		ends := s.Producers / len(cs) // end markers to wait for on this connection
		wg.Go(func() {
			buf := make([]byte, s.Size)
			next := make([]uint64, s.Producers)
			count := uint64(0)
			defer func() { total.Add(count) }()
			for ends > 0 {
				m, err := c.recv(buf)
				if err != nil {
					errs[i] = err
					return
				}
				// The clock is read at the first message and at the end
				// markers only: a read (and an atomic operation) per
				// message would cost about as much as a small message.
				if count == 0 {
					first.CompareAndSwap(0, stream.Now())
				}
				seq, id, err := check(buf[:m], s.Size)
				if err == nil && id >= uint64(s.Producers) {
					err = fmt.Errorf("message from peer %d of %d", id, s.Producers)
				}
				if err != nil {
					errs[i] = err
					return
				}
				if seq == endSeq {
					ends--
					now := stream.Now()
					for l := last.Load(); now > l && !last.CompareAndSwap(l, now); l = last.Load() {
					}
					continue
				}
				if seq != next[id] {
					errs[i] = fmt.Errorf("peer %d: message %d arrived after %d", id, seq, next[id])
					return
				}
				next[id]++
				count++
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, 0, err
		}
	}
	return total.Load(), float64(last.Load()-first.Load()) / 1e9, nil
}
