//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/stream"
)

// The fanout pattern: this process publishes as fast as it can for
// -duration, and -subscribers peer processes each receive every message.
// Transports:
//   - shmring: one fan-out ring (WithSubscribers), every subscriber
//     reliable: the publisher writes each message once;
//   - shmring-lossy: the same, every subscriber lossy (the publisher never
//     waits; a subscriber lapped reports what it lost);
//   - shmring-stopped: shmring, plus one more subscriber, lossy, stopped
//     (SIGSTOP) for the whole case: to compare with shmring, where it is
//     absent, the publisher's rate must not change;
//   - uds-buffered: one Unix socket per subscriber, the publisher writing
//     each message to every socket through a 64 KiB bufio.Writer.
//
// A row's msgs_per_sec is the mean of the subscribers' delivered rates (each
// from its first message to the end marker), min_msgs_per_sec the slowest
// one's, publisher_msgs_per_sec the publisher's sending rate, and lost the
// messages lossy subscribers reported lost (0 for reliable ones).

// fanoutReport is what a subscriber peer prints when it is done.
type fanoutReport struct {
	Messages uint64  `json:"messages"`
	Seconds  float64 `json:"seconds"`
	Lost     uint64  `json:"lost"`
}

func runFanout(s spec) (result, error) {
	dir, err := os.MkdirTemp("", "shmbench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), s.Duration+time.Minute)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	policy, err := waitPolicy(s.Wait)
	if err != nil && s.Transport != "uds-buffered" {
		return result{}, err
	}
	cpu0 := selfCPU()
	var pub []conn // uds-buffered: one per subscriber
	var ring *shmring.Ring
	var p *shmring.Producer
	var ln net.Listener
	switch s.Transport {
	case "uds-buffered":
		s.Addr = filepath.Join(dir, "sock")
		if ln, err = net.Listen("unix", s.Addr); err != nil {
			return result{}, err
		}
		defer ln.Close()
	case "shmring", "shmring-lossy", "shmring-stopped":
		s.Addr = "shmbench-" + uuid.NewString()
		if ring, err = shmring.Create(s.Addr, shmring.WithSubscribers(s.Subscribers+1), shmring.WithCapacity(streamCapacity),
			shmring.WithWaitPolicy(policy)); err != nil {
			return result{}, err
		}
		defer shmring.Remove(s.Addr)
		defer ring.Close()
		if p, err = ring.Producer(); err != nil {
			return result{}, err
		}
		defer p.Close()
	default:
		return result{}, fmt.Errorf("fanout runs over shmring, shmring-lossy, shmring-stopped and uds-buffered, not %s", s.Transport)
	}
	var peers []*exec.Cmd
	var outs []*strings.Builder
	defer func() {
		for _, c := range peers {
			killPeer(c)
		}
	}()
	n := s.Subscribers
	if s.Transport == "shmring-stopped" {
		n++ // the last one: lossy, and stopped
	}
	for i := range n {
		ps := s
		ps.ID = i
		cmd, out, err := startPeer(ctx, exe, ps)
		if err != nil {
			return result{}, err
		}
		peers, outs = append(peers, cmd), append(outs, out)
	}
	if ln != nil {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return result{}, err
			}
			pub = append(pub, newStreamConn(nil, c, true, c))
		}
	} else if err := waitSubscribed(ctx, ring, n); err != nil {
		return result{}, fmt.Errorf("%w: %s", err, outs[0])
	}
	var resume func()
	if s.Transport == "shmring-stopped" {
		last := peers[n-1].Process
		if err := last.Signal(syscall.SIGSTOP); err != nil {
			return result{}, err
		}
		resume = func() { last.Signal(syscall.SIGCONT) }
		defer resume()
	}
	send := func(msg []byte) error {
		if p != nil {
			return p.Send(ctx, msg)
		}
		for _, c := range pub {
			if err := c.send(msg); err != nil {
				return err
			}
		}
		return nil
	}
	msg := make([]byte, s.Size)
	start := stream.Now()
	deadline := start + int64(s.Duration)
	var sent uint64
	for ; sent%64 != 0 || stream.Now() < deadline; sent++ {
		stamp(msg, sent, 0)
		if err := send(msg); err != nil {
			return result{}, err
		}
	}
	pubSecs := float64(stream.Now()-start) / 1e9
	stamp(msg, endSeq, 0)
	if err := send(msg); err != nil {
		return result{}, err
	}
	for _, c := range pub {
		if err := c.flush(); err != nil {
			return result{}, err
		}
		c.close()
	}
	if resume != nil {
		resume()
	}
	res := result{Transport: s.Transport, Wait: s.Wait, Pattern: s.Pattern, Size: s.Size, Producers: 1,
		Subscribers: s.Subscribers, PublisherMsgsPerSec: float64(sent) / pubSecs}
	var sum float64
	res.MinMsgsPerSec = math.Inf(1)
	cpu := selfCPU() - cpu0
	for i, c := range peers {
		if err := c.Wait(); err != nil {
			return result{}, fmt.Errorf("subscriber %d: %v: %s", i, err, outs[i])
		}
		cpu += (c.ProcessState.UserTime() + c.ProcessState.SystemTime()).Seconds()
		var rep fanoutReport
		if err := json.Unmarshal([]byte(outs[i].String()), &rep); err != nil {
			return result{}, fmt.Errorf("subscriber %d: %v: %s", i, err, outs[i])
		}
		res.Lost += rep.Lost
		if i >= s.Subscribers {
			continue // the stopped one: its losses count, not its rate
		}
		if s.Transport != "shmring-lossy" && rep.Messages != sent {
			return result{}, fmt.Errorf("subscriber %d received %d of %d messages", i, rep.Messages, sent)
		}
		rate := float64(rep.Messages) / rep.Seconds
		sum += rate
		res.MinMsgsPerSec = min(res.MinMsgsPerSec, rate)
		res.Messages += rep.Messages
	}
	res.MsgsPerSec = sum / float64(s.Subscribers)
	res.MBPerSec = res.MsgsPerSec * float64(s.Size) / 1e6
	res.Seconds, res.CPUSeconds = pubSecs, cpu
	return res, nil
}

// waitSubscribed waits until n subscribers have attached to r.
func waitSubscribed(ctx context.Context, r *shmring.Ring, n int) error {
	for ctx.Err() == nil {
		st, err := r.Stats()
		if err != nil {
			return err
		}
		if st.Fanout.Attaches >= uint64(n) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("the subscribers did not attach")
}

// fanoutPeer is a subscriber: it receives until the end marker, checks the
// sequence (for a lossy one, that every gap is a reported loss), and
// prints its fanoutReport.
func fanoutPeer(ctx context.Context, s spec) error {
	var recv func([]byte) (int, error)
	switch s.Transport {
	case "uds-buffered":
		c, err := net.Dial("unix", s.Addr)
		if err != nil {
			return err
		}
		defer c.Close()
		sc := newStreamConn(c, nil, false, c)
		recv = sc.recv
	default:
		policy, err := waitPolicy(s.Wait)
		if err != nil {
			return err
		}
		r, err := shmring.Open(s.Addr, shmring.WithWaitPolicy(policy), shmring.WithEOF(false))
		if err != nil {
			return err
		}
		defer r.Close()
		var opts []shmring.Option
		if s.Transport == "shmring-lossy" || s.ID >= s.Subscribers {
			opts = append(opts, shmring.WithLossy())
		}
		c, err := r.Subscribe(opts...)
		if err != nil {
			return err
		}
		defer c.Close()
		recv = func(buf []byte) (int, error) { return c.Recv(ctx, buf) }
	}
	buf := make([]byte, s.Size)
	var rep fanoutReport
	var first int64
	next, pending := uint64(0), uint64(0) // pending: reported lost, not yet seen as a gap
	var lost *shmring.LostError           // outside the loop: errors.As would allocate it per message
	for {
		n, err := recv(buf)
		if err != nil && errors.As(err, &lost) {
			rep.Lost += lost.Messages
			pending += lost.Messages
			continue
		}
		if err != nil {
			return err
		}
		seq, _, err := check(buf[:n], s.Size)
		if err != nil {
			return err
		}
		if rep.Messages == 0 && first == 0 {
			first = stream.Now()
		}
		if seq == endSeq {
			rep.Seconds = float64(stream.Now()-first) / 1e9
			break
		}
		if seq != next+pending {
			return fmt.Errorf("message %d arrived after %d, with %d reported lost", seq, next, pending)
		}
		next, pending = seq+1, 0
		rep.Messages++
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}
