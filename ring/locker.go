package ring

import (
	"sync"
	"time"
)

// Locker supplies the liveness locks of the peers: one per producer slot and
// one for the consumer, each named by the offset of its line in the segment
// (FORMAT.md, "Peers"). A lock must be one the operating system releases when
// its holder dies, however it dies: that release is the only proof of death
// the ring accepts. A PID is not proof (PIDs are reused), and neither is a
// timeout (a stopped process is alive).
//
// The root package's segments implement it with OFD byte-range locks on
// Linux, POSIX record locks on other Unix systems, and named mutexes on
// Windows (FORMAT.md, "Peers").
type Locker interface {
	// TryLock takes the lock without waiting and reports whether it did.
	// A lock this Locker already holds is not taken twice: false.
	TryLock(off int64) (bool, error)
	// Unlock releases a lock taken by TryLock.
	Unlock(off int64) error
	// Locked reports whether anyone holds the lock, this Locker included.
	Locked(off int64) (bool, error)
}

// LocalLocker returns a Locker that knows only the holders in this process:
// right for memory that no other process maps (a ring on the heap, as in
// tests), wrong for shared memory, where a live peer in another process would
// look dead.
func LocalLocker() Locker { return &localLocker{held: make(map[int64]bool)} }

type localLocker struct {
	mu   sync.Mutex
	held map[int64]bool
}

func (l *localLocker) TryLock(off int64) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[off] {
		return false, nil
	}
	l.held[off] = true
	return true, nil
}

func (l *localLocker) Unlock(off int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, off)
	return nil
}

func (l *localLocker) Locked(off int64) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[off], nil
}

// DefaultLiveness is how often a blocked producer or consumer checks the
// liveness locks of its peers when the caller gives no interval. A dead peer
// is noticed within about this interval (BenchmarkRecoverDeadProducer
// measures it).
const DefaultLiveness = 100 * time.Millisecond
