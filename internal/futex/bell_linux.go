package futex

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

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

// look is the poller's callback: empty the FIFO, then report whether the
// sleep is over (the word moved, or the alarm rang).
func (b *Bell) look(fd uintptr) bool {
	b.drain(fd)
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
