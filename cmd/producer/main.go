// Command producer opens a ring made by cmd/consumer and sends it a
// verifiable stream: each message carries this producer's id, a sequence
// number, a CLOCK_MONOTONIC send time and a checksum. A final message tells
// the consumer how many were sent. SIGINT or SIGTERM ends the stream early,
// with its final message. Several producers may send into one ring that
// cmd/consumer made with -producers N; give each its own -id.
//
// With -subscribers N it creates a fan-out ring with N subscriber lines
// instead of opening a ring (and removes it when it exits), waits for
// -wait-subscribers subscribers (cmd/consumer -subscribe) to attach, then
// sends the stream once, for all of them. Other producers open the same ring
// as usual (give the creator -multi for several).
//
// Exit status: 0 when every message was committed (all -count, or as many
// as were sent before SIGINT or SIGTERM); 1 when sending failed part-way,
// for example because the consumer died (unless -wait-consumer); 2 for usage
// or setup errors (such as a ring that never appeared).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/bytesize"
	"github.com/shmring/shmring/internal/ringflag"
	"github.com/shmring/shmring/internal/stream"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// run guards the whole run with one shmring.Guarded: a peer that truncates
// the ring's file makes that an error (exit 1) instead of a SIGBUS crash,
// at no cost per message.
func run(args []string, stderr io.Writer) (code int) {
	err := shmring.Guarded(func() error {
		code = send(args, stderr)
		return nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "producer: %v\n", err)
		return 1
	}
	return code
}

func send(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		loc     ringflag.Location
		policy  ringflag.Policy
		count   = fs.Uint64("count", 1_000_000, "send `N` messages (0: until SIGINT or SIGTERM)")
		size    = fs.Int("size", 64, "message size in `BYTES`")
		maxSize = fs.Int("max-size", 0, "if above -size, vary message sizes between -size and this many `BYTES`")
		rate    = fs.Float64("rate", 0, "send at most `MSGS_PER_SEC` (0: as fast as possible)")
		id      = fs.Uint("id", 0, "producer `ID` (0-65535) carried in every message")
		wait    = fs.Duration("wait", 10*time.Second, "how long to wait for the ring to appear")
		stall   = fs.Duration("stall", 30*time.Second, "give up after `DURATION` blocked on a full ring")
		waitCon = fs.Bool("wait-consumer", false, "when the consumer dies, wait for a new one instead of failing")
		batch   = fs.Int("batch", 1, "send `N` messages at a time with SendBatch (1: one by one)")

		subs     = fs.Int("subscribers", 0, "create a fan-out ring with `N` subscriber lines (removed at exit) instead of opening a ring")
		multi    = fs.Bool("multi", false, "with -subscribers: make it a multi-producer ring")
		lagBound = fs.Duration("lag-bound", 0, "with -subscribers: evict a reliable subscriber that holds the producers back this long (0: the default, negative: never)")
		waitSubs = fs.Int("wait-subscribers", 0, "before sending, wait (up to -wait) until `N` subscribers have attached")
		capacity = bytesize.Value(1 << 20)
	)
	fs.Var(&capacity, "capacity", "with -subscribers: data area `SIZE`, a power of two")
	loc.Register(fs)
	policy.Register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: producer [flags]\n\nSends a verifiable message stream into a ring created by cmd/consumer.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "producer: unexpected argument %q\n", fs.Arg(0))
		return 2
	case *size < stream.MinSize:
		fmt.Fprintf(stderr, "producer: -size %d is too small: the minimum is %d bytes, which hold the producer id, sequence number, timestamp and checksum\n", *size, stream.MinSize)
		return 2
	case *maxSize != 0 && *maxSize < *size:
		fmt.Fprintf(stderr, "producer: -max-size %d is below -size %d\n", *maxSize, *size)
		return 2
	case *batch < 1 || *batch > 4096:
		fmt.Fprintf(stderr, "producer: -batch %d: want 1 to 4096\n", *batch)
		return 2
	case *rate < 0 || *id >= stream.MaxProducers || *count >= stream.MaxSeq:
		fmt.Fprintf(stderr, "producer: -rate must be >= 0, -id below %d, -count below %d\n", stream.MaxProducers, uint64(stream.MaxSeq))
		return 2
	}
	hi := max(*size, *maxSize)

	// SIGINT or SIGTERM ends the stream early but cleanly: a final message
	// tells the consumer how many were sent.
	stopped, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := []shmring.Option{shmring.WithOpenWait(*wait), shmring.WithWaitPolicy(policy.WaitPolicy)}
	if *waitCon {
		opts = append(opts, shmring.WithWaitForConsumer())
	}
	var r *shmring.Ring
	var err error
	if *subs > 0 {
		copts := append(opts, shmring.WithSubscribers(*subs), shmring.WithCapacity(uint64(capacity)), shmring.WithLagBound(*lagBound))
		if *multi {
			copts = append(copts, shmring.WithMultiProducer())
		}
		r, err = loc.Create(copts...)
		if err == nil {
			defer r.Remove()
		}
	} else {
		r, err = loc.Open(opts...)
	}
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "producer: ring %s did not appear within %v (start cmd/consumer first): %v\n", loc, *wait, err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "producer: %v\n", err)
		return 2
	}
	defer r.Close()
	if hi > int(r.Info().MaxMessage) {
		fmt.Fprintf(stderr, "producer: messages of %d bytes exceed the ring's maximum of %d\n", hi, r.Info().MaxMessage)
		return 2
	}
	p, err := r.Producer()
	if err != nil {
		fmt.Fprintf(stderr, "producer: %v\n", err)
		return 2
	}
	defer p.Close()
	if err := waitSubscribers(stopped, r, *waitSubs, *wait); err != nil {
		fmt.Fprintf(stderr, "producer: %v\n", err)
		return 2
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	context.AfterFunc(stopped, func() { cancel(errStopped) })
	var blockedSince atomic.Int64 // stream.Now() when a Reserve began to wait, or 0
	go stream.Watchdog(ctx, cancel, &blockedSince, *stall, fmt.Errorf("blocked for %v on a full ring: is the consumer running?", *stall))

	enc := stream.NewEncoder(uint32(*id), hi)
	span := uint64(hi - *size + 1)
	var interval float64
	if *rate > 0 {
		interval = 1e9 / *rate
	}
	start := stream.Now()
	var ts int64
	seq := uint64(0)
	// With -batch, messages are encoded into arena and sent N at a time.
	var pending [][]byte
	arena := make([]byte, *batch*hi)
	for ; *count == 0 || seq < *count; seq++ {
		n := *size + int(seq*2654435761%span)
		flags := uint32(0)
		// Reading the clock costs about as much as sending a small
		// message, so at full speed one message in 64 is timed.
		if interval > 0 || seq%64 == 0 {
			if interval > 0 {
				stream.Pace(start + int64(float64(seq)*interval))
			}
			ts, flags = stream.Now(), stream.FlagTimed
		}
		if errors.Is(context.Cause(ctx), errStopped) {
			break
		}
		if *batch > 1 {
			m := arena[len(pending)*hi:][:n]
			enc.Encode(m, seq, ts, flags)
			if pending = append(pending, m); len(pending) < *batch {
				continue
			}
			if pending, err = sendBatch(ctx, p, pending, &blockedSince); err != nil {
				if errors.Is(context.Cause(ctx), errStopped) {
					seq++ // this message is encoded: it goes out with the rest
					break
				}
				return fail(stderr, ctx, seq, err)
			}
			continue
		}
		buf, err := reserve(ctx, p, n, &blockedSince)
		if err != nil {
			if errors.Is(context.Cause(ctx), errStopped) {
				break
			}
			return fail(stderr, ctx, seq, err)
		}
		enc.Encode(buf, seq, ts, flags)
		p.Commit(n)
	}
	if errors.Is(context.Cause(ctx), errStopped) {
		ctx, cancel = context.WithCancelCause(context.Background())
		defer cancel(nil)
		go stream.Watchdog(ctx, cancel, &blockedSince, *stall, fmt.Errorf("blocked for %v on a full ring: is the consumer running?", *stall))
	}
	if _, err := sendBatch(ctx, p, pending, &blockedSince); err != nil {
		return fail(stderr, ctx, seq, err)
	}
	buf, err := reserve(ctx, p, stream.MinSize, &blockedSince)
	if err != nil {
		return fail(stderr, ctx, seq, err)
	}
	enc.Encode(buf, seq, stream.Now(), stream.FlagFinal)
	p.Commit(stream.MinSize)
	return 0
}

var errStopped = errors.New("stopped by a signal")

// waitSubscribers waits until n subscribers have attached to the fan-out
// ring r since it was created, for up to wait.
func waitSubscribers(ctx context.Context, r *shmring.Ring, n int, wait time.Duration) error {
	if n <= 0 {
		return nil
	}
	deadline := time.Now().Add(wait)
	for {
		st, err := r.Stats()
		if err != nil {
			return err
		}
		if st.Fanout == nil {
			return fmt.Errorf("-wait-subscribers: %w", shmring.ErrNotFanout)
		}
		if st.Fanout.Attaches >= uint64(n) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d subscribers attached within %v", st.Fanout.Attaches, n, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fail(stderr io.Writer, ctx context.Context, seq uint64, err error) int {
	if cause := context.Cause(ctx); cause != nil {
		err = cause
	}
	fmt.Fprintf(stderr, "producer: message %d: %v\n", seq, err)
	return 1
}

// reserve reserves n bytes, and when the ring is full records for the
// watchdog since when it has been waiting.
func reserve(ctx context.Context, p *shmring.Producer, n int, blockedSince *atomic.Int64) ([]byte, error) {
	buf, err := p.TryReserve(n)
	if !errors.Is(err, shmring.ErrFull) {
		return buf, err
	}
	blockedSince.Store(stream.Now())
	defer blockedSince.Store(0)
	return p.Reserve(ctx, n)
}

// sendBatch sends msgs with SendBatch, and when the ring is full records for
// the watchdog since when it has been waiting. It returns what it did not
// send (nothing, unless err) as an empty slice of msgs' array.
func sendBatch(ctx context.Context, p *shmring.Producer, msgs [][]byte, blockedSince *atomic.Int64) ([][]byte, error) {
	rest := msgs
	for len(rest) > 0 {
		k, err := p.TrySendBatch(rest)
		if errors.Is(err, shmring.ErrFull) {
			blockedSince.Store(stream.Now())
			k, err = p.SendBatch(ctx, rest)
			blockedSince.Store(0)
		}
		if err != nil {
			return rest, err
		}
		rest = rest[k:]
	}
	return msgs[:0], nil
}
