// Command consumer creates a ring, receives the verifiable stream that one or
// more cmd/producer processes send, checks every message, and prints a
// summary. It removes the ring when it exits.
//
// With -producers N above 1 the ring is a multi-producer ring. The consumer
// ends once N producers have attached and all of them have finished or died
// (a dead producer is noticed through its liveness lock, and a claim it left
// unfinished is skipped and counted as recovered).
//
// With -subscribe reliable or -subscribe lossy it opens a fan-out ring that
// cmd/producer -subscribers made, joins it as a subscriber of that kind, and
// verifies what it gets the same way, without creating or removing the ring.
// A lossy subscriber may lose messages: it passes when the messages missing
// from the stream are exactly the ones the ring reported lost. An evicted
// reliable subscriber fails.
//
// Exit status: 0 when every message committed arrived once, in order and
// intact; 1 when anything was lost, duplicated, reordered or corrupt, or the
// N producers never all came and went; 2 for usage or setup errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/bytesize"
	"github.com/shmring/shmring/internal/ringflag"
	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/internal/stream"
	"github.com/shmring/shmring/internal/term"
	"github.com/shmring/shmring/ring"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("consumer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		loc       ringflag.Location
		policy    ringflag.Policy
		capacity  = bytesize.Value(16 << 20)
		maxMsg    bytesize.Value
		producers = fs.Int("producers", 1, "end after `N` producers have finished or died (N > 1: a multi-producer ring)")
		asJSON    = fs.Bool("json", false, "print the summary as one JSON object")
		idle      = fs.Duration("idle", 30*time.Second, "give up after `DURATION` without a message")
		force     = fs.Bool("force", false, "remove a ring (or the empty file of a creator that died) left at the same name or path first")
		replace   = fs.Bool("replace", false, "replace a ring left at the same name or path only if no process has it open")
		subscribe = fs.String("subscribe", "", "join a fan-out ring made by cmd/producer -subscribers as a `KIND` subscriber, reliable or lossy, instead of creating a ring")
		oldest    = fs.Bool("oldest", false, "with -subscribe: start at the oldest message in the ring, not at the newest")
		wait      = fs.Duration("wait", 10*time.Second, "with -subscribe: how long to wait for the ring to appear")
	)
	loc.Register(fs)
	policy.Register(fs)
	fs.Var(&capacity, "capacity", "data area `SIZE`, a power of two (64KiB, 16MiB, ...)")
	fs.Var(&maxMsg, "max-message", "largest message `SIZE` (default: capacity/2 - 16)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: consumer [flags]\n\nCreates a ring, verifies the messages cmd/producer sends, removes the ring.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *producers < 1 || *idle <= 0 {
		fmt.Fprintln(stderr, "consumer: -producers must be at least 1, -idle positive, and no arguments follow the flags")
		return 2
	}
	if *subscribe != "" {
		if *subscribe != "reliable" && *subscribe != "lossy" {
			fmt.Fprintf(stderr, "consumer: -subscribe %q: want reliable or lossy\n", *subscribe)
			return 2
		}
		return subscribeRun(loc, policy.WaitPolicy, *subscribe == "lossy", *oldest, *producers, *wait, *idle, *asJSON, stdout, stderr)
	}
	opts := []shmring.Option{
		shmring.WithCapacity(uint64(capacity)),
		shmring.WithWaitPolicy(policy.WaitPolicy),
		shmring.WithEOFAfter(*producers), // the end: N came, and all went
	}
	if *producers > 1 {
		opts = append(opts, shmring.WithMultiProducer(), shmring.WithSlots(max(*producers, ring.DefaultSlots)))
	}
	if *replace {
		opts = append(opts, shmring.WithReplaceUnused())
	}
	if maxMsg != 0 {
		opts = append(opts, shmring.WithMaxMessage(int(min(maxMsg, 1<<30))))
	}
	// On Windows a killed process's handles may close a moment after it
	// is reported dead (seen under Wine): until then the file of its ring
	// can be neither removed (a sharing violation) nor made anew (a
	// removed file keeps its name while a handle is open). -force gives
	// that a moment.
	var r *shmring.Ring
	var err error
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if *force {
			if err = removeStale(loc); err != nil {
				if stillHeld(err) && time.Now().Before(deadline) {
					continue
				}
				fmt.Fprintf(stderr, "consumer: -force: %v\n", err)
				return 2
			}
		}
		r, err = loc.Create(opts...)
		if !*force || !errors.Is(err, os.ErrExist) || !time.Now().Before(deadline) {
			break
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "consumer: %v\n", err)
		if errors.Is(err, os.ErrExist) {
			fmt.Fprintln(stderr, "consumer: another consumer may be running; -force removes a stale ring")
		}
		return 2
	}
	defer r.Close()
	defer r.Remove()
	c, err := r.Consumer()
	if err != nil {
		fmt.Fprintf(stderr, "consumer: %v\n", err)
		return 2
	}
	defer c.Close()

	s := startSession(stderr, *idle)
	defer s.end()
	ctx, received, idleSince := s.ctx, &s.received, &s.idleSince

	checker := stream.NewChecker()
	var first, last time.Time
	var n uint64
	complete := false
	// One guard for the whole loop: a peer that truncates the ring's file
	// makes this an error (ErrTruncated) instead of a SIGBUS crash.
	err = shmring.Guarded(func() error {
		for {
			msg, err := c.TryPeek()
			if errors.Is(err, shmring.ErrEmpty) {
				received.Store(n)
				idleSince.Store(stream.Now())
				msg, err = c.Peek(ctx)
				idleSince.Store(0)
			}
			if errors.Is(err, io.EOF) {
				complete = true
				return nil
			}
			if err != nil {
				if cause := context.Cause(ctx); cause != nil {
					err = cause
				}
				return err
			}
			if n == 0 {
				first = time.Now()
			}
			checker.Add(msg)
			c.Release()
			n++
			if n%1024 == 0 {
				received.Store(n)
			}
		}
	})
	if err != nil {
		fmt.Fprintf(stderr, "\nconsumer: stopped with %d of %d producers finished: %v\n", checker.Finished(), *producers, err)
	}
	last = time.Now()
	seconds := 0.0
	if n > 0 {
		seconds = last.Sub(first).Seconds()
	}
	res := checker.Result(seconds)
	if st, err := r.Stats(); err == nil {
		res.Recovered, res.DeadProducers = st.Consumer.Recovered, st.Consumer.Reaped
	}
	return report(res, complete, *asJSON, stdout, stderr)
}

// report prints the summary and returns the exit status.
func report(res stream.Result, complete, asJSON bool, stdout, stderr io.Writer) int {
	if term.IsTerminal(stderr) {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if asJSON {
		json.NewEncoder(stdout).Encode(res)
	} else {
		printSummary(stdout, res)
	}
	if !res.OK() || !complete {
		return 1
	}
	return 0
}

// removeStale removes the ring at loc, but only if it is a ring (or a
// segment whose creator never finished it): -force must not delete an
// unrelated file given by mistake.
func removeStale(loc ringflag.Location) error {
	old, err := loc.Open(shmring.WithInitWait(10 * time.Millisecond))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err == nil:
		old.Close()
	case errors.Is(err, shmring.ErrNotReady):
	case errors.Is(err, shm.ErrTooSmall) && isEmpty(loc):
		// A creator that died between creating the file and sizing it.
	default:
		return fmt.Errorf("not removing %s, which is not a ring: %w", loc, err)
	}
	if loc.Path != "" {
		return os.Remove(loc.Path)
	}
	return shmring.Remove(loc.Name)
}

// stillHeld reports whether err is Windows's refusal to remove a file that
// a process still has open or mapped (ERROR_SHARING_VIOLATION).
func stillHeld(err error) bool {
	return runtime.GOOS == "windows" && errors.Is(err, syscall.Errno(32))
}

// isEmpty reports whether the file at loc exists and holds no byte.
func isEmpty(loc ringflag.Location) bool {
	path := loc.Path
	if path == "" {
		var err error
		if path, err = shm.NamePath(loc.Name); err != nil {
			return false
		}
	}
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == 0
}

// session is what a receiving run shares: a context that SIGINT, SIGTERM
// or the idle watchdog ends, and the messages received so far and since
// when the ring has been found empty, for the watchdog and the progress
// line.
type session struct {
	ctx       context.Context
	cancel    context.CancelCauseFunc
	stop      func()
	received  atomic.Uint64 // messages so far, updated every 1024 and when idle
	idleSince atomic.Int64  // stream.Now() when the ring was found empty, or 0
}

// startSession starts the watchdog (idle without a message ends the run)
// and, on a terminal, the progress line.
func startSession(stderr io.Writer, idle time.Duration) *session {
	s := &session{}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.stop = stop
	go stream.Watchdog(s.ctx, s.cancel, &s.idleSince, idle, fmt.Errorf("no message for %v", idle))
	if term.IsTerminal(stderr) {
		go progress(s.ctx, stderr, &s.received)
	}
	return s
}

func (s *session) end() {
	s.cancel(nil)
	s.stop()
}

func progress(ctx context.Context, w io.Writer, received *atomic.Uint64) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	prev, prevT := uint64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := received.Load()
			rate := float64(n-prev) / now.Sub(prevT).Seconds()
			fmt.Fprintf(w, "\r\033[K%d messages, %.2f M msg/s", n, rate/1e6)
			prev, prevT = n, now
		}
	}
}

func printSummary(w io.Writer, r stream.Result) {
	status := "verified"
	if !r.OK() {
		status = "FAILED"
	}
	rate := fmt.Sprintf("%.2f M msg/s", r.MsgsPerSec/1e6)
	if r.MsgsPerSec < 1e5 {
		rate = fmt.Sprintf("%.0f msg/s", r.MsgsPerSec)
	}
	fmt.Fprintf(w, "%s: %d messages, %d bytes from %d producers in %.3fs: %s, %.1f MB/s\n",
		status, r.Messages, r.Bytes, r.Producers, r.Seconds, rate, r.MBPerSec)
	fmt.Fprintf(w, "lost %d, duplicates %d, reordered %d, corrupt %d\n", r.Lost, r.Duplicates, r.Reordered, r.Corrupt)
	if r.Subscriber != "" {
		fmt.Fprintf(w, "%s subscriber: the ring reported %d lost in %d laps; evicted %v\n", r.Subscriber, r.LostReported, r.Laps, r.Evicted)
	}
	if r.Samples > 0 {
		fmt.Fprintf(w, "latency (%d samples): p50 %v, p99 %v, p99.9 %v, max %v\n", r.Samples,
			time.Duration(r.LatencyNs.P50), time.Duration(r.LatencyNs.P99), time.Duration(r.LatencyNs.P999), time.Duration(r.LatencyNs.Max))
	}
	if r.Recovered > 0 || r.DeadProducers > 0 {
		fmt.Fprintf(w, "dead producers %d, unfinished claims recovered %d\n", r.DeadProducers, r.Recovered)
	}
	for _, p := range r.PerProd {
		fmt.Fprintf(w, "producer %d: received %d of %d, finished %v\n", p.ID, p.Received, p.Sent, p.Finished)
	}
}
