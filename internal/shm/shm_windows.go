package shm

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
)

// On Windows a named segment is a mapping backed by the paging file, named
// Local\NAME: it has no file, and it exists while some process holds a
// handle to it. A file-backed segment is a mapping of the file (the system
// refuses to shrink a file while it is mapped, so there is no SIGBUS
// equivalent to guard against there).

// namedPrefix is the kernel-object namespace of named segments: the
// processes of one logon session see them.
const namedPrefix = `Local\`

// sysSegment holds the mapping object, and the prefix of the names of the
// segment's liveness mutexes (lock_windows.go).
type sysSegment struct {
	mapping    windows.Handle
	lockPrefix string
	opened     bool // a named segment opened, not created: its size is rounded
}

func (s sysSegment) rounded() bool { return s.opened }

// Functions that golang.org/x/sys/windows lacks, or whose wrapper drops the
// error that a successful call leaves (ERROR_ALREADY_EXISTS).
var (
	kernel32               = windows.NewLazySystemDLL("kernel32.dll")
	ntdll                  = windows.NewLazySystemDLL("ntdll.dll")
	procCreateFileMappingW = kernel32.NewProc("CreateFileMappingW")
	procOpenFileMappingW   = kernel32.NewProc("OpenFileMappingW")
	procNtQuerySection     = ntdll.NewProc("NtQuerySection")
)

const (
	sectionQuery       = 0x0001 // SECTION_QUERY
	secCommit          = 0x8000000
	sectionBasicInfo   = 0 // SectionBasicInformation
	mapAccess          = windows.FILE_MAP_READ | windows.FILE_MAP_WRITE
	errCommitmentLimit = windows.Errno(1455) // ERROR_COMMITMENT_LIMIT
)

// namedDir is empty: named segments are not files on Windows.
func namedDir() string { return "" }

// namesAreFiles: see NamesAreFiles.
const namesAreFiles = false

func namePath(name string) string { return namedPrefix + name }

func createNamed(path string, size int64, perm os.FileMode) (_ *Segment, err error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadName, err)
	}
	// The last error tells a new mapping from an existing one: Call keeps it.
	h, _, callErr := procCreateFileMappingW.Call(uintptr(windows.InvalidHandle), 0,
		windows.PAGE_READWRITE|secCommit, uintptr(uint64(size)>>32), uintptr(uint32(size)),
		uintptr(unsafe.Pointer(name)))
	if h == 0 {
		return nil, objectErr("create", path, callErr)
	}
	mapping := windows.Handle(h)
	if errors.Is(callErr, windows.ERROR_ALREADY_EXISTS) {
		windows.CloseHandle(mapping)
		return nil, &os.PathError{Op: "create", Path: path, Err: os.ErrExist}
	}
	return mapView(path, mapping, nil, size, path)
}

func openNamed(path string, minSize int64) (*Segment, error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadName, err)
	}
	h, _, callErr := procOpenFileMappingW.Call(mapAccess|sectionQuery, 0, uintptr(unsafe.Pointer(name)))
	if h == 0 {
		return nil, objectErr("open", path, callErr)
	}
	mapping := windows.Handle(h)
	size, err := sectionSize(mapping)
	if err == nil {
		err = checkOpenSize(size, minSize)
	}
	if err != nil {
		windows.CloseHandle(mapping)
		return nil, err
	}
	s, err := mapView(path, mapping, nil, size, path)
	if s != nil {
		s.sys.opened = true
	}
	return s, err
}

// sectionSize returns the size of a mapping object: the size it was created
// with, rounded up to whole pages for one backed by the paging file (as Wine
// reports it, at least; see Segment.Rounded).
func sectionSize(mapping windows.Handle) (int64, error) {
	var info struct {
		base  uintptr
		attrs uint32
		size  int64
	}
	status, _, _ := procNtQuerySection.Call(uintptr(mapping), sectionBasicInfo,
		uintptr(unsafe.Pointer(&info)), unsafe.Sizeof(info), 0)
	if status != 0 {
		return 0, fmt.Errorf("NtQuerySection: %w", windows.NTStatus(status))
	}
	return info.size, nil
}

func checkOpenSize(size, minSize int64) error {
	if size < max(minSize, 1) {
		return fmt.Errorf("%w: %d bytes, need at least %d", ErrTooSmall, size, max(minSize, 1))
	}
	if int64(int(size)) != size {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	return nil
}

// removeNamed removes a file-backed segment's file; a named segment goes
// with its last handle.
func removeNamed(path string) error {
	if strings.HasPrefix(path, namedPrefix) {
		return nil
	}
	return os.Remove(path)
}

func create(path string, size int64, perm os.FileMode) (_ *Segment, err error) {
	f, err := openFile(path, windows.CREATE_NEW)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if perm&0o200 == 0 {
		// Only the owner's write bit has a Windows equivalent (read-only),
		// and a read-only file cannot be mapped for writing.
		return nil, fmt.Errorf("permissions %v: the owner must be able to write", perm)
	}
	if err := f.Truncate(size); err != nil {
		if errors.Is(err, windows.ERROR_DISK_FULL) {
			return nil, fmt.Errorf("%w: reserving %d bytes: %w", ErrNoSpace, size, err)
		}
		return nil, err
	}
	return mapFile(path, f, size)
}

func open(path string, minSize int64) (_ *Segment, err error) {
	f, err := openFile(path, windows.OPEN_EXISTING)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(f.Fd()), &info); err != nil {
		return nil, fmt.Errorf("file information: %w", err)
	}
	switch {
	case info.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0:
		return nil, &os.PathError{Op: "open", Path: path, Err: errors.New("is a symbolic link or junction, refused")}
	case info.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0:
		return nil, ErrNotRegular
	}
	size := int64(info.FileSizeHigh)<<32 | int64(info.FileSizeLow)
	if err := checkOpenSize(size, minSize); err != nil {
		return nil, err
	}
	return mapFile(path, f, size)
}

// openFile opens or creates path without following a symbolic link at it
// (FILE_FLAG_OPEN_REPARSE_POINT), sharing it with every other opener.
func openFile(path string, disposition uint32) (*os.File, error) {
	name, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(name, windows.GENERIC_READ|windows.GENERIC_WRITE,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil, disposition,
		windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT|windows.FILE_FLAG_BACKUP_SEMANTICS, 0)
	if err != nil {
		switch {
		case errors.Is(err, windows.ERROR_FILE_EXISTS):
			err = os.ErrExist
		case errors.Is(err, windows.ERROR_INVALID_NAME):
			err = fmt.Errorf("%w: Windows rejects it: %w", ErrBadName, err)
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}

// mapFile maps the whole of an open file. Its liveness mutexes are named
// after the file's identity (volume and file index), which every process
// that opens the file sees alike, whatever path it used.
func mapFile(path string, f *os.File, size int64) (*Segment, error) {
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(windows.Handle(f.Fd()), &info); err != nil {
		return nil, fmt.Errorf("file information: %w", err)
	}
	mapping, err := windows.CreateFileMapping(windows.Handle(f.Fd()), nil, windows.PAGE_READWRITE, 0, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("CreateFileMapping: %w", err)
	}
	id := fmt.Sprintf("%sshmring-file-%08x-%08x%08x", namedPrefix, info.VolumeSerialNumber, info.FileIndexHigh, info.FileIndexLow)
	return mapView(path, mapping, f, size, id)
}

// mapView maps size bytes of a mapping object; it owns mapping (and closes
// it on failure), not f.
func mapView(path string, mapping windows.Handle, f *os.File, size int64, lockPrefix string) (*Segment, error) {
	addr, err := windows.MapViewOfFile(mapping, mapAccess, 0, 0, uintptr(size))
	if err != nil {
		windows.CloseHandle(mapping)
		return nil, fmt.Errorf("MapViewOfFile of %d bytes: %w", size, err)
	}
	// The view is memory outside the Go heap; converting its address
	// through a pointer to it keeps go vet's unsafeptr check content.
	mem := unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))), int(size))
	return &Segment{path: path, mem: mem, file: f, sys: sysSegment{mapping: mapping, lockPrefix: lockPrefix}}, nil
}

// unmap releases the liveness mutexes the Segment holds, unmaps the view and
// closes the mapping object (called with s.mu held).
func (s *Segment) unmap() error {
	var errs []error
	for off := range s.locks {
		errs = append(errs, unlock(s, off))
	}
	s.locks = nil
	errs = append(errs, windows.UnmapViewOfFile(uintptr(unsafe.Pointer(unsafe.SliceData(s.mem)))))
	errs = append(errs, windows.CloseHandle(s.sys.mapping))
	return errors.Join(errs...)
}

// objectErr turns the error of creating or opening a named kernel object
// into one that errors.Is recognises.
func objectErr(op, path string, err error) error {
	switch {
	case errors.Is(err, windows.ERROR_FILE_NOT_FOUND):
		err = os.ErrNotExist
	case errors.Is(err, windows.ERROR_INVALID_NAME), errors.Is(err, windows.ERROR_BAD_PATHNAME), errors.Is(err, windows.ERROR_PATH_NOT_FOUND):
		err = fmt.Errorf("%w: Windows rejects it: %w", ErrBadName, err)
	case errors.Is(err, windows.ERROR_INVALID_HANDLE):
		// The name is taken by a kernel object of another type.
		err = fmt.Errorf("%w: the name belongs to another kind of kernel object", os.ErrExist)
	case errors.Is(err, windows.ERROR_NOT_ENOUGH_MEMORY), errors.Is(err, errCommitmentLimit):
		err = fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return &os.PathError{Op: op, Path: path, Err: err}
}
