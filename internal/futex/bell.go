package futex

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// A Bell is a second way to sleep on a word and to wake its sleeper: a FIFO
// (a named pipe) that the sleeper reads through the Go runtime's network
// poller, and that a waker writes a byte into. A sleep on a futex blocks a
// thread in a system call, whose P (its right to run Go code) the runtime
// hands to another thread it must first wake; a sleep on a Bell parks only
// the goroutine, as a read of a socket does, and the thread goes on with
// the process's other goroutines or polls. With one CPU that saves two
// thread switches a sleep (BENCHMARKS.md, "Bells: connection readers that
// park in the poller").
//
// The words and waiter counts of the doorbell protocol stay as they are;
// only the sleep and the wake change: a waker that moved the word writes a
// byte instead of making a futex wake, and a sleeper, after it emptied the
// FIFO, sleeps only if the word still holds the value it read (and its
// alarm has not rung), until a byte arrives. A byte written after that look
// cannot be lost: the FIFO holds it, and the poller reports it. Stale bytes
// (a wake for a sleep that did not happen) are spurious wake-ups, which
// every sleeper allows; they are read away at the next sleep.
//
// Both ends must agree that the sleeper sleeps on the Bell (a waker that
// makes a futex wake instead would not wake it): connections agree in
// their handshake. Bells exist on Linux only; elsewhere OpenBell and
// CreateBell fail with ErrNotSupported.
type Bell struct {
	f     *os.File
	rc    syscall.RawConn
	ready func(fd uintptr) bool // b.look
	write func(fd uintptr) bool // b.put
	// The look Sleep makes after it empties the FIFO (set before each
	// sleep; read by ready, on the sleeping goroutine).
	word   *uint32
	val    uint32
	alarm  *Alarm
	av     uint32
	buf    [64]byte // what a drain reads into
	one    [1]byte  // what a ring writes
	closed atomic.Bool
}

// ErrBellClosed is returned by a Sleep on a Bell that was closed.
var ErrBellClosed = errors.New("futex: bell closed")

// Sleep sleeps until a byte is written into the Bell after Sleep emptied
// it, or until timeout passes (os.ErrDeadlineExceeded), unless *addr no
// longer holds val or a's value is no longer av once the Bell is empty (a
// nil a is never looked at). As for a futex, a wake-up may be spurious.
// One goroutine at a time may sleep on a Bell.
func (b *Bell) Sleep(addr *uint32, val uint32, timeout time.Duration, a *Alarm, av uint32) error {
	if timeout <= 0 {
		return os.ErrDeadlineExceeded
	}
	// Always set: Interrupt may have set one in the past.
	var dl time.Time
	if timeout < Forever {
		dl = time.Now().Add(timeout)
	}
	if err := b.f.SetReadDeadline(dl); err != nil {
		return b.err(err)
	}
	b.word, b.val, b.alarm, b.av = addr, val, a, av
	err := b.rc.Read(b.ready)
	b.word, b.alarm = nil, nil
	return b.err(err)
}

// err maps what the file says to what a sleeper expects.
func (b *Bell) err(err error) error {
	switch {
	case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		return err
	case b.closed.Load():
		return ErrBellClosed
	}
	return err
}

// Ring wakes the Bell's sleeper, or makes its next sleep return at once,
// with a byte. A full FIFO (a sleeper that has not read for 64 KiB of
// rings) already holds a wake-up: the failed write is dropped.
func (b *Bell) Ring() { _ = b.rc.Write(b.write) }

// Interrupt ends a sleep in progress (as a timeout: os.ErrDeadlineExceeded)
// without a byte: for this process's own alarm, which must end a sleep even
// where the peer filled the FIFO so that no byte can be written. A sleep
// that begins after it is not ended: its caller looks at the alarm's value
// (Sleep's a and av) instead.
func (b *Bell) Interrupt() { _ = b.f.SetReadDeadline(time.Unix(1, 0)) }

// newBell makes a Bell of f, a FIFO opened for reading and writing, in
// non-blocking mode.
func newBell(f *os.File) (*Bell, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	b := &Bell{f: f, rc: rc}
	b.ready, b.write = b.look, b.put
	return b, nil
}

// Close closes the Bell's descriptor; a Sleep in progress returns
// ErrBellClosed. Closing a nil Bell does nothing.
func (b *Bell) Close() error {
	if b == nil {
		return nil
	}
	b.closed.Store(true)
	return b.f.Close()
}
