package ring

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Subscribers of a fan-out ring (fanout.go). A subscriber is a Consumer
// whose line is a subscriber line: it reads as a consumer does, publishes its
// position in its own line, and after each record it reads, looks at the
// frontier to learn whether the record may have been overwritten meanwhile.

var (
	// ErrFanout is returned by NewConsumer on a fan-out ring: its readers
	// subscribe (Subscribe).
	ErrFanout = errors.New("ring: a fan-out ring has subscribers, not a consumer")
	// ErrNotFanout is returned by Subscribe on a ring made for one
	// consumer.
	ErrNotFanout = errors.New("ring: not a fan-out ring")
	// ErrSubscribersFull is returned by Subscribe when every subscriber
	// line is taken.
	ErrSubscribersFull = errors.New("ring: no free subscriber line")
	// ErrEvicted is returned by every call of a reliable subscriber that
	// was evicted: it held the producers back for longer than the ring's
	// lag bound (Config.EvictAfter), and they no longer wait for it. Its
	// position may have been overwritten: Close it, and subscribe again.
	ErrEvicted = errors.New("ring: subscriber evicted for holding the producers back too long")
	// ErrLost is matched (errors.Is) by the *LostError a lossy subscriber's
	// read call returns when producers overwrote messages before it read
	// them.
	ErrLost = errors.New("ring: messages lost")
)

// LostError is returned by a read call of a lossy subscriber that was
// lapped: the producers overwrote Messages messages, of Bytes payload bytes
// in all, before it could read them. The subscriber has moved on to the
// oldest message still in the ring, which the next call returns. It matches
// ErrLost.
type LostError struct {
	Messages, Bytes uint64
}

func (e *LostError) Error() string {
	return fmt.Sprintf("ring: lapped by the producers: %d messages (%d bytes) lost", e.Messages, e.Bytes)
}

// Is makes errors.Is(err, ErrLost) true.
func (e *LostError) Is(target error) bool { return target == ErrLost }

// SubscriberOptions tune a subscriber.
type SubscriberOptions struct {
	// Lossy makes a subscriber the producers never wait for: when they lap
	// it, its next read call returns a *LostError and it goes on at the
	// oldest message left. Without it the subscriber is reliable: the
	// producers wait for it as for a consumer, up to the ring's lag bound.
	Lossy bool
	// Oldest starts the subscriber at the oldest message still in the
	// ring. Without it, it starts after the last message committed when it
	// attaches.
	Oldest bool
	// Wait, EOF, EOFAfter, Liveness and Name are as for a Consumer.
	Wait     WaitPolicy
	EOF      bool
	EOFAfter uint64
	Liveness time.Duration
	Name     string
}

// fanSub is what a Consumer needs as a subscriber.
type fanSub struct {
	lossy bool
	state *uint32 // its line's state word
	// base and baseBytes make the Consumer's message and byte counts
	// into the numbers of messages and bytes before its head since the
	// ring was created (a lap skips some).
	base, baseBytes       uint64
	lost, lostBytes, laps uint64 // mirrored into its line
	fenceWord             atomic.Uint64
	evicted               bool
}

// subscribeLockWait bounds how long Subscribe waits for the fan-out lock,
// which a producer holds while it moves the frontier.
const subscribeLockWait = time.Second

// Subscribe attaches a subscriber to a fan-out ring, in a free subscriber
// line (or a dead subscriber's). It starts after the last committed message,
// or at the oldest still in the ring (SubscriberOptions.Oldest), and reads
// every message from there on, as a Consumer does; Close detaches it.
func (r *Ring) Subscribe(o SubscriberOptions) (*Consumer, error) {
	if r.Removed() {
		return nil, ErrRingRemoved
	}
	if !r.fanout() {
		return nil, ErrNotFanout
	}
	line, err := r.takeLine()
	if err != nil {
		return nil, err
	}
	var ahead frontier
	if !o.Oldest {
		ahead = r.walkAhead()
	}
	ok, err := r.lockFanout(subscribeLockWait)
	if err != nil || !ok {
		r.unlock(line)
		if err == nil {
			err = fmt.Errorf("ring: the fan-out lock stayed held for %v (a producer stopped while it moved the frontier?)", subscribeLockWait)
		}
		return nil, err
	}
	start, err := r.subscribeAt(line, o, ahead)
	r.unlock(r.fanOff)
	r.spaceDoor.wakeAll() // a producer may have found the lock held, and waits
	if err != nil {
		atomic.StoreUint32(r.u32(line+consState), subFree)
		r.unlock(line)
		return nil, err
	}
	if o.Liveness <= 0 {
		o.Liveness = DefaultLiveness
	}
	c := &Consumer{
		r:         r,
		line:      line,
		pub:       r.u64(line + subPos),
		head:      start.pos,
		published: start.pos,
		batch:     max(r.capacity/8, RecordAlign),
		eof:       o.EOF,
		eofAfter:  max(o.EOFAfter, 1),
		name:      o.Name,
		wait:      waiter{policy: o.Wait, spin: spinControl{phase: exploreSpin}, barrier: barrierAvailable(), parks: r.u64(line + consParks), every: o.Liveness},
		fan:       &fanSub{lossy: o.Lossy, state: r.u32(line + consState), base: start.msgs, baseBytes: start.bytes},
	}
	c.wait.check = func() error { return c.noteCorrupt(c.maintain()) }
	c.wait.progress = &c.messages
	c.wait.peersFence = r.producersFence
	c.wait.peers = r.producerPIDs
	c.wait.inFlight = func() bool { return atomic.LoadUint64(r.tail) != c.head }
	return c, nil
}

// takeLine takes a free subscriber line, or a dead subscriber's, and
// returns its offset, holding its lock.
func (r *Ring) takeLine() (uint64, error) {
	for i := range r.subs {
		off := r.subLine(i)
		ok, err := r.locker.TryLock(int64(off))
		if err != nil {
			return 0, err
		}
		if ok {
			// Free, or its subscriber died: either way it is ours.
			return off, nil
		}
	}
	return 0, ErrSubscribersFull
}

// lineIndex is the index of the subscriber line at off.
func (r *Ring) lineIndex(off uint64) uint32 { return uint32((off - r.fanOff - LineSize) / LineSize) }

// walkAhead is the part of a start at the newest message done without the
// fan-out lock, so that the lock is held only for the last stretch: from
// the frontier, it walks over the committed records, counting, and after
// reading each one looks at the frontier, as a lossy subscriber does. A
// record the frontier passed meanwhile may have been overwritten as it was
// read: the walk starts again from the frontier, a few times at most. It
// returns a position with the messages and bytes before it, or a zero
// frontier if it did not get one.
func (r *Ring) walkAhead() frontier {
	var fw atomic.Uint64 // for loadFence
	for range 4 {
		f, err := r.loadFrontier()
		tail := atomic.LoadUint64(r.tail)
		if err != nil || !r.spanOK(f.pos, tail) {
			return frontier{}
		}
		passed := false
		for f.pos < tail {
			rec, ok, err := r.recordAt(f.pos)
			g := f
			if ok && err == nil {
				err = g.pass(r, rec)
			}
			loadFence(&fw) // the record's loads before the frontier's
			if atomic.LoadUint64(r.head) > f.pos {
				passed = true
				break
			}
			if !ok || err != nil || g.pos > tail {
				break // the end of what is committed (or corrupt: the locked walk says so)
			}
			f = g
		}
		if !passed {
			return f
		}
	}
	return frontier{}
}

// subscribeAt starts a subscriber in the line at off (its lock held), with
// the fan-out lock held so that the frontier stays where it is: at the
// frontier, or after the records committed from there on, walking on from
// ahead (walkAhead's result) when the frontier has not passed it.
func (r *Ring) subscribeAt(off uint64, o SubscriberOptions, ahead frontier) (frontier, error) {
	f, err := r.loadFrontier()
	if err != nil {
		return f, err
	}
	tail := atomic.LoadUint64(r.tail)
	if !r.spanOK(f.pos, tail) {
		return f, fmt.Errorf("%w: frontier %d and tail %d are not aligned positions with the tail at most a capacity (%d) ahead", ErrCorrupt, f.pos, tail, r.capacity)
	}
	if !o.Oldest {
		// Every record walkAhead counted was whole when it was read, and
		// the positions from the frontier on cannot change while the lock
		// is held: go on from where it got to, if the frontier is not
		// past it.
		if ahead.pos > f.pos && ahead.pos <= tail && ahead.msgs >= f.msgs && ahead.bytes >= f.bytes {
			f = ahead
		}
		// Walk to the end of what is committed, counting: the records
		// after the frontier cannot be overwritten while the lock is held.
		for f.pos < tail {
			rec, ok, err := r.recordAt(f.pos)
			if err != nil {
				return f, err
			}
			if !ok || rec.pos >= tail {
				// The end of what was committed when the tail was read.
				// A record past a gap too short for a header starts at
				// the tail: it was committed since.
				break
			}
			if err := f.pass(r, rec); err != nil {
				return f, err
			}
			if f.pos > tail {
				return f, fmt.Errorf("%w: records run past the tail %d", ErrCorrupt, tail)
			}
		}
	}
	for _, w := range []uint64{consMessages, consBytes, consParks, consWakes, consRecovered, consReaped, consCorrupt, consBatch, subLost, subLostBytes, subLaps} {
		atomic.StoreUint64(r.u64(off+w), 0)
	}
	// Counted among the lines in use before it can hold producers back:
	// the next frontier update, under the same lock, looks at it.
	r.useLine(r.lineIndex(off))
	atomic.StoreUint64(r.u64(off+subPos), f.pos)
	atomic.AddUint64(r.u64(off+consGen), 1)
	atomic.StoreUint32(r.u32(off+consPID), uint32(os.Getpid()))
	state := uint32(subReliable)
	if o.Lossy {
		state = subLossy
	}
	atomic.StoreUint32(r.u32(off+consState), state)
	atomic.AddUint64(r.u64(r.fanOff+fanAttaches), 1)
	return f, nil
}

// Lossy reports whether c is a lossy subscriber.
func (c *Consumer) Lossy() bool { return c.fan != nil && c.fan.lossy }

// fanPrecheck is the look a reliable subscriber takes at the start of each
// call: whether it was evicted.
func (c *Consumer) fanPrecheck() error {
	f := c.fan
	if f.evicted {
		return ErrEvicted
	}
	if !f.lossy && atomic.LoadUint32(f.state) == subEvicted {
		f.evicted = true
		return ErrEvicted
	}
	return nil
}

// fanCheck reports whether the record at the subscriber's head, just read,
// may have been overwritten meanwhile: whether the frontier passed it. For a
// lossy subscriber that means it was lapped (a *LostError, and it moves on);
// for a reliable one, that it was evicted.
func (c *Consumer) fanCheck() error {
	loadFence(&c.fan.fenceWord) // the record's loads before the frontier's
	return c.fanOverrun()
}

// overrun handles a frontier past the subscriber's head.
func (c *Consumer) overrun() error {
	r, f := c.r, c.fan
	if !f.lossy {
		if atomic.LoadUint32(f.state) == subEvicted {
			f.evicted = true
			return ErrEvicted
		}
		return fmt.Errorf("%w: the frontier passed reliable subscriber at %d, which was not evicted", ErrCorrupt, c.head)
	}
	fr, err := r.loadFrontier()
	if err != nil {
		return err
	}
	msgs, bytes := c.messages+f.base, c.bytes+f.baseBytes
	if fr.pos <= c.head || fr.msgs < msgs || fr.bytes < bytes {
		return fmt.Errorf("%w: frontier %d (%d messages, %d bytes before it) behind lapped subscriber at %d (%d, %d)", ErrCorrupt, fr.pos, fr.msgs, fr.bytes, c.head, msgs, bytes)
	}
	lost := &LostError{Messages: fr.msgs - msgs, Bytes: fr.bytes - bytes}
	f.base += lost.Messages
	f.baseBytes += lost.Bytes
	f.lost += lost.Messages
	f.lostBytes += lost.Bytes
	f.laps++
	c.head, c.inBatch, c.viewing = fr.pos, false, false
	storeRelease64(r.u64(c.line+subLost), f.lost)
	storeRelease64(r.u64(c.line+subLostBytes), f.lostBytes)
	storeRelease64(r.u64(c.line+subLaps), f.laps)
	c.publish()
	return lost
}

// fanOverrun is the look of a subscriber that found nothing to read, or a
// record it could not take for valid: if the frontier passed its head, it
// was lapped or evicted (overrun's error). Otherwise nil.
func (c *Consumer) fanOverrun() error {
	if atomic.LoadUint64(c.r.head) <= c.head {
		return nil
	}
	return c.overrun()
}

// ReleaseChecked is Release for a subscriber: it also reports whether the
// view may have been overwritten while it was held (for a lossy
// subscriber, a *LostError that counts it; for a reliable one, ErrEvicted).
// Then what the view showed may be torn, and must be dropped. On a Consumer
// of a ring with one consumer it is Release, and returns nil.
func (c *Consumer) ReleaseChecked() error {
	if !c.viewing {
		return nil
	}
	if c.fan != nil {
		if err := c.fanCheck(); err != nil {
			c.viewing = false
			return c.fail(err)
		}
	}
	c.release()
	return nil
}

// checkSubscribers is a waiting producer's look at the subscribers: it frees
// the lines of dead ones, and evicts the reliable ones that have held it
// back for longer than the lag bound.
func (p *Producer) checkSubscribers() error {
	r := p.r
	n, err := r.reapSubscribers()
	if err != nil {
		return err
	}
	if n > 0 {
		r.spaceDoor.ring()
	}
	bound := r.evictAfter()
	if bound <= 0 || p.fullSince == 0 || atomic.LoadUint64(r.head) != p.fullFront {
		return nil
	}
	if time.Duration(nanotime()-p.fullSince) >= bound && r.evictHolding(p.fullFront) > 0 {
		p.fullSince = 0
		r.spaceDoor.ring()
	}
	return nil
}

// noteFull records that a claim found no room with the frontier at front:
// the lag bound counts from the first such claim while the frontier stays
// where it is.
func (p *Producer) noteFull(front uint64) {
	if p.fullSince == 0 || p.fullFront != front {
		p.fullSince, p.fullFront = nanotime(), front
	}
}

// nanotime is a monotonic clock reading in nanoseconds.
func nanotime() int64 { return int64(time.Since(clockBase)) + 1 }

var clockBase = time.Now()
