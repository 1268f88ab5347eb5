//go:build !unix

package shm

import (
	"fmt"
	"os"
	"runtime"
)

func namedDir() string { return os.TempDir() }

func create(path string, size int64, perm os.FileMode) (*Segment, error) {
	return nil, fmt.Errorf("%w (%s)", ErrNotSupported, runtime.GOOS)
}

func open(path string, minSize int64) (*Segment, error) {
	return nil, fmt.Errorf("%w (%s)", ErrNotSupported, runtime.GOOS)
}

func unmap(mem []byte) error { return nil }

// LockKind names the kind of liveness lock this system provides.
const LockKind = "none"

func tryLock(f *os.File, off int64) (bool, error) { return false, ErrNotSupported }
func unlock(f *os.File, off int64) error          { return ErrNotSupported }

func tryLockShared(f *os.File, off int64) (bool, error) { return false, ErrNotSupported }
func locked(f *os.File, off int64) (bool, error)        { return false, ErrNotSupported }
