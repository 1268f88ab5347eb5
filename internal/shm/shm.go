// Package shm creates, opens, maps and removes shared-memory segments: named
// segments (files in /dev/shm on Linux) and file-backed segments at any path.
//
// A Segment is the mapping of one whole file, shared (MAP_SHARED) with every
// other process that maps the same file. The package knows nothing of what
// the bytes mean; package ring gives them a layout.
//
// Creation is exclusive (O_CREAT|O_EXCL), never follows a symbolic link at
// the final path element (O_NOFOLLOW), does not leak the descriptor into
// child processes (O_CLOEXEC), applies the requested permissions exactly
// (independent of the umask), and reserves the file's space up front where
// the system can (fallocate on Linux), so that a full tmpfs fails at create
// time instead of killing a process with SIGBUS later.
package shm

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// MaxNameLen is the longest segment name accepted, in bytes. It leaves room
// under the usual 255-byte file name limit for prefixes derived from it.
const MaxNameLen = 200

// DefaultPerm is the permission of a new segment unless the caller asks for
// another: readable and writable by its owner only.
const DefaultPerm os.FileMode = 0o600

var (
	// ErrBadName is returned for a segment name that is empty, longer than
	// MaxNameLen, or contains '/', '\\', NUL or "..".
	ErrBadName = errors.New("shm: invalid segment name")
	// ErrTooSmall is returned when a segment is asked to be created with a
	// size below one byte, or when an existing file is smaller than the size
	// its opener requires.
	ErrTooSmall = errors.New("shm: segment too small")
	// ErrTooLarge is returned when a segment's size does not fit this
	// process's address space (a 32-bit process opening a huge segment).
	ErrTooLarge = errors.New("shm: segment too large for this process")
	// ErrNoSpace is returned when the file system cannot reserve the
	// segment's size at creation (a full tmpfs, for example).
	ErrNoSpace = errors.New("shm: not enough space for the segment")
	// ErrNotRegular is returned when the path names something other than a
	// regular file (a directory or a device, say).
	ErrNotRegular = errors.New("shm: not a regular file")
	// ErrNotSupported is returned on systems where segments are not
	// implemented yet.
	ErrNotSupported = errors.New("shm: not supported on this system")
)

// Errors for an existing name and a missing one are os.ErrExist and
// os.ErrNotExist (wrapped); test them with errors.Is.

// Segment is one mapped segment. Its methods are safe for concurrent use, but
// the memory returned by Bytes is unmapped by Close: no goroutine may touch it
// after Close begins. A Segment must not be copied.
type Segment struct {
	path string

	mu   sync.Mutex // guards mem and file
	mem  []byte     // the original mapping, unmapped by Close
	file *os.File   // kept open for byte-range locks on the segment

	locks map[int64]bool // liveness locks this Segment holds (lock.go)

	sys sysSegment // what the platform adds (a mapping handle on Windows)
}

// ValidateName reports whether name is acceptable as a segment name, with a
// wrapped ErrBadName saying why when it is not.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrBadName, len(name), MaxNameLen)
	case strings.ContainsAny(name, "/\\\x00"):
		return fmt.Errorf("%w: %q contains '/', '\\' or NUL", ErrBadName, name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("%w: %q contains \"..\"", ErrBadName, name)
	case name == ".":
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// NamePath returns where the named segment lives: the file /dev/shm/NAME on
// Linux, NAME in os.TempDir() on other Unix systems, the kernel object
// Local\NAME on Windows (a mapping backed by the paging file, which exists
// while some process has it open).
func NamePath(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return namePath(name), nil
}

// Dir returns the directory that holds named segments (/dev/shm on Linux),
// or "" on Windows, where named segments are kernel objects, not files.
func Dir() string { return namedDir() }

// NamesAreFiles reports whether a named segment is a file in Dir, which
// outlives the processes that opened it until it is removed (true on Unix
// systems). Where it is false (Windows), a named segment is a kernel object
// that exists exactly while some process has it open: nothing stale can be
// left behind, and there is nothing to list.
const NamesAreFiles = namesAreFiles

// Create creates the named segment of size bytes with permissions perm and
// maps it. It fails with a wrapped os.ErrExist if the name is taken. (On
// Windows perm is not used: the mapping gets the default security of the
// process, and Local\ names are seen by the processes of one logon session.)
func Create(name string, size int64, perm os.FileMode) (*Segment, error) {
	path, err := NamePath(name)
	if err != nil {
		return nil, err
	}
	if err := checkSize(size); err != nil {
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	s, err := createNamed(path, size, perm.Perm())
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	return s, nil
}

func checkSize(size int64) error {
	if size < 1 {
		return fmt.Errorf("%w: size %d", ErrTooSmall, size)
	}
	if int64(int(size)) != size {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	return nil
}

// CreateFile creates a segment of size bytes in a new file at path with
// permissions perm and maps it. It fails with a wrapped os.ErrExist if the
// path exists (even as a symbolic link).
func CreateFile(path string, size int64, perm os.FileMode) (*Segment, error) {
	if err := checkSize(size); err != nil {
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	s, err := create(path, size, perm.Perm())
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	return s, nil
}

// Open maps the existing named segment. minSize is the smallest size the
// caller can work with; a smaller file gives a wrapped ErrTooSmall.
func Open(name string, minSize int64) (*Segment, error) {
	path, err := NamePath(name)
	if err != nil {
		return nil, err
	}
	s, err := openNamed(path, minSize)
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", path, err)
	}
	return s, nil
}

// OpenFile maps the whole existing file at path, which must be a regular file
// of at least minSize bytes. It does not follow a symbolic link at path.
func OpenFile(path string, minSize int64) (*Segment, error) {
	s, err := open(path, minSize)
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", path, err)
	}
	return s, nil
}

// Remove removes the named segment's name. Processes that have it mapped keep
// their mapping; the memory is freed when the last one unmaps it. On Windows
// a named segment has no name to remove apart from its handles: Remove does
// nothing there, and the name goes when the last process closes it.
func Remove(name string) error {
	path, err := NamePath(name)
	if err != nil {
		return err
	}
	return removeNamed(path)
}

// Bytes returns the mapped memory, or nil after Close. Every byte of it may
// be written at any time by any process that maps the segment.
func (s *Segment) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mem
}

// Rounded reports whether Bytes may run past the size the segment was
// created with, by less than a page: true for a named segment opened on
// Windows, where the system reports a mapping's size in whole pages.
func (s *Segment) Rounded() bool { return s.sys.rounded() }

// Path returns the file that backs the segment (on Windows, for a named
// segment, the name of the mapping object).
func (s *Segment) Path() string { return s.path }

// File returns the open file behind the segment, for byte-range locks. It is
// nil after Close, and for a named segment on Windows (which has no file),
// and must not be closed by the caller.
func (s *Segment) File() *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.file
}

// Remove removes the segment's name, as the package-level Remove does (or
// the file of a file-backed segment). The mapping stays valid until Close.
func (s *Segment) Remove() error {
	if s.File() == nil {
		return removeNamed(s.path)
	}
	return os.Remove(s.path)
}

// Close unmaps the segment and closes its file. It is idempotent: calls after
// the first return nil.
func (s *Segment) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.mem != nil {
		errs = append(errs, s.unmap())
		s.mem = nil
	}
	if s.file != nil {
		errs = append(errs, s.file.Close()) // releases every lock it holds
		s.file = nil
		s.locks = nil
	}
	return errors.Join(errs...)
}
