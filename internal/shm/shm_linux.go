package shm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

func namedDir() string { return "/dev/shm" }

// reserve allocates the file's blocks now. On tmpfs this charges the pages to
// the mount at once, so a full /dev/shm is an error here rather than a SIGBUS
// on first touch.
func reserve(fd int, size int64) error {
	err := unix.Fallocate(fd, 0, 0, size)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("%w: reserving %d bytes: %w", ErrNoSpace, size, err)
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
		// Some file systems cannot preallocate; a sparse file still works.
		return unix.Ftruncate(fd, size)
	default:
		return fmt.Errorf("fallocate %d bytes: %w", size, err)
	}
}
