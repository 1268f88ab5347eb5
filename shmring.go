// Package shmring passes messages between processes on one machine through
// shared memory.
//
// One process creates a ring, a named segment (Create: a file in /dev/shm on
// Linux, a paging-file mapping Local\NAME on Windows) or a file at any path
// (CreateFile); others open it (Open, OpenFile). Producers write
// variable-length messages into it and one consumer reads them, in order,
// without system calls on the fast path: positions live in the shared memory
// itself, and a side that has to wait spins briefly and then sleeps in the
// kernel until the other side rings a doorbell (a futex on Linux, a named
// semaphore on Windows; timed polling on other systems). SendBatch sends many
// small messages with one claim.
//
//	r, err := shmring.Create("orders", shmring.WithCapacity(16<<20))
//	c, err := r.Consumer()
//	n, err := c.Recv(ctx, buf)
//
//	r, err := shmring.Open("orders")
//	p, err := r.Producer()
//	err = p.Send(ctx, msg)
//
// Messages are copied (Send, Recv) or written and read in place (Reserve and
// Commit, Peek and Release). Blocking calls take a context and return its
// error when it ends. The consumer sees io.EOF once the producers that
// attached have closed and the ring is drained (see WithEOF).
//
// A ring carries messages between processes that share memory and a kernel:
// it does not work across machines, even through a shared file system.
// FORMAT.md in the repository documents every byte of a ring.
//
// Package ring is the low-level API underneath: the layout and algorithms
// over a []byte. Its Info, Stats and WaitPolicy types appear in this
// package's API as they are.
package shmring

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/ring"
)

// Ring is an open ring segment. Producers and Consumers made from it share
// its mapping, which is unmapped once the Ring and all of them are closed.
// A Ring is safe for concurrent use; it must not be copied.
type Ring struct {
	seg  *shm.Segment
	r    *ring.Ring
	opts options
	name string // the name or path it was opened by, for errors

	unregister func() // forgets the doorbells' names (futex.Register)

	mu     sync.Mutex // guards refs and closed
	refs   int        // open Producers and Consumers, plus one for the Ring
	closed bool
}

// Create creates the named ring (/dev/shm/NAME on Linux, Local\NAME on
// Windows) and opens it. It fails with a wrapped os.ErrExist if the name is
// taken. On Windows the ring exists while some process has it open.
func Create(name string, opts ...Option) (*Ring, error) {
	if err := shm.ValidateName(name); err != nil {
		return nil, fmt.Errorf("create ring %q: %w", name, err)
	}
	o := apply(opts)
	r, err := create(o, name, true, func(size int64) (*shm.Segment, error) { return shm.Create(name, size, o.perm) },
		func() (*shm.Segment, error) { return shm.Open(name, 1) })
	if err != nil {
		return nil, fmt.Errorf("create ring %q: %w", name, err)
	}
	return r, nil
}

// CreateFile creates a ring in a new file at path and opens it. It fails
// with a wrapped os.ErrExist if the path exists.
func CreateFile(path string, opts ...Option) (*Ring, error) {
	o := apply(opts)
	r, err := create(o, path, false, func(size int64) (*shm.Segment, error) { return shm.CreateFile(path, size, o.perm) },
		func() (*shm.Segment, error) { return shm.OpenFile(path, 1) })
	if err != nil {
		return nil, fmt.Errorf("create ring file %s: %w", path, err)
	}
	return r, nil
}

// Open opens the named ring, waiting as WithOpenWait and WithInitWait say.
func Open(name string, opts ...Option) (*Ring, error) {
	if err := shm.ValidateName(name); err != nil {
		return nil, fmt.Errorf("open ring %q: %w", name, err)
	}
	r, err := open(apply(opts), name, func() (*shm.Segment, error) { return shm.Open(name, ring.HeaderSize) })
	if err != nil {
		return nil, fmt.Errorf("open ring %q: %w", name, err)
	}
	return r, nil
}

// OpenFile opens the ring in the file at path, waiting as WithOpenWait and
// WithInitWait say.
func OpenFile(path string, opts ...Option) (*Ring, error) {
	r, err := open(apply(opts), path, func() (*shm.Segment, error) { return shm.OpenFile(path, ring.HeaderSize) })
	if err != nil {
		return nil, fmt.Errorf("open ring file %s: %w", path, err)
	}
	return r, nil
}

func apply(opts []Option) options {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// create makes a new ring with newSeg; WithReplaceUnused, it first removes
// an unused ring that oldSeg opens at the same name (or path: named false).
func create(o options, name string, named bool, newSeg func(int64) (*shm.Segment, error), oldSeg func() (*shm.Segment, error)) (*Ring, error) {
	var key [8]byte
	for binary.LittleEndian.Uint64(key[:]) == 0 {
		rand.Read(key[:])
	}
	cfg := ring.Config{
		Capacity:        o.capacity,
		MaxMessage:      o.maxMessage,
		Slots:           o.slots,
		MultiProducer:   o.multi,
		Subscribers:     o.subscribers,
		EvictAfter:      o.lagBound,
		Key:             binary.LittleEndian.Uint64(key[:]),
		UUID:            uuid.New(),
		CreatorPID:      uint32(os.Getpid()),
		CreatedUnixNano: time.Now().UnixNano(),
	}
	size, err := ring.Size(cfg)
	if err != nil {
		return nil, err
	}
	seg, err := newSeg(size)
	if errors.Is(err, os.ErrExist) && o.replace {
		if rerr := removeIfUnused(name, named, oldSeg); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return nil, fmt.Errorf("%w; not replaced: %w", err, rerr)
		}
		seg, err = newSeg(size)
	}
	if errors.Is(err, os.ErrExist) && markedRemoved(oldSeg) {
		// Windows: a removed ring keeps its name while it is open.
		return nil, fmt.Errorf("%w: the ring there was removed, but a process still has it open (the name is free once all have closed it): %w", err, ErrRingRemoved)
	}
	if err != nil {
		return nil, err
	}
	// Present from the start, so that no cleaner takes a ring that is
	// being created. A cleaner looking at the new file holds its presence
	// lock exclusively for a moment (and never removes a file this
	// young): wait for it.
	err = present(seg)
	for start := time.Now(); errors.Is(err, errNotPresent) && time.Since(start) < time.Second; err = present(seg) {
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		// Not seg.Remove: the name may be another ring's by now.
		seg.Close()
		return nil, err
	}
	r, err := ring.Init(seg.Bytes(), cfg, seg)
	if err != nil {
		seg.Remove()
		seg.Close()
		return nil, err
	}
	return newRing(seg, r, o, name), nil
}

// newRing makes the Ring of a segment and its attached ring: the liveness
// locks are the segment's, and the doorbells are named after the ring's UUID
// (for Windows: futex.Register).
func newRing(seg *shm.Segment, r *ring.Ring, o options, name string) *Ring {
	id := r.Info().UUID
	unregister := futex.Register(seg.Bytes(), "shmring-"+uuid.UUID(id).String())
	return &Ring{seg: seg, r: r, opts: o, name: name, refs: 1, unregister: unregister}
}

// open retries while the ring does not exist (up to the open wait) and while
// its creator is still initialising it (up to the init wait).
func open(o options, name string, openSeg func() (*shm.Segment, error)) (*Ring, error) {
	start := time.Now()
	var initStart time.Time
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 10*time.Millisecond) {
		seg, err := openSeg()
		if err == nil {
			r, aerr := attach(seg)
			if aerr == nil && r.Removed() {
				// Being removed: its name goes next, perhaps for a new
				// ring. Wait for that as for a missing name.
				aerr = &os.PathError{Op: "open", Path: seg.Path(), Err: errRemovedAtOpen}
			}
			if aerr == nil {
				aerr = present(seg)
			}
			if aerr == nil {
				return newRing(seg, r, o, name), nil
			}
			seg.Close()
			err = aerr
		}
		switch {
		case errors.Is(err, os.ErrNotExist) && time.Since(start) < o.openWait:
		case errors.Is(err, shm.ErrTooSmall) || errors.Is(err, ring.ErrNotReady):
			// A creator between open(2) and its init word: the file is
			// empty, or not yet stamped. Give it the init wait.
			if initStart.IsZero() {
				initStart = time.Now()
			}
			if time.Since(initStart) >= o.initWait {
				if errors.Is(err, shm.ErrTooSmall) {
					err = fmt.Errorf("%w: %w", ring.ErrSize, err)
				}
				return nil, err
			}
		default:
			return nil, err
		}
		time.Sleep(delay)
	}
}

// Producer attaches a producer to the ring. Close it to detach.
func (r *Ring) Producer() (*Producer, error) {
	if err := r.acquire(); err != nil {
		return nil, err
	}
	p, err := r.newProducer()
	if err != nil {
		r.release()
		return nil, fmt.Errorf("ring %s: producer: %w", r.name, err)
	}
	return &Producer{p: p, ring: r}, nil
}

// Consumer attaches the ring's consumer. There is one at a time: a second
// gets ErrConsumerBusy. A new consumer resumes where the last one stopped.
func (r *Ring) Consumer() (*Consumer, error) {
	if err := r.acquire(); err != nil {
		return nil, err
	}
	c, err := r.newConsumer()
	if err != nil {
		r.release()
		return nil, fmt.Errorf("ring %s: consumer: %w", r.name, err)
	}
	return &Consumer{c: c, ring: r}, nil
}

// Info describes the ring's header.
func (r *Ring) Info() ring.Info { return r.r.Info() }

// Path returns the file that backs the ring.
func (r *Ring) Path() string { return r.seg.Path() }

// Close closes the Ring handle. The mapping stays until every Producer and
// Consumer made from it is closed too. Close is idempotent.
func (r *Ring) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	return r.release()
}

func (r *Ring) acquire() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("ring %s: %w", r.name, os.ErrClosed)
	}
	r.refs++
	return nil
}

func (r *Ring) release() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs--
	if r.refs == 0 {
		r.unregister()
		return r.seg.Close()
	}
	return nil
}

// Stats reads the ring's shared state: positions, the consumer, and each
// producer slot that was ever used, with whether its owner is alive. See
// ring.Stats for what the fields mean and how far to trust them.
func (r *Ring) Stats() (ring.Stats, error) {
	if err := r.acquire(); err != nil {
		return ring.Stats{}, err
	}
	defer r.release()
	return r.stats()
}
