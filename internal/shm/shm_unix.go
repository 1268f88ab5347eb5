//go:build unix

package shm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// sysSegment is empty on Unix: the file is the whole of a segment.
type sysSegment struct{}

func (sysSegment) rounded() bool { return false }

// namesAreFiles: see NamesAreFiles.
const namesAreFiles = true

func namePath(name string) string { return filepath.Join(namedDir(), name) }

// A named segment is a file in namedDir.
func createNamed(path string, size int64, perm os.FileMode) (*Segment, error) {
	return create(path, size, perm)
}

func openNamed(path string, minSize int64) (*Segment, error) { return open(path, minSize) }

func removeNamed(path string) error { return os.Remove(path) }

func create(path string, size int64, perm os.FileMode) (_ *Segment, err error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm))
	if err != nil {
		return nil, pathErr("open", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	// The umask may have cleared bits the caller asked for (group sharing).
	if err := f.Chmod(perm); err != nil {
		return nil, err
	}
	if err := reserve(fd, size); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	return &Segment{path: path, mem: mem, file: f}, nil
}

func open(path string, minSize int64) (_ *Segment, err error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pathErr("open", path, err)
	}
	return mapFD(fd, path, minSize)
}

// mapFD maps the whole regular file open as fd (read-write), of at least
// minSize bytes, and owns fd from then on (closed on error).
func mapFD(fd int, path string, minSize int64) (_ *Segment, err error) {
	f := os.NewFile(uintptr(fd), path)
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, ErrNotRegular
	}
	size := st.Size
	if size < max(minSize, 1) {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrTooSmall, size, max(minSize, 1))
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", size, err)
	}
	return &Segment{path: path, mem: mem, file: f}, nil
}

func (s *Segment) unmap() error { return unix.Munmap(s.mem) }

// pathErr turns an errno from open(2) into an *os.PathError, so that
// errors.Is(err, os.ErrExist) and os.ErrNotExist work, and names a symbolic
// link refused by O_NOFOLLOW plainly.
func pathErr(op, path string, err error) error {
	if errors.Is(err, unix.ELOOP) {
		return &os.PathError{Op: op, Path: path, Err: fmt.Errorf("is a symbolic link, refused: %w", err)}
	}
	return &os.PathError{Op: op, Path: path, Err: err}
}
