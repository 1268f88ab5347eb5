package futex

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// BellsSupported reports whether this system has Bells: Linux, where the
// doorbell's alarms work (futex_waitv, Linux 5.16 and later).
func BellsSupported() bool { return manyAvailable }

// CreateBell makes a FIFO at path with the permission bits perm (whatever
// the umask), failing if anything is there.
func CreateBell(path string, perm os.FileMode) error {
	if !BellsSupported() {
		return ErrNotSupported
	}
	if err := unix.Mkfifo(path, uint32(perm.Perm())); err != nil {
		return &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	if err := os.Chmod(path, perm.Perm()); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// OpenBell opens the FIFO at path, for sleeping on it or ringing it. It
// refuses anything but a FIFO (without following a symbolic link) owned by
// the user uid (if uid >= 0): the name may have been made by another
// process.
func OpenBell(path string, uid int) (*Bell, error) {
	if !BellsSupported() {
		return nil, ErrNotSupported
	}
	// Read and write: an open for writing alone fails while no reader
	// has the FIFO open, and one for reading alone sees the end of the
	// file once the last writer closes it.
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Mode().Type() != os.ModeNamedPipe {
		f.Close()
		return nil, fmt.Errorf("futex: %s is not a FIFO: %w", path, os.ErrInvalid)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); uid >= 0 && (!ok || int(st.Uid) != uid) {
		f.Close()
		return nil, fmt.Errorf("futex: %s is not the expected user's: %w", path, os.ErrPermission)
	}
	return newBell(f)
}

// look is the poller's callback: report whether the sleep is over (the
// word moved, or the alarm rang), looking again after emptying the FIFO if
// it is not. A sleep found over at the first look reads nothing: the byte
// that woke it stays in the FIFO until the next sleep that must wait
// empties it, which saves a read per wake-up; the FIFO is always emptied
// before a look that lets the goroutine park.
func (b *Bell) look(fd uintptr) bool {
	if b.over() {
		return true
	}
	b.drain(fd)
	return b.over()
}

// over reports whether the sleep is over: the word moved, or the alarm
// rang.
func (b *Bell) over() bool {
	if atomic.LoadUint32(b.word) != b.val {
		return true
	}
	return b.alarm != nil && b.alarm.Value() != b.av
}

// drain empties the FIFO: after it, a byte written is the FIFO's change
// from empty to not empty, which every kernel reports to the poller. The
// first read is into the Bell's own few bytes (one is the usual); a FIFO
// fuller than that (rings for sleeps that did not happen, or a peer that
// writes for nothing) is read on with a larger buffer, at most
// maxDrainBytes, more than a pipe holds unless an administrator allowed
// more: what is left then is a spurious wake-up, or a full FIFO whose
// writer's next byte fails, which only the peer's own wake-ups suffer.
func (b *Bell) drain(fd uintptr) {
	n, err := unix.Read(int(fd), b.buf[:])
	if err != nil || n < len(b.buf) {
		return
	}
	big := drainBufs.Get().(*[drainBuf]byte)
	defer drainBufs.Put(big)
	for read := 0; read < maxDrainBytes; read += n {
		if n, err = unix.Read(int(fd), big[:]); err != nil || n < len(big) {
			return
		}
	}
}

const (
	drainBuf      = 64 << 10
	maxDrainBytes = 4 << 20
)

var drainBufs = sync.Pool{New: func() any { return new([drainBuf]byte) }}

// put is Ring's callback: one byte, never waiting for room.
func (b *Bell) put(fd uintptr) bool {
	_, _ = unix.Write(int(fd), b.one[:])
	return true
}

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
// (a wake for a sleep that did not happen, or the byte that ended a sleep,
// which is left unread) are spurious wake-ups, which every sleeper allows;
// they are read away by the next sleep that must wait.
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
	closed atomic.Bool
	buf    [64]byte // what a drain reads into first
	one    [1]byte  // what a ring writes
}

// Sleep sleeps until a byte is written into the Bell after Sleep emptied
// it, or until timeout passes (os.ErrDeadlineExceeded), unless *addr no
// longer holds val or a's value is no longer av (a nil a is never looked
// at), looked at before the Bell is emptied (then it returns at once and
// reads nothing) and again once it is empty. As for a futex, a wake-up may
// be spurious.
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
	bellSleepers.Add(1)
	err := b.rc.Read(b.ready)
	bellSleepers.Add(-1)
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

// Close closes the Bell's descriptor; a Sleep in progress returns
// ErrBellClosed. Closing a nil Bell does nothing.
func (b *Bell) Close() error {
	if b == nil {
		return nil
	}
	b.closed.Store(true)
	return b.f.Close()
}
