//go:build unix

package main

import (
	"fmt"
	"io"
)

// The connect pattern: the peer listens on the transport (a Unix socket, or
// shmring's Listen for conn) and serves each connection it accepts: it
// echoes one message of -sizes bytes, then reads to the end and closes.
// This process, for -duration, connects, sends the message, reads the echo
// and closes, one connection at a time. A row's msgs_per_sec is connections
// a second, latency_ns the time of each whole connection (dial to close).
// The echo makes each connection one the server has accepted and used: a
// Unix socket's connect returns before the server accepts.

func runConnect(s spec) (result, error) {
	cc, err := startConnCase(s)
	if err != nil {
		return result{}, err
	}
	defer cc.close()
	s = cc.s
	msg, buf := make([]byte, s.Size), make([]byte, s.Size)
	once := func(seq uint64) error {
		c, err := cc.dial(cc.ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		stamp(msg, seq, 0)
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if got, _, err := check(buf, s.Size); err != nil || got != seq {
			return fmt.Errorf("echo of connection %d: sequence %d, %v", seq, got, err)
		}
		return c.Close()
	}
	n, secs, h, err := cc.measure(once)
	if err != nil {
		return result{}, err
	}
	if err := once(endSeq); err != nil {
		return result{}, fmt.Errorf("the last connection: %w", err)
	}
	return cc.finish(n, secs, h)
}

// connectPeer accepts connections and serves each (see runConnect) until
// one brings the end marker.
func connectPeer(s spec) error {
	ln, err := listenFor(s)
	if err != nil {
		return err
	}
	defer ln.Close()
	quit := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				quit <- err
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, s.Size)
				if _, err := io.ReadFull(c, buf); err != nil {
					return // a client that gave up; it reports its error
				}
				seq, _, err := check(buf, s.Size)
				if err != nil {
					quit <- err
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
				io.Copy(io.Discard, c) // to the client's close
				if seq == endSeq {
					quit <- nil
				}
			}()
		}
	}()
	return <-quit
}
