//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/uuid"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/osthreads"
	"github.com/shmring/shmring/internal/stream"
)

// The manyrings pattern: one process waits on -rings rings (or Unix
// sockets), one peer process holds the other end of all of them. Three
// phases:
//   - idle, for -duration: nothing is sent; the waiting process's context
//     switches over the phase give idle_wakeups_per_sec;
//   - lowrate, for -duration: the peer sends -rate messages per second,
//     each into a ring chosen at random; their one-way latency gives
//     latency_ns;
//   - stream, for -duration: the peer sends as fast as it can into one
//     ring while the others stay idle; its rate gives msgs_per_sec (compare
//     the stream pattern's lone ring in the same run).
//
// The waiting process receives with a goroutine per ring blocked in Recv
// (shmring), one WaitSet in one goroutine (shmring-waitset), or a goroutine
// per socket (uds). threads is its peak number of OS threads.

// Sequence numbers of the manyrings phases: the lowrate messages count from
// 0; stream messages carry streamFlag; readySeq says every ring is
// attached.
const (
	streamFlag = 1 << 62
	readySeq   = endSeq - 1
)

// manyWaiterEnv names the environment variable that makes shmbench the
// waiting process of a manyrings case: a process of its own, so that its
// threads and context switches are the case's alone.
const manyWaiterEnv = "SHMBENCH_MANYRINGS"

// manyRings runs a manyrings case: the waiting process, which starts the
// peer, prints its result as JSON.
func manyRings(s spec) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.Duration+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	js, _ := json.Marshal(s)
	cmd.Env = append(os.Environ(), manyWaiterEnv+"="+string(js))
	var errs strings.Builder
	cmd.Stderr = &errs
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("waiting process: %v: %s", err, &errs)
	}
	var res result
	if err := json.Unmarshal(out, &res); err != nil {
		return result{}, fmt.Errorf("waiting process: %v: %s", err, out)
	}
	return res, nil
}

// manyWaiterMain is the waiting process of a manyrings case.
func manyWaiterMain(env string) int {
	var s spec
	if err := json.Unmarshal([]byte(env), &s); err != nil {
		fmt.Fprintf(os.Stderr, "shmbench manyrings: %v\n", err)
		return 2
	}
	res, err := manyWait(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shmbench manyrings: %v\n", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// manyWait is the waiting side: it builds the rings or sockets, starts the
// peer, and measures the phases.
func manyWait(s spec) (result, error) {
	// The process's own wake-ups, before any ring or socket exists: the
	// Go runtime's (its monitor thread wakes a few times a second in an
	// idle process here), the floor under the idle phase's figure.
	base := idleRate(min(s.Duration, time.Second))
	dir, err := os.MkdirTemp("", "shmbench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*s.Duration+time.Minute)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	var ln net.Listener
	var rings []*shmring.Ring
	var cs []*shmring.Consumer
	defer func() {
		for _, c := range cs {
			c.Close()
		}
		for _, r := range rings {
			r.Close()
		}
	}()
	if s.Transport == "uds" {
		if ln, err = net.Listen("unix", filepath.Join(dir, "sock")); err != nil {
			return result{}, err
		}
		defer ln.Close()
		s.Addr = ln.Addr().String()
	} else {
		policy, err := waitPolicy(s.Wait)
		if err != nil {
			return result{}, err
		}
		s.Addr = "shmbench-" + uuid.NewString()
		for i := range s.Rings {
			name := fmt.Sprint(s.Addr, "-", i)
			// Ring 0 carries the stream phase: the capacity of the
			// stream pattern's lone ring, so that the two compare.
			capacity := uint64(64 << 10)
			if i == 0 {
				capacity = streamCapacity
			}
			r, err := shmring.Create(name, shmring.WithCapacity(capacity), shmring.WithWaitPolicy(policy), shmring.WithEOF(false))
			if err != nil {
				return result{}, err
			}
			rings = append(rings, r)
			defer shmring.Remove(name)
			c, err := r.Consumer()
			if err != nil {
				return result{}, err
			}
			cs = append(cs, c)
		}
	}
	cpu0 := selfCPU()
	cmd, out, err := startPeer(ctx, exe, s)
	if err != nil {
		return result{}, err
	}
	defer killPeer(cmd)
	var recv []func(buf []byte) (int, error) // per ring, for the goroutine receivers
	if ln != nil {
		conns := make([]*streamConn, s.Rings)
		for range s.Rings {
			c, err := ln.Accept()
			if err != nil {
				return result{}, err
			}
			sc := newStreamConn(c, c, false, c)
			defer sc.close()
			var hello [8]byte
			if _, err := sc.recv(hello[:]); err != nil {
				return result{}, err
			}
			i := le.Uint64(hello[:])
			if i >= uint64(s.Rings) || conns[i] != nil {
				return result{}, fmt.Errorf("socket says it is number %d", i)
			}
			conns[i] = sc
		}
		for _, c := range conns {
			recv = append(recv, c.recv)
		}
	} else if s.Transport == "shmring" {
		for _, c := range cs {
			recv = append(recv, func(buf []byte) (int, error) { return c.Recv(ctx, buf) })
		}
	}
	m := &manyMeasure{s: s, h: hdrhistogram.New(1, 60e9, 3), ready: make(chan struct{})}
	done := make(chan error, 1)
	if recv != nil {
		go func() { done <- m.goroutines(recv) }()
	} else {
		go func() { done <- m.waitSet(ctx, cs) }()
	}
	var idle float64
	select {
	case <-m.ready:
		// Every ring attached, every receiver about to wait: let them
		// fall asleep, then count this process's context switches
		// while the peer sends nothing.
		time.Sleep(100 * time.Millisecond)
		idle = idleRate(s.Duration)
	case err := <-done:
		return result{}, fmt.Errorf("before the idle phase: %v: %s", err, out)
	}
	if err := <-done; err != nil {
		return result{}, fmt.Errorf("%v: %s", err, out)
	}
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("peer: %v: %s", err, out)
	}
	cpu := selfCPU() - cpu0 + (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	res := result{Transport: s.Transport, Wait: s.Wait, Pattern: s.Pattern, Size: s.Size, Producers: 1,
		Messages: m.lowrate.Load(), Seconds: s.Duration.Seconds(), CPUSeconds: cpu,
		Rings: s.Rings, Threads: osthreads.Count(), IdleWakeupsPerSec: &idle, BaselineWakeupsPerSec: &base}
	if secs := float64(m.last.Load()-m.first.Load()) / 1e9; secs > 0 {
		res.MsgsPerSec = float64(m.streamed.Load()) / secs
		res.MBPerSec = res.MsgsPerSec * float64(s.Size) / 1e6
	}
	if m.h.TotalCount() > 0 {
		res.LatencyNs = stream.Latency{P50: m.h.ValueAtQuantile(50), P99: m.h.ValueAtQuantile(99),
			P999: m.h.ValueAtQuantile(99.9), Max: m.h.Max()}
	}
	return res, nil
}

// manyMeasure collects what the receivers see.
type manyMeasure struct {
	s         spec
	mu        sync.Mutex
	h         *hdrhistogram.Histogram
	lowrate   atomic.Uint64
	streamed  atomic.Uint64
	first     atomic.Int64 // first stream message
	last      atomic.Int64 // stream end
	ready     chan struct{}
	readyOnce sync.Once
}

// got handles one message received on ring i; it reports the end marker.
func (m *manyMeasure) got(i int, msg []byte, streamed *uint64) (end bool, err error) {
	seq, word1, err := check(msg, m.s.Size)
	if err != nil {
		return false, fmt.Errorf("ring %d: %v", i, err)
	}
	switch {
	case seq == endSeq:
		if *streamed > 0 {
			m.streamed.Add(*streamed)
			m.last.Store(stream.Now())
		}
		return true, nil
	case seq == readySeq:
		m.readyOnce.Do(func() { close(m.ready) })
	case seq&streamFlag != 0:
		if *streamed == 0 {
			m.first.Store(stream.Now())
		}
		*streamed++
	default:
		now := stream.Now() // word 1 holds the send time
		m.mu.Lock()
		m.h.RecordValue(now - int64(word1))
		m.mu.Unlock()
		m.lowrate.Add(1)
	}
	return false, nil
}

// goroutines receives with one goroutine per ring.
func (m *manyMeasure) goroutines(recv []func([]byte) (int, error)) error {
	errs := make([]error, len(recv))
	var wg sync.WaitGroup
	for i, r := range recv {
		wg.Go(func() {
			buf := make([]byte, m.s.Size)
			var streamed uint64
			for {
				n, err := r(buf)
				if err == nil {
					var end bool
					if end, err = m.got(i, buf[:n], &streamed); end {
						return
					}
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitSet receives with one WaitSet in this goroutine.
func (m *manyMeasure) waitSet(ctx context.Context, cs []*shmring.Consumer) error {
	set := shmring.NewWaitSet()
	defer set.Close()
	index := make(map[*shmring.Consumer]int, len(cs))
	for i, c := range cs {
		index[c] = i
		if err := set.AddConsumer(c); err != nil {
			return err
		}
	}
	buf := make([]byte, m.s.Size)
	streamed := make([]uint64, len(cs))
	var ready []shmring.Ready
	for ends := 0; ends < len(cs); {
		var err error
		if ready, err = set.Wait(ctx, ready[:0]); err != nil {
			return err
		}
		for _, r := range ready {
			if r.Err != nil {
				return r.Err
			}
			i := index[r.Consumer]
			for {
				n, err := r.Consumer.TryRecv(buf)
				if errors.Is(err, shmring.ErrEmpty) {
					break
				}
				if err != nil {
					return err
				}
				end, err := m.got(i, buf[:n], &streamed[i])
				if err != nil {
					return err
				}
				if end {
					set.Remove(r.Consumer)
					ends++
					break
				}
			}
		}
	}
	return nil
}

// manyPeer is the peer of manyrings: the other end of every ring or socket.
func manyPeer(ctx context.Context, s spec) error {
	var send []func([]byte) error
	if s.Transport == "uds" {
		for i := range s.Rings {
			c, err := net.Dial("unix", s.Addr)
			if err != nil {
				return err
			}
			sc := newStreamConn(c, c, false, c)
			defer sc.close()
			var hello [8]byte
			le.PutUint64(hello[:], uint64(i))
			if err := sc.send(hello[:]); err != nil {
				return err
			}
			send = append(send, sc.send)
		}
	} else {
		policy, err := waitPolicy(s.Wait)
		if err != nil {
			return err
		}
		for i := range s.Rings {
			r, err := shmring.Open(fmt.Sprint(s.Addr, "-", i), shmring.WithWaitPolicy(policy))
			if err != nil {
				return err
			}
			defer r.Close()
			p, err := r.Producer()
			if err != nil {
				return err
			}
			defer p.Close()
			send = append(send, func(msg []byte) error { return p.Send(ctx, msg) })
		}
	}
	msg := make([]byte, s.Size)
	stamp(msg, readySeq, 0)
	if err := send[0](msg); err != nil {
		return err
	}
	// The idle phase: nothing. The waiting side measures after 100 ms.
	time.Sleep(s.Duration + 200*time.Millisecond)
	// The lowrate phase: random rings at s.Rate.
	rnd := rand.New(rand.NewPCG(1, 2))
	err := paced(s, func(seq uint64) error {
		stamp(msg, seq, uint64(stream.Now()))
		return send[rnd.IntN(len(send))](msg)
	})
	if err != nil {
		return err
	}
	// The stream phase: one ring, as fast as it goes.
	deadline := stream.Now() + int64(s.Duration)
	for seq := uint64(0); ; seq++ {
		if seq%64 == 0 && stream.Now() >= deadline {
			break
		}
		stamp(msg, seq|streamFlag, 0)
		if err := send[0](msg); err != nil {
			return err
		}
	}
	stamp(msg, endSeq, 0)
	for _, f := range send {
		if err := f(msg); err != nil {
			return err
		}
	}
	return nil
}

// idleRate sleeps for d and returns this process's context switches per
// second meanwhile (the sleep's own wake-up included).
func idleRate(d time.Duration) float64 {
	sw0, t0 := contextSwitches(), time.Now()
	time.Sleep(d)
	return float64(contextSwitches()-sw0) / time.Since(t0).Seconds()
}

// contextSwitches is this process's voluntary and involuntary context
// switches so far: each is a thread going to sleep or being preempted.
func contextSwitches() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return int64(ru.Nvcsw) + int64(ru.Nivcsw)
}
