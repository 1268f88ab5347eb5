package ring

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// feed runs waits through c, each taking step and completing perWait
// messages, and ending asleep when asleep says so, until c has gone
// through the given number of phases; it returns the time reached.
func feed(c *spinControl, now time.Time, progress *uint64, step time.Duration, perWait func(phase int) uint64, asleep func(phase int) bool, phases int) time.Time {
	for n := 0; n < phases; {
		before := c.phase
		now = now.Add(step)
		*progress += perWait(c.phase)
		c.clock = func() time.Time { return now }
		c.waited(*progress, asleep(c.phase))
		if c.phase != before {
			n++
		}
	}
	return now
}

// perWait returns a feed's messages per wait: spinning in the phases that
// spin, sleeping in the phase that sleeps at once.
func perWait(spinning, sleeping uint64) func(phase int) uint64 {
	return func(phase int) uint64 {
		if phase == explorePark {
			return sleeping
		}
		return spinning
	}
}

// TestSpinControl checks the choices of the spin controller: it keeps
// spinning while spins catch what they wait for and sleeping is no faster;
// it sleeps at once when most spinning waits ended asleep anyway, or when
// sleeping at once measured clearly faster, but keeps spinning when
// spinning measured clearly faster even if its waits ended asleep; and it
// measures again, so a change of workload changes its choice back.
func TestSpinControl(t *testing.T) {
	p := DefaultWaitPolicy
	full := p.Spin + p.Yield
	var c spinControl
	var progress uint64
	now := time.Unix(1000, 0)
	if c.window(p) != full {
		t.Fatalf("a new waiter's window is %v, want %v", c.window(p), full)
	}
	one := func(int) uint64 { return 1 }
	never := func(int) bool { return false }
	// The first exploit phase lasts exploitWaits and exploitTime.
	c.clock = func() time.Time { return now }
	c.waited(0, false)
	for range exploitWaits - 1 {
		now = now.Add(time.Microsecond)
		progress++
		c.waited(progress, false)
	}
	if c.phase != exploit {
		t.Fatalf("phase %d after %d waits in %v: the exploit phase must last %v too", c.phase, exploitWaits, 1023*time.Microsecond, exploitTime)
	}
	// Spins that catch everything, at the same rate either way: spin.
	now = feed(&c, now, &progress, 100*time.Microsecond, one, never, 3)
	if c.park || c.window(p) != full {
		t.Fatalf("spins catching everything: park %v, window %v", c.park, c.window(p))
	}
	// Spinning waits that mostly end asleep: sleep at once.
	always := func(int) bool { return true }
	now = feed(&c, now, &progress, 200*time.Microsecond, one, always, 3)
	if !c.park || c.window(p) != 0 {
		t.Fatalf("spins that never catch anything: park %v, window %v", c.park, c.window(p))
	}
	// Back to spins that catch everything: spinning again.
	now = feed(&c, now, &progress, 10*time.Microsecond, one, never, 3)
	if c.park {
		t.Fatal("the controller did not go back to spinning when spins caught everything again")
	}
	// Spins catch everything, but sleeping at once gets twice the
	// messages through (the spinning starves the peer): sleep at once.
	now = feed(&c, now, &progress, 10*time.Microsecond, perWait(1, 2), never, 3)
	if !c.park {
		t.Fatal("sleeping measured twice as fast, and the controller kept spinning")
	}
	// Sleeping only a little faster (within parkMargin): spin.
	now = feed(&c, now, &progress, 10*time.Microsecond, perWait(100, 105), never, 3)
	if c.park {
		t.Fatalf("sleeping 5%% faster (margin %v) and the controller chose it", parkMargin)
	}
	// Most spinning waits end asleep, but spinning gets clearly more
	// messages through (the spinning thread runs the process's other
	// goroutines between its looks): spin.
	now = feed(&c, now, &progress, 200*time.Microsecond, perWait(120, 100), always, 3)
	if c.park {
		t.Fatal("spinning measured 20% faster though its waits ended asleep, and the controller chose to sleep at once")
	}
	// The same spins, but no faster than sleeping: sleep at once.
	feed(&c, now, &progress, 200*time.Microsecond, one, always, 3)
	if !c.park {
		t.Fatal("spins that end asleep and gain nothing, and the controller kept spinning")
	}
}

// TestSpinControlFollowsThePeer runs the controller for real: a producer
// goroutine that sends a message every 300 µs (longer than the default
// window: spins never catch it) must turn the consumer to sleeping at once,
// and one that then sends every 2 µs must turn it back to spinning (not on
// Windows, see below), each within a few seconds.
func TestSpinControlFollowsThePeer(t *testing.T) {
	if oneCPU() || runtime.GOMAXPROCS(0) < 2 {
		t.Skip("one CPU: the waiter sleeps at once whatever the controller says")
	}
	if testing.Short() {
		t.Skip("paced by the clock: not in -short (an emulated CPU cannot keep a 2 µs pace)")
	}
	r := heapRing(t, Config{Capacity: 1 << 16})
	p, c := pair(t, r, ConsumerOptions{Wait: DefaultWaitPolicy})
	var gap atomic.Int64
	gap.Store(int64(300 * time.Microsecond))
	ctx, cancel := context.WithCancel(context.Background())
	sent := make(chan error, 1)
	go func() {
		msg := make([]byte, 64)
		for ctx.Err() == nil {
			if err := p.Send(ctx, msg); err != nil {
				sent <- err
				return
			}
			for end := time.Now().Add(time.Duration(gap.Load())); time.Now().Before(end); {
				if gap.Load() > int64(10*time.Microsecond) {
					time.Sleep(time.Until(end))
				}
			}
		}
		sent <- ctx.Err()
	}()
	defer func() {
		cancel() // ends a Send blocked on a full ring too
		if err := <-sent; !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	}()
	buf := make([]byte, 64)
	until := func(want bool, what string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for c.wait.spin.park != want {
			if _, err := c.Recv(ctx, buf); err != nil {
				t.Fatalf("%s: %v (the controller never chose park=%v)", what, err, want)
			}
		}
	}
	until(true, "a message every 300 µs")
	if runtime.GOOS == "windows" {
		// A wake there releases a semaphore, through the wineserver
		// process under Wine: with both CPUs busy (a spinning consumer,
		// a producer pacing itself) sleeping at once measured faster even
		// against a 2 µs producer, and the controller rightly kept it.
		t.Log("the way back to spinning is checked where a wake is a futex, not on Windows")
		return
	}
	gap.Store(int64(2 * time.Microsecond))
	until(false, "a message every 2 µs")
}

// TestHoldControl checks the controller that decides, on one CPU, whether
// a sleeper holds its P (its "sleep at once" choice) or gives it up (its
// "spin" choice), as wait drives it: no wait counts as a failed spin, and
// its exploit phase lasts holdExploit. It gives the P up at first, holds it
// where holding measured clearly faster (a request and its reply in one
// goroutine each), and gives it up again where both measure the same.
func TestHoldControl(t *testing.T) {
	c := spinControl{exploitFor: holdExploit}
	var progress uint64
	now := time.Unix(1000, 0)
	if c.sleepsAtOnce() {
		t.Fatal("a new controller holds the P: it must give it up until holding measures faster")
	}
	// The first exploit phase outlasts spin's exploitTime.
	c.clock = func() time.Time { return now }
	c.waited(0, false)
	for range exploitWaits + 64 {
		now = now.Add(exploitTime / exploitWaits * 2)
		progress++
		c.waited(progress, false)
	}
	if c.phase != exploit {
		t.Fatalf("phase %d after %v: the exploit phase must last %v", c.phase, 2*exploitTime, holdExploit)
	}
	never := func(int) bool { return false }
	now = feed(&c, now, &progress, 10*time.Microsecond, perWait(1, 2), never, 3)
	if !c.sleepsAtOnce() {
		t.Fatal("holding the P measured twice as fast, and the controller gave it up")
	}
	feed(&c, now, &progress, 10*time.Microsecond, perWait(100, 105), never, 3)
	if c.sleepsAtOnce() {
		t.Fatalf("holding the P measured 5%% faster (margin %v), and the controller held it", parkMargin)
	}
}

// TestSpinControlLongSleeps: a waiter starts by measuring; an exploit phase
// that spins ends early once three waits in four ended in long sleeps
// (longSleep windows or more); a waiter that sleeps at once, with three
// sleeps in four that long, skips the measuring of spinning but for one
// round in maxSkipped+1; and once its sleeps shorten, it measures again.
func TestSpinControlLongSleeps(t *testing.T) {
	r := heapRing(t, Config{Capacity: 1024})
	_, c := pair(t, r, ConsumerOptions{Wait: DefaultWaitPolicy})
	if c.wait.spin.phase != exploreSpin {
		t.Fatalf("a new consumer's controller is in phase %d, want %d (measuring spinning)", c.wait.spin.phase, exploreSpin)
	}
	p := DefaultWaitPolicy
	window := p.Spin + p.Yield
	var sc spinControl
	var progress uint64
	now := time.Unix(1000, 0)
	one := func(int) uint64 { return 1 }
	always := func(int) bool { return true }
	// A zero controller spins; its waits end in long sleeps.
	sc.clock = func() time.Time { return now }
	waits := 0
	for sc.phase == exploit {
		if waits > exploitWaits {
			t.Fatal("the first exploit phase lasted its whole length though every wait ended in a long sleep")
		}
		sc.slept(time.Millisecond, p) // longer than longSleep windows
		now = now.Add(time.Millisecond)
		progress++
		sc.waited(progress, true)
		waits++
	}
	if sc.phase != exploreSpin || waits != exploreWaits {
		t.Fatalf("the exploit phase ended after %d waits in phase %d, want %d waits, then phase %d", waits, sc.phase, exploreWaits, exploreSpin)
	}
	// Measuring spinning ends after an eighth of its waits.
	for waits = 0; sc.phase == exploreSpin; waits++ {
		sc.slept(time.Millisecond, p) // longer than longSleep windows
		now = now.Add(time.Millisecond)
		progress++
		sc.waited(progress, true)
	}
	if sc.phase != explorePark || waits != exploreWaits/8 || !sc.spinFailed {
		t.Fatalf("measuring spinning ended after %d waits in phase %d (spins failed: %v), want %d waits, then phase %d", waits, sc.phase, sc.spinFailed, exploreWaits/8, explorePark)
	}
	// A feed slower than the window: sleep at once.
	now = feed(&sc, now, &progress, time.Millisecond, one, always, 1)
	if sc.phase != exploit || !sc.park {
		t.Fatalf("a slow feed: phase %d, park %v; want the exploit phase, sleeping at once", sc.phase, sc.park)
	}
	// An exploit phase of sleeps, sleepLen each; it reports the phase
	// that follows.
	phaseOf := func(sleepLen time.Duration, longEvery int) int {
		for i := 0; sc.phase == exploit; i++ {
			d := sleepLen
			if longEvery > 0 && i%longEvery != 0 {
				d = longSleep * window
			}
			sc.slept(d, p)
			now = now.Add(d)
			progress++
			sc.clock = func() time.Time { return now }
			sc.waited(progress, true)
			if i > 10*exploitWaits {
				t.Fatal("the exploit phase does not end")
			}
			if sc.phase == exploit && sc.waits == 0 {
				return exploit // it began again
			}
		}
		return sc.phase
	}
	for i := range maxSkipped {
		sleepLen, longEvery := longSleep*window, 0
		if i == 1 {
			sleepLen, longEvery = window, 4 // three sleeps in four long
		}
		if next := phaseOf(sleepLen, longEvery); next != exploit {
			t.Fatalf("exploit phase %d of long sleeps: phase %d follows, want the exploit phase again (%d)", i+1, next, exploit)
		}
	}
	// Once in maxSkipped+1 phases, it measures anyway.
	if next := phaseOf(longSleep*window, 0); next != exploreSpin {
		t.Fatalf("exploit phase %d of long sleeps in a row: phase %d follows, want %d (measuring spinning)", maxSkipped+1, next, exploreSpin)
	}
	now = feed(&sc, now, &progress, time.Millisecond, one, always, 2)
	if sc.phase != exploit || !sc.park {
		t.Fatalf("a slow feed again: phase %d, park %v", sc.phase, sc.park)
	}
	if next := phaseOf(window, 2); next != exploreSpin {
		t.Fatalf("half the sleeps short (the feed sped up): phase %d follows the exploit phase, want %d (measuring spinning)", next, exploreSpin)
	}
}
