package shmring

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/ring"
)

// Removing and replacing rings.
//
// A ring's name can go while processes still have the ring open: they keep
// their mapping. So that they learn nobody will read or write it again,
// whoever removes a ring through this package marks it removed in shared
// memory first (ring.Ring.MarkRemoved; FORMAT.md, "Removal"): the producers'
// next calls, and the consumer's once it has drained the ring, return
// ErrRingRemoved, and a process blocked in one is woken to hear it.

// Remove marks the named ring removed and removes its name. Processes that
// have it open keep their mapping, but their Producers fail with
// ErrRingRemoved from their next call (a blocked call returns it at once),
// and their Consumer once it has drained the ring. A file at the name that
// is not a finished ring is removed without a mark. On Windows, where a name
// lives exactly as long as some process has the ring open, Remove marks the
// ring, and the name goes when its last user closes it.
//
// Remove is for the ring's owner. To clear a leftover only if nobody uses
// it, use RemoveIfUnused.
func Remove(name string) error {
	if err := shm.ValidateName(name); err != nil {
		return fmt.Errorf("remove ring %q: %w", name, err)
	}
	if seg, err := shm.Open(name, ring.HeaderSize); err == nil {
		markRemoved(seg, name)
		seg.Close()
	}
	if err := shm.Remove(name); err != nil {
		return fmt.Errorf("remove ring %q: %w", name, err)
	}
	return nil
}

// Remove marks the ring removed and removes its name (see the package-level
// Remove): its peers' calls fail with ErrRingRemoved from then on, this
// Ring's included, except a Consumer's while messages remain.
func (r *Ring) Remove() error {
	if err := Guarded(func() error { r.r.MarkRemoved(); return nil }); err != nil {
		return fmt.Errorf("remove ring %s: %w", r.name, err)
	}
	if err := r.seg.Remove(); err != nil {
		return fmt.Errorf("remove ring %s: %w", r.name, err)
	}
	return nil
}

// markRemoved marks the ring in seg removed, if it is a finished ring.
func markRemoved(seg *shm.Segment, name string) {
	r, err := attach(seg)
	if err != nil {
		return // not a ring, or never finished: nobody can be attached
	}
	// The doorbells must be named (Windows) for the wake to reach other
	// processes: a Ring registers them.
	named := newRing(seg, r, defaultOptions(), name)
	_ = Guarded(func() error { r.MarkRemoved(); return nil }) // a truncated ring has no peer left to tell
	named.unregister()
}

// RemoveIfUnused removes the named ring only if no process has it open
// (every process that opened it closed it or died). A ring open anywhere,
// even in a stopped process or in this one, is left alone with an error
// that wraps ErrInUse, and so is a segment a creator may still be writing
// (unfinished, and changed in the last few seconds). A file at the name that
// is not a ring is not removed. A missing name is a wrapped os.ErrNotExist.
//
// It is race-free against a process opening the ring at the same moment:
// the ring is removed while its presence lock is held exclusively, and an
// opener that got the file meanwhile finds its name gone and fails with
// os.ErrNotExist (or waits for a new ring, WithOpenWait).
func RemoveIfUnused(name string) error {
	if err := shm.ValidateName(name); err != nil {
		return fmt.Errorf("remove unused ring %q: %w", name, err)
	}
	if err := removeIfUnused(name, true, func() (*shm.Segment, error) { return shm.Open(name, 1) }); err != nil {
		return fmt.Errorf("remove unused ring %q: %w", name, err)
	}
	return nil
}

// RemoveFileIfUnused is RemoveIfUnused for the file-backed ring at path. On
// Windows, where a process's use of a file-backed ring cannot be told, it
// returns ErrNotSupported.
func RemoveFileIfUnused(path string) error {
	if err := removeIfUnused(path, false, func() (*shm.Segment, error) { return shm.OpenFile(path, 1) }); err != nil {
		return fmt.Errorf("remove unused ring file %s: %w", path, err)
	}
	return nil
}

// removeIfUnused removes the ring that open opens if no process has it
// open. open names a ring by name (named), or by path (CreateFile's
// replacement).
func removeIfUnused(name string, named bool, open func() (*shm.Segment, error)) error {
	seg, err := open()
	if err != nil {
		return err
	}
	defer seg.Close()
	if !shm.NamesAreFiles {
		if named {
			// A named ring that exists is open somewhere: it goes
			// with its last user.
			return fmt.Errorf("%w: a process has it open", ErrInUse)
		}
		return fmt.Errorf("%w: on %s, whether a process has a file-backed ring open cannot be told (there is no presence lock)", ErrNotSupported, runtime.GOOS)
	}
	st, r, err := inspect(seg, name)
	if err != nil {
		return fmt.Errorf("not a ring, not removed: %w", err)
	}
	switch {
	case st.State == stateInUse:
		return fmt.Errorf("%w: a process has it open", ErrInUse)
	case st.State == stateUnfinished && time.Since(st.Modified) < unusedGrace:
		seg.Unlock(presenceLock)
		return fmt.Errorf("%w: unfinished and changed %v ago: its creator may be writing it", ErrInUse, time.Since(st.Modified).Round(time.Millisecond))
	}
	return removeLocked(seg, r)
}

// removeLocked marks the ring r (nil for an unfinished one) removed and
// removes seg's file, whose presence lock is held exclusively, then lets
// the lock go.
func removeLocked(seg *shm.Segment, r *ring.Ring) error {
	defer seg.Unlock(presenceLock)
	if r != nil {
		_ = Guarded(func() error { r.MarkRemoved(); return nil }) // nobody has it open: the mark is for form
	}
	if err := os.Remove(seg.Path()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// markedRemoved reports whether the ring that open opens is marked removed.
func markedRemoved(open func() (*shm.Segment, error)) bool {
	seg, err := open()
	if err != nil {
		return false
	}
	defer seg.Close()
	r, err := attach(seg)
	return err == nil && r.Removed()
}
