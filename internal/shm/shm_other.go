//go:build !unix && !windows

package shm

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

type sysSegment struct{}

func (sysSegment) rounded() bool { return false }

func namedDir() string { return os.TempDir() }

// namesAreFiles: see NamesAreFiles.
const namesAreFiles = true

func namePath(name string) string { return filepath.Join(namedDir(), name) }

func createNamed(path string, size int64, perm os.FileMode) (*Segment, error) {
	return create(path, size, perm)
}

func openNamed(path string, minSize int64) (*Segment, error) { return open(path, minSize) }

func removeNamed(path string) error { return os.Remove(path) }

func create(path string, size int64, perm os.FileMode) (*Segment, error) {
	return nil, fmt.Errorf("%w (%s)", ErrNotSupported, runtime.GOOS)
}

func open(path string, minSize int64) (*Segment, error) {
	return nil, fmt.Errorf("%w (%s)", ErrNotSupported, runtime.GOOS)
}

func (s *Segment) unmap() error { return nil }

// LockKind names the kind of liveness lock this system provides.
const LockKind = "none"

func tryLock(s *Segment, off int64) (bool, error)       { return false, ErrNotSupported }
func unlock(s *Segment, off int64) error                { return ErrNotSupported }
func tryLockShared(s *Segment, off int64) (bool, error) { return false, ErrNotSupported }
func locked(s *Segment, off int64) (bool, error)        { return false, ErrNotSupported }
