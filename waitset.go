package shmring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shmring/shmring/internal/cpus"
	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/ring"
)

// A WaitSet waits in one goroutine until any of many Consumers has a message
// or any of many Producers has room: a server with a ring per client, a
// router, a process that reads several streams. It is to rings what epoll is
// to sockets: members are registered once, and Wait returns those that can
// make progress, level-triggered (a member stays ready until it is served).
//
//	set := shmring.NewWaitSet()
//	defer set.Close()
//	set.AddConsumer(c1)
//	set.AddConsumer(c2)
//	var ready []shmring.Ready
//	for {
//		ready, err = set.Wait(ctx, ready[:0])
//		if err != nil { ... }
//		for _, r := range ready {
//			if r.Err != nil { ... } // the member can no longer make progress
//			n, err := r.Consumer.TryRecv(buf) // a message, io.EOF, ErrRingRemoved...
//			...
//		}
//	}
//
// Cost: a member that Wait finds idle is armed once and stays armed across
// Waits until its ring moves: arming counts a waiter on its doorbell (so the
// peer's next commit makes one wake system call, as for any sleeper) and
// starts watching it, which costs one system call. Idle members cost nothing
// while they stay idle: no thread each, no timer, no wake-up. On Linux 5.16
// and later the doorbells of a process's sleepers are watched by shared
// threads, each waiting on up to 127 of them (futex_waitv), and the peers'
// processes by pidfds in Go's network poller, so a process waiting on a
// thousand idle rings runs about GOMAXPROCS + 12 threads and makes no
// wake-ups. On Windows a shared thread waits on up to 63 doorbells
// (WaitForMultipleObjects) and each peer process's handle has a thread.
// Elsewhere (macOS, FreeBSD) each armed member costs a goroutine that looks
// at its doorbell every 200 µs and its peers every liveness interval (see
// README, "Waiting on many rings").
//
// Thousands of goroutines each blocked in Recv or Send on their own ring
// share threads the same way, so a WaitSet is a choice of style, not of
// scale: it serves many rings from one goroutine, in one loop.
//
// The protocol (arming, a member armed across Waits, the watch of the
// value read before the last look) is modelled in ring/waitset.pml and
// checked with spin, with variants that must fail.
//
// Wait must not run in two goroutines at once. AddConsumer, AddProducer,
// Remove and Close may be called from any goroutine, also while Wait runs;
// a member added meanwhile is looked at before Wait sleeps again. A
// member's own methods must not run while a Wait does (Wait looks at it);
// between Waits they may. Closing a Consumer or Producer removes it from
// its set.
type WaitSet struct {
	mu      sync.Mutex
	members map[any]*member
	idle    []*member // not armed: looked at by the next Wait
	hot     []*member // returned by the last Wait: polled before arming
	bounded int       // armed members whose sleep has a deadline
	closed  bool
	waiting bool

	fmu   sync.Mutex
	fired []*member // armed members whose doorbell moved or peer died
	wake  chan struct{}
}

// Ready is a member of a WaitSet that can make progress: a Consumer whose
// next read returns at once (a message, io.EOF, ErrRingRemoved), or a
// Producer with room for the message size it was added with (or whose next
// send fails at once). Err, when not nil, is why the member can no longer
// make progress (ErrConsumerDead for a producer whose consumer died, a
// corrupt ring): remove it.
type Ready struct {
	Consumer *Consumer
	Producer *Producer
	Err      error
}

// key is the member's key in WaitSet.members.
func (r Ready) key() any {
	if r.Consumer != nil {
		return r.Consumer
	}
	return r.Producer
}

type member struct {
	s *WaitSet
	c *Consumer
	p *Producer
	n int // room a producer waits for

	armed    bool
	armedAt  ring.Armed
	inIdle   bool
	deadline time.Time // zero: none
	w        *futex.Watcher
	fire     func()
	flagged  atomic.Bool // in s.fired
	removed  bool
}

// ErrWaitSetBusy is returned by Wait while another Wait of the same set
// runs.
var ErrWaitSetBusy = errors.New("shmring: WaitSet.Wait called while another Wait runs")

// NewWaitSet returns an empty set.
func NewWaitSet() *WaitSet {
	return &WaitSet{members: map[any]*member{}, wake: make(chan struct{}, 1)}
}

// AddConsumer adds c to the set. A consumer belongs to one set at most.
func (s *WaitSet) AddConsumer(c *Consumer) error {
	if c.ring == nil {
		return fmt.Errorf("shmring: WaitSet.AddConsumer: %w", os.ErrClosed)
	}
	return s.add(c, &member{c: c})
}

// AddProducer adds p to the set: Wait reports it when a message of n bytes
// fits. A producer belongs to one set at most.
func (s *WaitSet) AddProducer(p *Producer, n int) error {
	if p.ring == nil {
		return fmt.Errorf("shmring: WaitSet.AddProducer: %w", os.ErrClosed)
	}
	if n < 0 || n > p.MaxMessage() {
		return fmt.Errorf("shmring: WaitSet.AddProducer: %w: %d bytes, the maximum is %d", ErrTooLarge, n, p.MaxMessage())
	}
	return s.add(p, &member{p: p, n: n})
}

func (s *WaitSet) add(key any, m *member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("shmring: WaitSet: %w", os.ErrClosed)
	}
	if _, ok := s.members[key]; ok {
		return errors.New("shmring: WaitSet: already a member of this set")
	}
	if !m.setOwner(s) {
		return errors.New("shmring: WaitSet: already a member of another set")
	}
	m.s = s
	m.fire = m.notify
	s.members[key] = m
	m.inIdle = true
	s.idle = append(s.idle, m)
	s.kick()
	return nil
}

// setOwner records s as the member's set, unless it has one.
func (m *member) setOwner(s *WaitSet) bool {
	if m.c != nil {
		if m.c.set != nil {
			return false
		}
		m.c.set = s
		m.c.c.OnPeerDeath(m.notify)
		return true
	}
	if m.p.set != nil {
		return false
	}
	m.p.set = s
	m.p.p.OnPeerDeath(m.notify)
	return true
}

// notify marks m to be looked at and wakes the Wait: its doorbell moved, or
// a peer it watches died. It runs on a watching thread.
func (m *member) notify() {
	if !m.flagged.CompareAndSwap(false, true) {
		return
	}
	s := m.s
	s.fmu.Lock()
	s.fired = append(s.fired, m)
	s.fmu.Unlock()
	s.kick()
}

func (s *WaitSet) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Remove takes a *Consumer or *Producer out of the set; it reports whether
// it was a member.
func (s *WaitSet) Remove(member any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.members[member]
	if !ok {
		return false
	}
	s.remove(member, m)
	return true
}

// remove takes m out; s.mu is held.
func (s *WaitSet) remove(key any, m *member) {
	s.disarm(m)
	m.removed = true
	if m.inIdle {
		for i, x := range s.idle {
			if x == m {
				s.idle = append(s.idle[:i], s.idle[i+1:]...)
				break
			}
		}
		m.inIdle = false
	}
	delete(s.members, key)
	for i, x := range s.hot {
		if x == m {
			s.hot[i] = nil
		}
	}
	if m.c != nil {
		m.c.c.OnPeerDeath(nil)
		m.c.set = nil
	} else {
		m.p.p.OnPeerDeath(nil)
		m.p.set = nil
	}
}

// Len returns the number of members.
func (s *WaitSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.members)
}

// Close removes every member and makes a running Wait return an error
// wrapping os.ErrClosed.
// It is idempotent.
func (s *WaitSet) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, m := range s.members {
		s.remove(k, m)
	}
	s.closed = true
	s.kick()
	return nil
}

// Wait waits until at least one member can make progress, or ctx ends, and
// appends the members that can to dst. It returns ctx's error when ctx
// ends first, and an error wrapping os.ErrClosed when the set is closed.
func (s *WaitSet) Wait(ctx context.Context, dst []Ready) ([]Ready, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting {
		return dst, ErrWaitSetBusy
	}
	s.waiting = true
	defer func() { s.waiting = false }()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if s.closed {
			return dst, fmt.Errorf("shmring: WaitSet: %w", os.ErrClosed)
		}
		if err := ctx.Err(); err != nil {
			return dst, err
		}
		s.takeFired()
		n := len(dst)
		for _, m := range s.idle {
			if ready, err := m.ready(); ready {
				dst = append(dst, m.report(err))
			}
		}
		if len(dst) == n && len(s.hot) > 0 {
			dst = s.pollHot(dst)
		}
		s.hot = s.hot[:0]
		if len(dst) > n {
			for _, r := range dst[n:] {
				s.hot = append(s.hot, s.members[r.key()])
			}
			return dst, nil
		}
		for _, m := range s.idle {
			m.arm()
		}
		bound := ring.Fence()
		idle := s.idle[:0]
		for _, m := range s.idle {
			ready, b, err := m.recheck()
			if ready {
				s.disarm(m)
				dst = append(dst, m.report(err))
				idle = append(idle, m)
				continue
			}
			m.inIdle = false
			m.w = futex.Watch(m.word(), m.val(), m.fire)
			if b > 0 {
				m.deadline = time.Now().Add(b)
				s.bounded++
			}
		}
		clear(s.idle[len(idle):])
		s.idle = idle
		if len(dst) > n {
			for _, r := range dst[n:] {
				s.hot = append(s.hot, s.members[r.key()])
			}
			return dst, nil
		}
		var tick <-chan time.Time
		if d := s.nextDeadline(bound); d > 0 {
			timer.Reset(d)
			tick = timer.C
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-ctx.Done():
		case <-tick:
		}
		s.mu.Lock()
		if tick != nil {
			timer.Stop()
			s.expire()
		}
	}
}

// pollHot looks again, for a moment, at the members the last Wait
// returned, before Wait arms them: a stream flowing into a ring drained to
// its last message has its next one on the way, and arming (a fence across
// processes, a system call) then sleeping costs more than the wait. With
// free cores it polls for hotPoll. A process that may use one CPU only does
// not poll: the producer needs that CPU. (Yielding it once first, as a
// blocking call does, was measured: the stream gained nothing, and the
// one-way latency at 1000 msg/s went from 14 to 22 µs.)
func (s *WaitSet) pollHot(dst []Ready) []Ready {
	look := func() bool {
		found := false
		for _, m := range s.hot {
			if m == nil || m.removed || !m.inIdle {
				continue
			}
			if ready, err := m.ready(); ready {
				dst = append(dst, m.report(err))
				found = true
			}
		}
		return found
	}
	if cpus.One() {
		return dst // the producer needs this CPU: arm and sleep
	}
	start := time.Now()
	for i := 0; ; i++ {
		if look() {
			return dst
		}
		if i%16 == 15 && time.Since(start) >= hotPoll {
			return dst
		}
	}
}

// hotPoll is how long Wait polls the members it returned last time before
// it arms them: the spin of DefaultWaitPolicy.
const hotPoll = 20 * time.Microsecond

// takeFired disarms the members whose doorbell moved or peer died, for a
// look; s.mu is held.
func (s *WaitSet) takeFired() {
	s.fmu.Lock()
	fired := s.fired
	s.fired = nil
	s.fmu.Unlock()
	for _, m := range fired {
		m.flagged.Store(false)
		if m.removed {
			continue
		}
		s.disarm(m)
		if !m.inIdle {
			m.inIdle = true
			s.idle = append(s.idle, m)
		}
	}
}

// expire sends the armed members whose sleep has run out for a look.
func (s *WaitSet) expire() {
	if s.bounded == 0 {
		return
	}
	now := time.Now()
	for _, m := range s.members {
		if m.armed && !m.deadline.IsZero() && !now.Before(m.deadline) {
			s.disarm(m)
			m.inIdle = true
			s.idle = append(s.idle, m)
		}
	}
}

// nextDeadline returns how long the sleep may last: the first member
// deadline, and bound (both 0 for none).
func (s *WaitSet) nextDeadline(bound time.Duration) time.Duration {
	d := bound
	if s.bounded > 0 {
		now := time.Now()
		for _, m := range s.members {
			if m.armed && !m.deadline.IsZero() {
				if left := max(m.deadline.Sub(now), time.Microsecond); d == 0 || left < d {
					d = left
				}
			}
		}
	}
	return d
}

// disarm stops m's watch and uncounts its waiter; s.mu is held.
func (s *WaitSet) disarm(m *member) {
	if !m.armed {
		return
	}
	if m.w != nil {
		m.w.Cancel()
		m.w = nil
	}
	if !m.deadline.IsZero() {
		m.deadline = time.Time{}
		s.bounded--
	}
	m.armed = false
	Guarded(func() error {
		if m.c != nil {
			m.c.c.Disarm()
		} else {
			m.p.p.Disarm()
		}
		return nil
	})
}

func (m *member) report(err error) Ready {
	if m.c != nil {
		return Ready{Consumer: m.c, Err: err}
	}
	return Ready{Producer: m.p, Err: err}
}

// ready is the member's look before arming.
func (m *member) ready() (ready bool, err error) {
	ferr := Guarded(func() error {
		if m.c != nil {
			ready, err = m.c.c.Ready()
		} else {
			ready, err = m.p.p.Ready(m.n)
		}
		return nil
	})
	if ferr != nil {
		return true, ferr
	}
	return ready || err != nil, err
}

// arm arms the member's doorbell. A member whose memory faults is left
// unarmed; its recheck reports the fault.
func (m *member) arm() {
	var a ring.Armed
	if Guarded(func() error {
		if m.c != nil {
			a = m.c.c.Arm()
		} else {
			a = m.p.p.Arm()
		}
		return nil
	}) == nil {
		m.armed = true
		m.armedAt = a
	}
}

func (m *member) word() *uint32 { return m.armedAt.Word }
func (m *member) val() uint32   { return m.armedAt.Val }

// recheck is the member's look after the fence.
func (m *member) recheck() (ready bool, bound time.Duration, err error) {
	if !m.armed {
		return true, 0, m.faultErr()
	}
	ferr := Guarded(func() error {
		if m.c != nil {
			ready, bound, err = m.c.c.Recheck()
		} else {
			ready, bound, err = m.p.p.Recheck(m.n)
		}
		return nil
	})
	if ferr != nil {
		return true, 0, ferr
	}
	return ready || err != nil, bound, err
}

// faultErr is the error of a member whose arming faulted.
func (m *member) faultErr() error {
	return Guarded(func() error {
		if m.c != nil {
			_, err := m.c.c.Ready()
			return err
		}
		_, err := m.p.p.Ready(m.n)
		return err
	})
}
