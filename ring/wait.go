package ring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/shmring/shmring/internal/cpus"
	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/peerwatch"
)

// WaitPolicy says how a blocked call waits for the other side.
//
// A waiter first polls for Spin, yielding the processor (runtime.Gosched)
// every 16 looks so that the goroutines its process readied run meanwhile
// (except under NoPark, for callers who own their cores), then polls while
// yielding at every look until Spin+Yield has passed, then sleeps in the
// kernel on a doorbell until the other side rings it. Spinning costs one
// core while it lasts and reacts in about a cache-line transfer (~0.1-0.5
// µs here); a kernel sleep costs nothing while idle but about 20 µs to wake
// (tools/floor measures both on a machine). Peers ring a doorbell only when
// its waiter count is non-zero, so no wake-up system call is made while the
// other side is spinning.
//
// A process that may use one CPU at most (its CPU affinity allows one, or
// its control group's CPU limit, a container's, is one CPU or less) skips
// the polling, spinning and yielding of a policy that parks: whatever it
// waits for needs that CPU, and a waiter that keeps it only delays the peer.
// It sleeps in the kernel at once, as a blocked socket read would, after
// yielding the CPU once to the peer when a stream is flowing (more than one
// message since its last wait), so that the peer runs on until it has to
// wait. Its sleeping thread gives up the process's only P (its right to run
// Go code), as a goroutine blocked on a socket leaves it to the others,
// unless holding it through the sleep measured clearly faster (a request
// and its reply in one goroutine each: holding halves the round trip),
// measured as the Spin+Yield window is below. A policy with NoPark
// (SpinWaitPolicy) polls regardless: it is for callers who own their cores.
//
// Elsewhere the Spin+Yield window is used or skipped as measured: each
// Producer and Consumer now and then runs a few waits with the window and
// a few without, and skips it (sleeps at once) while skipping it got its
// messages through clearly faster, or while most waits with it ended
// asleep anyway and the window did not make them measurably faster (see
// spinControl in wait.go). A request/response exchange whose answers come
// within the window keeps spinning; a feed slower than the window stops
// burning a CPU for nothing.
//
// Before it sleeps, a waiter lets the goroutines its process readied run
// on its thread, as a goroutine blocked on a socket would: it yields
// (runtime.Gosched) until a yield comes back at once, at most four times,
// looking for what it waits for after each.
type WaitPolicy struct {
	// Spin is how long to poll, yielding to other goroutines every 16 looks
	// (unless NoPark).
	Spin time.Duration
	// Yield is how long to poll with runtime.Gosched at every look after
	// Spin.
	Yield time.Duration
	// NoPark disables kernel sleeps: the waiter keeps polling (yielding)
	// until the condition holds or the context ends. Lowest latency; one
	// core stays busy for as long as the wait lasts.
	NoPark bool
	// ParkSlice bounds one kernel sleep, after which the waiter re-checks
	// its context and its peers. Zero means no bound where the end of a
	// peer process and a cancelled context wake the sleeper as events
	// (Linux 5.16 and later: pidfd and futex_waitv), and DefaultParkSlice
	// elsewhere.
	ParkSlice time.Duration
}

// DefaultParkSlice bounds a kernel sleep when WaitPolicy.ParkSlice is 0 on
// systems where the sleeper cannot watch its peers' processes.
const DefaultParkSlice = 100 * time.Millisecond

// DefaultWaitPolicy is the policy used when none is given: spin long enough
// to catch a peer in a request/response exchange, then sleep.
//
// Chosen by measurement (cmd/shmbench, README "Choosing the wait policy"):
// a 64 B round trip stays at the spinning figure (290 ns p50, against 20 µs
// for a Unix socket); at 1000 messages per second, where every message has
// to wake a sleeper, one-way latency is below a socket's (25 µs p50 against
// 38 µs) for the same CPU time (0.26 against 0.25 CPU-seconds over 2 s, both
// processes). The cost of waiting is at most 50 µs of one core per wait that
// ends in a sleep. SpinWaitPolicy cuts that one-way latency to under 1 µs
// for one busy core per waiting side, all the time.
var DefaultWaitPolicy = WaitPolicy{Spin: 20 * time.Microsecond, Yield: 30 * time.Microsecond}

// SpinWaitPolicy never sleeps in the kernel.
var SpinWaitPolicy = WaitPolicy{Spin: time.Hour, NoPark: true}

// oneCPU reports whether this process may use one CPU at most (its
// affinity, or its container's CPU limit): then a spinning waiter holds the
// CPU its peer needs. A variable, for tests.
var oneCPU = cpus.One

// checkSlack is added to a sleep that ends when the next look at the peers
// is due, so that it is due when the sleep ends.
const checkSlack = 100 * time.Microsecond

// parkSliceNoBarrier bounds sleeps when this process could not register for
// futex.Barrier on a system that has it: a peer that commits with release
// stores might then slip a commit past our waiter count, and only the bound
// limits the delay. Where no process can have the barrier (Windows, macOS),
// every peer fences its commits and sleeps need no such bound.
const parkSliceNoBarrier = time.Millisecond

// waiter is the waiting half of the doorbell protocol for one side.
type waiter struct {
	policy  WaitPolicy
	barrier bool    // futex.Barrier is available in this process
	parks   *uint64 // shared counter of kernel sleeps, owned by this side
	nparks  uint64

	// check looks at the peers' liveness (and acts on it) every `every`
	// while waiting; an error from it ends the wait.
	check     func() error
	every     time.Duration
	lastCheck time.Time

	// progress counts this side's messages (the Producer's or the
	// Consumer's own count); lastProgress is its value when the last wait
	// ended. More than one message between two waits means a stream is
	// flowing (see wait).
	progress     *uint64
	lastProgress uint64

	// peers lists the PIDs of the processes whose death check must
	// notice. While it sleeps, the waiter watches them (package
	// peerwatch) instead of waking every `every` to look: a death
	// interrupts the sleep, and check runs. nil: look on a timer.
	peers   func(dst []int) []int
	watched map[int]func() // PID -> stop its watch
	pids    []int
	noWatch bool // watching failed here: look on a timer
	// inFlight reports whether what the waiter waits for is on its way:
	// claimed, not yet committed. Only a look at the peers settles a
	// claim that never completes (its producer died, or the memory was
	// overwritten), so such a sleep ends when the next look is due even
	// while peers are watched.
	inFlight func() bool
	died     atomic.Bool  // a watched peer ended since the last look
	alarm    *futex.Alarm // ends a sleep: a death, a cancelled context
	// ctxDone is the Done channel of the last context a sleep was given,
	// and ctxStop ends the registration that rings the alarm when that
	// context ends (see cancelRings).
	ctxDone   <-chan struct{}
	ctxStop   func() bool
	ctxRegs   int // registrations made, for tests
	deathHook atomic.Pointer[func()]

	fenceWord atomic.Uint64 // target of fence (atomic.Uint64: aligned on 32-bit too)
	// peersFence, if set, reports whether every peer fences between its
	// commit and its load of the waiter count: then a sleep needs no
	// barrier (fenced.go). Called after counting itself as a waiter.
	peersFence func() bool

	giveP bool // kernel sleeps give up the P at once (ConsumerOptions.GiveP)
	// quiet: on one CPU, the last wait of a doorbell with a bell lasted
	// quietSleep or more; the next one that gives its P up sleeps on the
	// futex rather than the bell (see doorbell.count).
	quiet bool
	// longs counts, on one CPU, the recent waits of a doorbell with a bell
	// that lasted holdSleep or more (up by one for each, down by one for
	// each shorter one, between 0 and 3); from 2 on, a wait does not keep
	// its P. One long sleep among short ones (a round trip's tail) does
	// not change the way it sleeps. given counts the waits since, and
	// after holdProbe of them longs starts again from 0.
	longs int8
	given int16

	spin spinControl // whether a wait spins before it sleeps
	// hold decides, on one CPU, whether a sleeper holds its P (the
	// controller's "sleep at once" choice) or gives it up (its "spin"
	// choice, the first): see wait.
	hold spinControl
}

// quietSleep: on one CPU, a sleep this long tells that the process is
// mostly idle between messages (a low rate), where what counts is the
// wake-up's path, and a futex sleeper's is shorter than a bell's (a read
// of the FIFO and a trip through the poller); the thread the runtime
// starts for a P given up, which a bell saves, then costs nothing on that
// path. Under load (HTTP on one CPU, sleeps of tens of microseconds) the
// bell saves that thread's switches (BENCHMARKS.md, "Bells"). A low rate
// of 1000 messages a second on one CPU, in one sitting: 10-12 µs p50
// sleeping on the futex, 13-19 µs on the bell.
const quietSleep = 250 * time.Microsecond

// holdSleep: on one CPU, a thread asleep in a system call this long has
// had its P taken back by the runtime's monitor, which looks every 20 µs
// or so while the process is busy and, with nothing else running, starts
// another thread to take the P: holding it then saves nothing, and costs
// that thread's wake-up and sleep. A sleep on the bell starts no thread.
// Two gRPC clients calling a server in another process on one CPU (calls
// of about 75 µs): 1.07-1.25x a Unix socket's call with 1.1-1.4 futex
// calls a call where holding was chosen (the socket's 0.4), 0.91-0.96x
// with this rule (and a read saved per wake-up of the bell).
const holdSleep = 20 * time.Microsecond

// holdProbe: after this many waits that did not keep the P because their
// sleeps were long, a waiter measures holding's sleeps again.
const holdProbe = 64

// holdExploit is how long hold keeps a choice before it measures again:
// longer than spin's, since measuring holding costs a process that needs
// to give the P up more than measuring spinning costs (a gRPC call on one
// CPU: 1.18-1.21x a Unix socket's with spin's 100 ms, 1.08-1.15x with
// 500 ms).
const holdExploit = 500 * time.Millisecond

// maxWatched bounds the peer processes one waiter watches (a ring has up to
// 4096 producer slots, each naming a PID that any process with the ring
// open may have written); beyond it the waiter looks on the timer.
const maxWatched = 64

// watching reports whether peers' deaths wake this waiter as events.
func (w *waiter) watching() bool {
	return w.peers != nil && w.check != nil && !w.noWatch && peerwatch.Supported() && futex.ManyPerThread()
}

// peerDied is the watch callback: note the death, and end the sleep if
// there is one. It does not touch the ring's memory, which another process
// may have truncated.
func (w *waiter) peerDied() {
	w.died.Store(true)
	w.alarm.Ring()
	if fn := w.deathHook.Load(); fn != nil {
		(*fn)()
	}
}

// watchPeers brings the set of watched peers up to date and runs check when
// it must: after a watched peer died, and after a new watch began (the peer
// may have died before it). It reports whether some peer cannot be watched
// (its PID names no process this one can see, as from another PID
// namespace, or this process itself): then the sleep must end when the
// next look is due.
func (w *waiter) watchPeers(died bool) (unwatched bool, err error) {
	if died {
		w.stopWatching() // the fired watches are gone; start afresh
	}
	if w.watched == nil {
		w.watched = map[int]func(){}
	}
	w.pids = w.peers(w.pids[:0])
	for pid, stop := range w.watched {
		if !slices.Contains(w.pids, pid) {
			stop()
			delete(w.watched, pid)
		}
	}
	look := died
	self := selfPID
	for _, pid := range w.pids {
		if pid <= 0 {
			// A line that holds what no peer writes (see
			// Ring.appendPID): nobody to watch for it, so look on
			// the timer.
			unwatched = true
			continue
		}
		if pid == self {
			// A peer in this process ends with it; but its lock can be
			// let go without its line being cleared (a test does), and
			// no event says so: look on the timer.
			unwatched = true
			continue
		}
		if _, ok := w.watched[pid]; ok {
			continue
		}
		if len(w.watched) >= maxWatched {
			// The PIDs come from shared memory: a scribbled slot table
			// must not make this process open thousands of pidfds.
			// Past the bound, look on the timer.
			unwatched = true
			continue
		}
		stop, err := peerwatch.Watch(pid, w.peerDied)
		if err != nil {
			if errors.Is(err, peerwatch.ErrNotSupported) {
				w.noWatch = true
			}
			unwatched = true
			look = true
			continue
		}
		w.watched[pid] = stop
		look = true
	}
	if look {
		w.lastCheck = time.Now()
		if err := w.check(); err != nil {
			return unwatched, err
		}
	}
	return unwatched, nil
}

// cancelRings arranges for ctx's end to ring the alarm. The registration
// outlives the sleep: a side that sleeps again and again under one context
// (a connection's deadline) registers once, not at every sleep (a
// registration and its removal cost about 3% of a gRPC call's CPU on one
// CPU). A later context replaces it; a ring left from an older sleep is a
// spurious wake-up, which every sleeper allows. release ends it.
func (w *waiter) cancelRings(ctx context.Context) {
	done := ctx.Done()
	if done == w.ctxDone {
		return
	}
	if w.ctxStop != nil {
		w.ctxStop()
	}
	w.ctxDone, w.ctxStop = done, context.AfterFunc(ctx, w.alarm.Ring)
	w.ctxRegs++
}

// release ends every watch, and the alarm's registration with the last
// context; a side calls it when it closes.
func (w *waiter) release() {
	if w.ctxStop != nil {
		w.ctxStop()
		w.ctxDone, w.ctxStop = nil, nil
	}
	w.stopWatching()
}

// stopWatching ends every watch of a peer process.
func (w *waiter) stopWatching() {
	for pid, stop := range w.watched {
		stop()
		delete(w.watched, pid)
	}
}

// fence orders this side's last commit (or head store) before its next load
// of the other side's waiter count, when nothing else does: without
// futex.Barrier, a waiter cannot fence this process for it.
func (w *waiter) fence() {
	if !w.barrier && !releaseIsFence {
		w.fenceWord.Add(0)
	}
}

// checkDue calls check if it has not run for `every` before now.
func (w *waiter) checkDue(now time.Time) error {
	if w.check == nil {
		return nil
	}
	if now.Sub(w.lastCheck) < w.every {
		return nil
	}
	w.lastCheck = now
	return w.check()
}

// wait returns when try reports true or an error, or when ctx ends. try must
// be safe to call repeatedly; its first true is the caller's success.
//
// The kernel-sleep step follows the order the model in wait.pml checks: read
// the doorbell, arm it at that value, count ourselves as a waiter, fence
// (futex.Barrier), re-check with try, and only then sleep on the value read
// first. Reading or arming the doorbell after the re-check would lose a
// wake-up that lands between the two.
func (w *waiter) wait(ctx context.Context, d doorbell, try func() (bool, error)) error {
	if !w.policy.NoPark && oneCPU() {
		// The peer can only make progress on the CPU this side would
		// spin on: hand it over at once (see WaitPolicy).
		if ok, err := try(); ok || err != nil {
			return err
		}
		if w.progress != nil && *w.progress-w.lastProgress > 1 {
			// A stream is flowing: the peer is likely runnable, and
			// yielding the CPU lets it run on until it has to wait,
			// where a sleep would be woken (and take the CPU back)
			// at its next message. Between single messages (a
			// request and its reply, a low rate), yielding only
			// puts this side behind in the scheduler's queue.
			futex.Yield()
			if ok, err := try(); ok || err != nil {
				w.lastProgress = *w.progress
				return err
			}
		}
		// Holding the P through the sleep makes the wake-up quick (a
		// round trip 3.0 µs against 5.4-6.3 µs giving it up), but on
		// one CPU it is the process's only P: the goroutines that
		// others ready meanwhile wait for the runtime's monitor to take
		// it back (a gRPC call between two processes took 158-161 µs
		// holding it, 45-46 µs giving it up, 42-43 µs over a Unix
		// socket). So it gives the P up unless holding it measures
		// clearly faster (hold: a spinControl whose "sleep at once" is
		// holding, chosen where it measures parkMargin faster; no
		// wait counts as a failed spin). Measured by throughput,
		// holding also costs tail latency where goroutines hand work
		// on (an HTTP round trip's p99 on one CPU: 159-181 µs where
		// holding was chosen at a 3% margin, 74-85 µs giving it up
		// always, the socket's 65-75), hence the wider margin.
		//
		// Where the doorbell has a bell, a sleeper also gives the P up
		// (to sleep on the bell) once its sleeps last holdSleep or
		// more (see holdSleep and longs).
		w.hold.exploitFor = holdExploit
		var start time.Time
		if d.bell != nil {
			start = time.Now()
		}
		long := w.longs >= 2
		err := w.park(ctx, d, try, w.giveP || !w.hold.sleepsAtOnce() || long)
		if d.bell != nil {
			slept := time.Since(start)
			w.quiet = slept >= quietSleep
			switch {
			case long:
				// A sleep on the bell lasts longer than one that
				// holds (its wake-up path is longer), so its length
				// says nothing of holding's: try holding again now
				// and then.
				if w.given++; w.given >= holdProbe {
					w.longs, w.given = 0, 0
				}
			case slept >= holdSleep:
				w.longs = min(w.longs+1, 3)
			default:
				w.longs = max(w.longs-1, 0)
			}
		}
		if w.progress != nil {
			w.lastProgress = *w.progress
			w.hold.waited(*w.progress, false)
		}
		return err
	}
	start := time.Now()
	parked, err := w.spinThenPark(ctx, d, try, start, w.spin.window(w.policy))
	if !w.policy.NoPark && w.progress != nil {
		if parked {
			// A sleep costs far more than a clock read.
			w.spin.slept(time.Since(start), w.policy)
		}
		w.spin.waited(*w.progress, parked)
	}
	return err
}

// spinControl decides whether a wait spins (and yields) for the policy's
// Spin+Yield before it sleeps, or sleeps at once. Spinning pays when what
// the waiter waits for comes within the window; when it comes later, the
// spin burned a CPU, on a machine with few cores often one the peer's own
// goroutines needed. The length of the waits alone does not tell: either
// way of waiting makes its own waits look right for it, and a spin that
// ends asleep may still have paid (see waited). So the waiter spins, and
// now and then measures: a few waits spinning, then a few sleeping at
// once. It sleeps at once from then on if sleeping at once got this side
// through clearly more messages per second (parkMargin), or if most of the
// spinning waits ended asleep anyway and spinning was not measurably
// faster (spinMargin; a feed whose rate the sender sets, slower than the
// window: the spins only burn a CPU); otherwise it spins. Where both go as
// fast and spins catch messages, spinning keeps its lower latency. A
// spinning waiter yields to the process's other goroutines every few
// looks, so that spinning does not hold up the goroutines it readied.
//
// A waiter starts by measuring (exploreWaits waits spinning, as many
// sleeping at once) rather than by spinning through a whole exploit phase
// (exploitWaits: a second at a thousand messages a second; the zero
// spinControl does start there, which the controller of holding the P on
// one CPU wants). Waits that end in long sleeps (longSleep windows or
// more: such a feed) tell that spinning cannot pay: spins cannot catch
// that feed and only burn a core, and beside busy threads the messages
// that met a spinning waiter came late (shmbench -load 2, a thousand
// messages a second: a one-way p99 of milliseconds with spinning phases,
// tens of microseconds without; BENCHMARKS.md). So a phase that spins
// ends as soon as three waits in four ended in long sleeps (a measuring
// phase after an eighth of its usual waits, an exploit phase after as many
// as a measuring phase has), and while the waiter sleeps at once with
// three sleeps in four long, it measures spinning only once in
// maxSkipped+1 rounds. Once its sleeps shorten (the feed speeds up), it
// measures at every round again.
type spinControl struct {
	phase         int  // exploit, exploreSpin or explorePark
	park          bool // the choice exploited: sleep at once
	waits         int  // waits in this phase
	parked        int  // of which ended in a sleep
	spinFailed    bool // most waits of the last spinning phase slept
	start         time.Time
	startProgress uint64
	spinRate      float64          // messages per second measured spinning
	clock         func() time.Time // nil: time.Now (tests set it)
	exploitFor    time.Duration    // the exploit phase's least length; 0: exploitTime
	// long counts the waits of this phase that ended in a sleep of
	// longSleep windows or more; skipped, the measurements of spinning
	// skipped in a row for long sleeps.
	long, skipped int
}

// maxSkipped bounds the measurements of spinning skipped in a row: a feed
// whose sleeps are mostly long may still have bursts that spinning would
// catch, and one phase in eight measures it.
const maxSkipped = 7

// longSleep: a sleep this many times the policy's Spin+Yield or longer
// could not have been saved by spinning.
const longSleep = 10

// slept notes a wait that ended asleep, d long.
func (c *spinControl) slept(d time.Duration, p WaitPolicy) {
	if d >= longSleep*(p.Spin+p.Yield) {
		c.long++
	}
}

const (
	exploit = iota
	exploreSpin
	explorePark
)

// The phases' lengths: each lasts at least so many waits and so long.
const (
	exploitWaits = 1024
	exploitTime  = 100 * time.Millisecond
	exploreWaits = 64
	exploreTime  = 2 * time.Millisecond
	// parkMargin: sleeping at once must be this much faster to be
	// chosen.
	parkMargin = 1.1
	// spinMargin: spinning whose waits mostly ended asleep must be
	// this much faster to go on. Smaller than parkMargin: a gain of
	// 5-10% is what spinning gives a gRPC call, and a feed paced by
	// its sender measures the same rate both ways to within 2%.
	spinMargin = 1.03
)

// window returns how long the next wait may spin and yield.
func (c *spinControl) window(p WaitPolicy) time.Duration {
	if p.NoPark || !c.sleepsAtOnce() {
		return p.Spin + p.Yield
	}
	return 0
}

// sleepsAtOnce reports whether the next wait takes the "sleep at once"
// choice: in the phase that measures it, or where it was chosen.
func (c *spinControl) sleepsAtOnce() bool {
	return c.phase == explorePark || c.phase == exploit && c.park
}

// waited counts a wait that just ended, with progress messages done by
// this side so far, and moves to the next phase when this one is over.
func (c *spinControl) waited(progress uint64, parked bool) {
	c.waits++
	if parked {
		c.parked++
	}
	// The clock is read only when the phase may end: at its first wait,
	// then every 64 waits once it has its minimum (a pingpong waits
	// millions of times a second, and a clock read costs 20-50 ns).
	least := exploreWaits
	if c.phase == exploit {
		least = exploitWaits
	}
	// Three waits in four ended in long sleeps: spinning cannot pay (see
	// spinControl). A phase that spins then ends early: an exploit phase
	// after exploreWaits waits, a measuring one after an eighth of that.
	longSleeps := 4*c.long >= 3*c.waits
	cut := longSleeps && (c.phase == exploit && !c.park && c.waits >= exploreWaits ||
		c.phase == exploreSpin && c.waits >= exploreWaits/8)
	if !cut && !c.start.IsZero() && (c.waits < least || (c.waits-least)%64 != 0) {
		return
	}
	now := time.Now()
	if c.clock != nil {
		now = c.clock()
	}
	if c.start.IsZero() {
		c.start, c.startProgress = now, progress
		return
	}
	elapsed := now.Sub(c.start)
	switch c.phase {
	case exploit:
		least := exploitTime
		if c.exploitFor > 0 {
			least = c.exploitFor
		}
		if elapsed < least && !cut {
			return
		}
	default:
		if elapsed < exploreTime && !cut {
			return
		}
		rate := float64(progress-c.startProgress) / elapsed.Seconds()
		if c.phase == exploreSpin {
			c.spinRate, c.spinFailed = rate, 2*c.parked > c.waits
		} else {
			// Sleep at once where it measured clearly faster, or
			// where most spins failed and spinning did not measure
			// faster: spins that end asleep may still pay,
			// for the thread they keep awake runs the process's
			// other goroutines between its looks (a gRPC call
			// between two processes: 127-137 µs sleeping at once,
			// 103-122 spinning at every wait, with most of its
			// spins failing).
			spinWins := c.spinRate > spinMargin*rate
			c.park = rate > parkMargin*c.spinRate || c.spinFailed && !spinWins
		}
	}
	next := (c.phase + 1) % 3
	if c.phase == exploit && c.park && longSleeps && c.skipped < maxSkipped {
		// Measuring spinning costs, and cannot find it faster: sleep
		// on at once.
		next = exploit
		c.skipped++
	} else if c.phase == exploit {
		c.skipped = 0
	}
	c.phase = next
	c.waits, c.parked, c.long, c.start, c.startProgress = 0, 0, 0, now, progress
}

// spinThenPark is wait's spinning, yielding and sleeping: it spins and
// yields for window at most (cut from the policy's Spin+Yield) before it
// sleeps.
func (w *waiter) spinThenPark(ctx context.Context, d doorbell, try func() (bool, error), start time.Time, window time.Duration) (parked bool, err error) {
	spin := min(w.policy.Spin, window)
	done := ctx.Done()
	for i := 0; spin > 0; i++ {
		if ok, err := try(); ok || err != nil {
			return false, err
		}
		spinPause()
		if i&15 == 15 && !w.policy.NoPark {
			// Let the goroutines this process readied run on
			// this thread: a spinning waiter otherwise holds its P
			// while they wait for another thread to be woken (an
			// HTTP/1.1 round trip over a Conn: 33-36 µs without
			// this, 10 µs with it). Alone, it costs a trip through
			// the scheduler every 16 looks, which a policy that
			// never sleeps (a dedicated core) does not pay: it
			// would delay a message that arrives meanwhile.
			runtime.Gosched()
		}
		if i&63 != 63 {
			continue
		}
		if done != nil {
			select {
			case <-done:
				return false, ctx.Err()
			default:
			}
		}
		now := time.Now()
		if err := w.checkDue(now); err != nil {
			return false, err
		}
		if now.Sub(start) >= spin {
			break
		}
	}
	for {
		now := time.Now()
		if !w.policy.NoPark && now.Sub(start) >= window {
			break
		}
		if err := w.checkDue(now); err != nil {
			return false, err
		}
		runtime.Gosched()
		if ok, err := try(); ok || err != nil {
			return false, err
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
	return true, w.park(ctx, d, try, w.giveP)
}

// maxYields bounds yieldWhileOthersRun; aloneYield is how long a yield
// takes at most when no other goroutine runs meanwhile (0.1-0.2 µs
// measured: a round trip through the scheduler).
const (
	maxYields  = 4
	aloneYield = time.Microsecond
)

// yieldWhileOthersRun yields (runtime.Gosched) until a yield comes back at
// once, so no goroutine of this process is left waiting for a thread when
// this one goes to sleep in the kernel; at most maxYields times, and it
// looks (try) after each yield. One yield is not always enough: a
// goroutine it lets run may yield in turn and be queued behind this one
// (gRPC's writer yields once before it writes, to gather more to send),
// and would then wait for another thread to be woken for it: 40-70 µs on
// the critical path of a gRPC call between two processes, as traced
// (examples/grpc's cmd/callpath).
func yieldWhileOthersRun(try func() (bool, error)) (bool, error) {
	for i := 1; ; i++ {
		start := time.Now()
		runtime.Gosched()
		if ok, err := try(); ok || err != nil {
			return ok, err
		}
		if i == maxYields || time.Since(start) < aloneYield {
			return false, nil
		}
	}
}

// park sleeps in the kernel until d rings, try succeeds or fails, or ctx
// ends; with give, the sleeping thread gives up its P at once (see
// futex.SleepGiving).
func (w *waiter) park(ctx context.Context, d doorbell, try func() (bool, error), give bool) error {
	slice := w.policy.ParkSlice
	if slice <= 0 {
		slice = DefaultParkSlice
		if w.check == nil || w.watching() {
			// Deaths and cancellation arrive as events: nothing to
			// look at on a timer.
			slice = futex.Forever
		}
	}
	if !w.barrier && futex.BarrierExists {
		slice = min(slice, parkSliceNoBarrier)
	}
	if w.alarm == nil {
		w.alarm = futex.NewAlarm()
	}
	// Let the goroutines this one readied (a reader hands what it read
	// to others) run on this thread before it blocks in the kernel:
	// a thread asleep in a system call leaves them to another thread,
	// which must be woken first (a gRPC call between two processes, 165-175
	// to 138-152 µs as measured).
	if ok, err := yieldWhileOthersRun(try); ok || err != nil {
		return err
	}
	if ctx.Done() != nil && (futex.ManyPerThread() || d.bell != nil) {
		// Cancellation rings the alarm: the sleep ends at once.
		w.cancelRings(ctx)
	} else if ctx.Done() != nil {
		// Cancellation rings the bell, so a sleeper notices it at once
		// instead of at the end of its slice. Other sleepers on the bell
		// wake spuriously and go back to sleep.
		// The ring's memory may be unmapped as soon as the caller has
		// its answer, so park does not return while the function runs.
		ran := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(ran)
			d.interrupt()
		})
		defer func() {
			if !stop() {
				<-ran
			}
		}()
	}
	for {
		// The alarm's value first, then every look: the context, the
		// peers, the ring. A ring of the alarm after this read ends
		// the sleep, so no cancellation or death can slip in between.
		av := w.alarm.Value()
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := w.checkDue(time.Now()); err != nil {
			return err
		}
		v := atomic.LoadUint32(d.word)
		d.arm(v)
		counted := d.count(give, w.quiet && oneCPU())
		if countedHook != nil {
			countedHook(counted)
		}
		timeout := slice
		if w.barrier && (w.peersFence == nil || !w.peersFence()) {
			// Pairs with the peer's commit-then-load-waiters, which has
			// no fence of its own (storeRelease64), unless every peer
			// fences its commits (fenced.go). Should the barrier
			// fail, a commit may slip past our count unseen: only a
			// short sleep then bounds the delay, as for a process that
			// could not register.
			if futex.Barrier() != nil {
				timeout = min(timeout, parkSliceNoBarrier)
			}
		}
		watching := w.watching()
		timer := w.check != nil && !watching
		if watching {
			// After counting ourselves: a peer that attaches from
			// now on rings the doorbell (FORMAT.md, "Doorbells"), and
			// one attached before is in the list.
			unwatched, err := w.watchPeers(w.died.Swap(false))
			if err != nil {
				d.uncount(counted)
				return err
			}
			timer = unwatched
		}
		ok, err := try()
		if ok || err != nil {
			d.uncount(counted)
			return err
		}
		if watching && w.inFlight != nil && w.inFlight() {
			timer = true
		}
		if timer {
			// Wake when the next look at the peers is due, not a slice
			// later: a dead peer is then noticed within one interval.
			timeout = min(timeout, time.Until(w.lastCheck.Add(w.every))+checkSlack)
		}
		if dl, has := ctx.Deadline(); has {
			if left := time.Until(dl); left < timeout {
				timeout = left
				if timeout <= 0 {
					d.uncount(counted)
					return context.DeadlineExceeded
				}
			}
		}
		switch {
		case counted.held:
			err = futex.SleepHeld(d.word, v, timeout, w.alarm, av)
		case counted.inc == bellWaiter:
			// The goroutine parks in the runtime's poller: no
			// thread sleeps, and none is started to take a P given
			// up (see futex.Bell).
			w.alarm.RingsBell(d.bell)
			err = d.bell.Sleep(d.word, v, timeout, w.alarm, av)
		default:
			err = futex.SleepGiving(d.word, v, timeout, w.alarm, av, give)
		}
		d.uncount(counted)
		w.nparks++
		storeRelease64(w.parks, w.nparks)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			// A sleep that fails at once would make this loop spin
			// for as long as the wait lasts: end the call instead.
			return fmt.Errorf("ring: sleeping on a doorbell: %w", err)
		}
		// Woken, most likely by what we wait for: look before arming
		// again, which costs a fence across processes.
		if ok, err := try(); ok || err != nil {
			return err
		}
	}
}

// countedHook, if set (by tests), is told how each sleeper counted itself.
var countedHook func(counted)

// selfPID is this process's id (os.Getpid is a system call each time).
var selfPID = os.Getpid()
