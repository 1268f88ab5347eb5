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
