package shm

import (
	"fmt"
	"os"
)

// Liveness locks.
//
// A process proves it is alive by holding a lock that the operating system
// releases when the process dies, however it dies. Package ring uses one per
// producer slot and one for the consumer; "marked in use but not locked" can
// then only mean "dead".
//
// On Linux a lock is an open-file-description (OFD) write lock on one byte of
// the segment's file, at the offset the caller names (fcntl F_OFD_SETLK). It
// belongs to this Segment's open file description: two Segments of the same
// file, in one process or in two, exclude each other, and the kernel drops
// the lock when the last descriptor of the description closes, which happens
// at Close or at the process's death.
//
// On Windows it is a named mutex (Local\ namespace, named after the
// mapping or the file, and the offset), which the system abandons when its
// owner dies. Mutexes belong to threads and goroutines move between them, so
// one locked OS thread of the process takes, releases and keeps all of them
// (lock_windows.go).
//
// On other Unix systems it is a POSIX record lock (F_SETLK), which belongs to
// the process: it is released when the process dies, but also when the
// process closes any descriptor of the file, and it does not exclude two
// Segments of one file within one process. Open a ring at most once per
// process there.
//
// Within one Segment, the Segment itself keeps track of the locks it holds,
// so that two handles sharing a Segment (a producer and a consumer in one
// process, say) exclude each other too.

// TryLock takes the lock at byte off of the segment's file without waiting.
// It reports false when another holder, in this process or another, has it.
func (s *Segment) TryLock(off int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return false, os.ErrClosed
	}
	if s.locks[off] {
		return false, nil
	}
	ok, err := tryLock(s, off)
	if err != nil {
		return false, fmt.Errorf("lock byte %d of %s: %w", off, s.path, err)
	}
	if ok {
		if s.locks == nil {
			s.locks = make(map[int64]bool)
		}
		s.locks[off] = true
	}
	return ok, nil
}

// Unlock releases a lock taken by TryLock. Unlocking a lock this Segment
// does not hold does nothing.
func (s *Segment) Unlock(off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil || !s.locks[off] {
		return nil
	}
	delete(s.locks, off)
	if err := unlock(s, off); err != nil {
		return fmt.Errorf("unlock byte %d of %s: %w", off, s.path, err)
	}
	return nil
}

// Locked reports whether anyone holds the lock at byte off: this Segment or
// another holder the kernel knows of. It takes nothing.
func (s *Segment) Locked(off int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return false, os.ErrClosed
	}
	if s.locks[off] {
		return true, nil
	}
	held, err := locked(s, off)
	if err != nil {
		return false, fmt.Errorf("test lock on byte %d of %s: %w", off, s.path, err)
	}
	return held, nil
}

// TryLockShared takes a shared (read) lock at byte off without waiting: any
// number of holders may share it, and it excludes TryLock's exclusive lock
// on the same byte. It reports false while an exclusive holder has it. The
// lock lasts until Close (which releases every lock of the Segment).
func (s *Segment) TryLockShared(off int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mem == nil {
		return false, os.ErrClosed
	}
	ok, err := tryLockShared(s, off)
	if err != nil {
		return false, fmt.Errorf("shared lock on byte %d of %s: %w", off, s.path, err)
	}
	return ok, nil
}
