//go:build unix && !linux

package shm

import (
	"os"

	"golang.org/x/sys/unix"
)

// namedDir holds named segments on Unix systems without /dev/shm semantics
// that this package implements yet; the files are ordinary files there.
func namedDir() string { return os.TempDir() }

// reserve sizes the file. Without fallocate the file is sparse, so running
// out of space shows up later as SIGBUS on first touch of a page.
func reserve(fd int, size int64) error { return unix.Ftruncate(fd, size) }
