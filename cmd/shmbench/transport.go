//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/shmring/shmring"
)

// conn is one end of a transport between two processes, passing whole
// messages.
type conn interface {
	// send sends msg, or buffers it until flush.
	send(msg []byte) error
	// flush sends what send buffered: called when the sender has nothing
	// more to send for now.
	flush() error
	// recv receives one whole message into buf and returns its length.
	recv(buf []byte) (int, error)
	close() error
}

// streamConn frames messages over a byte stream (a socket or a pipe) with a
// 4-byte length. Unbuffered, each message is one write system call; buffered
// (uds-buffered), writes go through a 64 KiB bufio.Writer. The reader always
// reads through a 64 KiB bufio.Reader.
type streamConn struct {
	r     *bufio.Reader
	w     io.Writer
	bw    *bufio.Writer
	frame []byte
	c     []io.Closer
}

func newStreamConn(r io.Reader, w io.Writer, buffered bool, closers ...io.Closer) *streamConn {
	s := &streamConn{w: w, c: closers}
	if r != nil {
		s.r = bufio.NewReaderSize(r, 64<<10)
	}
	if buffered && w != nil {
		s.bw = bufio.NewWriterSize(w, 64<<10)
	}
	return s
}

func (s *streamConn) send(msg []byte) error {
	var hdr [4]byte
	le.PutUint32(hdr[:], uint32(len(msg)))
	if s.bw != nil {
		s.bw.Write(hdr[:])
		_, err := s.bw.Write(msg)
		return err
	}
	s.frame = append(append(s.frame[:0], hdr[:]...), msg...)
	_, err := s.w.Write(s.frame)
	return err
}

func (s *streamConn) flush() error {
	if s.bw != nil {
		return s.bw.Flush()
	}
	return nil
}

func (s *streamConn) recv(buf []byte) (int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(le.Uint32(hdr[:]))
	if n > len(buf) {
		return 0, fmt.Errorf("frame of %d bytes, buffer of %d", n, len(buf))
	}
	_, err := io.ReadFull(s.r, buf[:n])
	return n, err
}

func (s *streamConn) close() error {
	var errs []error
	for _, c := range s.c {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// ringConn passes messages through shmring: a producer on one ring, a
// consumer on another, or both (pingpong). Calls block up to the context.
// Batched (shmring-batch), send collects copies of the messages, up to
// batchBytes, and flush sends them with SendBatch: the ring's bufio.
type ringConn struct {
	ctx   context.Context
	rings []*shmring.Ring
	p     *shmring.Producer
	c     *shmring.Consumer

	batched bool
	pending [][]byte // views of arena
	arena   []byte
}

// batchBytes bounds what a batched ringConn collects before it sends.
const batchBytes = 16 << 10

func (r *ringConn) send(msg []byte) error {
	if !r.batched {
		return r.p.Send(r.ctx, msg)
	}
	if len(r.arena)+len(msg) > batchBytes {
		if err := r.flush(); err != nil {
			return err
		}
		if len(msg) > batchBytes {
			return r.p.Send(r.ctx, msg)
		}
	}
	if r.arena == nil {
		r.arena = make([]byte, 0, batchBytes)
	}
	start := len(r.arena)
	r.arena = append(r.arena, msg...)
	r.pending = append(r.pending, r.arena[start:])
	return nil
}

func (r *ringConn) flush() error {
	for msgs := r.pending; len(msgs) > 0; {
		k, err := r.p.SendBatch(r.ctx, msgs)
		if err != nil {
			return err
		}
		msgs = msgs[k:]
	}
	r.pending, r.arena = r.pending[:0], r.arena[:0]
	return nil
}

func (r *ringConn) recv(buf []byte) (int, error) {
	return r.c.Recv(r.ctx, buf)
}

func (r *ringConn) close() error {
	if r.p != nil {
		r.p.Close()
	}
	if r.c != nil {
		r.c.Close()
	}
	for _, rg := range r.rings {
		rg.Close()
	}
	return nil
}

// waitPolicy maps -waits names to policies: default (the library's),
// spin (never sleep), park (sleep at once), or spin=DURATION (poll that long,
// then sleep), to compare spin windows in one run.
func waitPolicy(name string) (shmring.WaitPolicy, error) {
	switch name {
	case "default":
		return shmring.DefaultWaitPolicy, nil
	case "spin":
		return shmring.SpinWaitPolicy, nil
	case "park":
		return shmring.WaitPolicy{}, nil
	}
	if d, ok := strings.CutPrefix(name, "spin="); ok {
		if spin, err := time.ParseDuration(d); err == nil && spin > 0 {
			return shmring.WaitPolicy{Spin: spin}, nil
		}
	}
	return shmring.WaitPolicy{}, fmt.Errorf("unknown wait policy %q (default, spin, park, spin=DURATION)", name)
}
