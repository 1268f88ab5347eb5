package shmring

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"time"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/ring"
)

// RingStatus describes one ring among the named ones (the files in
// /dev/shm on Linux).
type RingStatus struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// State is "in use" (some process has the ring open), "unused" (no
	// process has it open: its creator and every peer closed it or died),
	// or "unfinished" (a creator that never completed it, and nobody has
	// it open). Files that are not rings are not listed.
	State string `json:"state"`
	// Modified is when the file was last modified (written through a
	// mapping counts). RemoveUnused spares files modified in the last few
	// seconds.
	Modified time.Time `json:"modified"`
	// Stats is the ring's shared state, for a ring whose header is valid.
	Stats *ring.Stats `json:"stats,omitempty"`

	listener bool // the ring has a listener's shape (see Listeners)
}

// unusedGrace spares files modified more recently than this from RemoveUnused: a creator
// takes the presence lock a moment after it creates the file.
const unusedGrace = 5 * time.Second

// List describes the named rings, in name order. It takes no lock that a
// peer would notice for longer than it takes to test one. On systems other
// than Linux a process's own open rings look unused to it (POSIX locks).
// On Windows it returns ErrNotSupported: named rings there are kernel
// objects that exist only while some process has them open.
func List() ([]RingStatus, error) { return scan(false) }

// RemoveUnused removes the named rings that no process has open (all their
// processes closed them or died) and that have not changed in the last few
// seconds, and returns their statuses. A ring open in any process, even one
// stopped or without peers attached, is never removed.
func RemoveUnused() ([]RingStatus, error) { return scan(true) }

func scan(remove bool) ([]RingStatus, error) {
	if !shm.NamesAreFiles {
		return nil, fmt.Errorf("listing rings on %s: %w: named rings there are kernel objects that live while a process has them open (none is stale), and the system does not list them", runtime.GOOS, ErrNotSupported)
	}
	entries, err := os.ReadDir(shm.Dir())
	if err != nil {
		return nil, err
	}
	var out []RingStatus
	for _, e := range entries {
		if !e.Type().IsRegular() || shm.ValidateName(e.Name()) != nil {
			continue
		}
		st, ok := scanOne(e.Name(), remove)
		if ok && (!remove || st.State != stateInUse) {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// scanOne looks at one named file; ok is false when it is not a ring. With
// remove, an unused or unfinished ring past the grace period is removed.
func scanOne(name string, remove bool) (st RingStatus, ok bool) {
	seg, err := shm.Open(name, 1)
	if err != nil {
		return st, false
	}
	defer seg.Close()
	st, r, err := inspect(seg, name)
	if err != nil {
		return st, false
	}
	if st.State == stateInUse {
		return st, true
	}
	if !remove {
		seg.Unlock(presenceLock)
		return st, true
	}
	if time.Since(st.Modified) < unusedGrace {
		seg.Unlock(presenceLock)
		st.State = stateInUse // too young to judge: not removed, not reported
		return st, true
	}
	return st, removeLocked(seg, r) == nil
}

// The states of RingStatus.
const (
	stateInUse      = "in use"
	stateUnused     = "unused"
	stateUnfinished = "unfinished"
)

// inspect describes the ring in seg, opened under name, and returns it
// attached (nil when it is unfinished). An error means seg is not a ring.
// When no process has it open (State unused or unfinished), inspect returns
// holding its presence lock exclusively, so that nobody can join it: the
// caller removes it (removeLocked) or lets the lock go.
func inspect(seg *shm.Segment, name string) (st RingStatus, r *ring.Ring, err error) {
	fi, err := seg.File().Stat()
	if err != nil {
		return st, nil, err
	}
	st = RingStatus{Name: name, Size: fi.Size(), Modified: fi.ModTime()}
	r, err = attach(seg)
	switch {
	case err == nil:
		if s, err := stats(r); err == nil {
			st.Stats = &s
		}
		st.listener = isListenerShape(r.Info())
	case errors.Is(err, ring.ErrNotReady) || errors.Is(err, shm.ErrTooSmall):
		r, st.State = nil, stateUnfinished
	default:
		return st, nil, err // not a ring: never ours to judge
	}
	free, err := seg.TryLock(presenceLock)
	if err != nil {
		return st, nil, err
	}
	switch {
	case !free:
		st.State = stateInUse
	case st.State == "":
		st.State = stateUnused
	}
	return st, r, nil
}

func stats(r *ring.Ring) (s ring.Stats, err error) {
	defer ring.CatchFault(debug.SetPanicOnFault(true), &err)
	return r.Stats(), nil
}
