package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/ringflag"
	"github.com/shmring/shmring/internal/stream"
)

// subscribeRun joins the fan-out ring at loc as a subscriber and verifies
// the stream it receives.
func subscribeRun(loc ringflag.Location, policy shmring.WaitPolicy, lossy, oldest bool, producers int, wait, idle time.Duration, asJSON bool, stdout, stderr io.Writer) int {
	r, err := loc.Open(shmring.WithOpenWait(wait), shmring.WithWaitPolicy(policy), shmring.WithEOFAfter(producers))
	if err != nil {
		fmt.Fprintf(stderr, "consumer: %v\n", err)
		return 2
	}
	defer r.Close()
	var opts []shmring.Option
	if lossy {
		opts = append(opts, shmring.WithLossy())
	}
	if oldest {
		opts = append(opts, shmring.WithOldest())
	}
	c, err := r.Subscribe(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "consumer: %v\n", err)
		return 2
	}
	defer c.Close()

	s := startSession(stderr, idle)
	defer s.end()
	ctx, received, idleSince := s.ctx, &s.received, &s.idleSince

	checker := stream.NewChecker()
	buf := make([]byte, c.MaxMessage())
	var first time.Time
	var n, lostReported, laps uint64
	complete, evicted := false, false
	var lost *shmring.LostError // outside the loop: errors.As would allocate it per message
	err = shmring.Guarded(func() error {
		for {
			k, err := c.TryRecv(buf)
			if errors.Is(err, shmring.ErrEmpty) {
				received.Store(n)
				idleSince.Store(stream.Now())
				k, err = c.Recv(ctx, buf)
				idleSince.Store(0)
			}
			switch {
			case err == nil:
			case errors.As(err, &lost):
				lostReported += lost.Messages
				laps++
				continue
			case errors.Is(err, io.EOF):
				complete = true
				return nil
			case errors.Is(err, shmring.ErrEvicted):
				evicted = true
				return err
			default:
				if cause := context.Cause(ctx); cause != nil {
					err = cause
				}
				return err
			}
			if n == 0 {
				first = time.Now()
			}
			checker.Add(buf[:k])
			n++
			if n%1024 == 0 {
				received.Store(n)
			}
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "\nconsumer: stopped with %d of %d producers finished: %v\n", checker.Finished(), producers, err)
	}
	seconds := 0.0
	if n > 0 {
		seconds = time.Since(first).Seconds()
	}
	res := checker.Result(seconds)
	res.Subscriber = "reliable"
	if lossy {
		res.Subscriber = "lossy"
	}
	res.LostReported, res.Laps, res.Evicted = lostReported, laps, evicted
	return report(res, complete && !evicted, asJSON, stdout, stderr)
}
