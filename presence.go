package shmring

import (
	"fmt"
	"os"

	"github.com/shmring/shmring/internal/shm"
)

// Presence: every open Ring holds a shared lock on byte presenceLock of the
// ring's file, from creation or opening until Close, whether or not it has
// a producer or a consumer attached. A ring whose presence lock can be taken
// exclusively is open in no process (FORMAT.md, "Peers"): RemoveUnused
// removes only such rings.
const presenceLock = 0

// errNotPresent says that a ring was removed as unused while it was being
// opened.
var errNotPresent = fmt.Errorf("removed as unused while opening: %w", os.ErrNotExist)

// errRemovedAtOpen says that an opener found the ring marked removed.
var errRemovedAtOpen = fmt.Errorf("%w: %w", ErrRingRemoved, os.ErrNotExist)

// present takes the presence lock of a segment just opened, and checks that
// its path still names it: RemoveUnused holds the lock exclusively while it
// removes a ring, so an opener that raced with it finds the name gone.
func present(seg *shm.Segment) error {
	if !shm.NamesAreFiles {
		// Windows: a named ring lives exactly while it is open, and
		// RemoveUnused does not apply.
		return nil
	}
	ok, err := seg.TryLockShared(presenceLock)
	if err != nil {
		return err
	}
	notExist := &os.PathError{Op: "open", Path: seg.Path(), Err: errNotPresent}
	if !ok {
		return notExist // a cleaner holds it exclusively: it is being removed
	}
	mine, err := seg.File().Stat()
	if err != nil {
		return err
	}
	named, err := os.Stat(seg.Path())
	if err != nil || !os.SameFile(mine, named) {
		return notExist
	}
	return nil
}
