package shm_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/internal/testdir"
)

// TestWindowsBadInput: every way a Windows open or create goes wrong has its
// own error.
func TestWindowsBadInput(t *testing.T) {
	name := uniqueName(t)
	a, err := shm.Create(name, 5000, shm.DefaultPerm) // not a whole number of pages
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := shm.Create(name, 5000, shm.DefaultPerm); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create of an existing name: got %v, want os.ErrExist", err)
	}
	b, err := shm.Open(name, 5000)
	if err != nil {
		t.Fatal(err)
	}
	// The system reports the size in whole pages (Segment.Rounded).
	if got := len(b.Bytes()); got < 5000 || got >= 5000+4096 || (got != 5000 && !b.Rounded()) {
		t.Fatalf("Open sees %d bytes (rounded: %v), want the 5000 it was created with, or up to the next page", got, b.Rounded())
	}
	b.Close()
	if _, err := shm.Open(name, 8193); !errors.Is(err, shm.ErrTooSmall) {
		t.Fatalf("Open needing more than the mapping has: got %v, want ErrTooSmall", err)
	}

	// A name that another kind of kernel object holds.
	other := uniqueName(t)
	n, _ := windows.UTF16PtrFromString(`Local\` + other)
	m, err := windows.CreateMutex(nil, false, n)
	if err != nil {
		t.Fatal(err)
	}
	defer windows.CloseHandle(m)
	if _, err := shm.Create(other, 4096, shm.DefaultPerm); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over a mutex's name: got %v, want os.ErrExist", err)
	}
	if _, err := shm.Open(other, 1); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a mutex's name: got %v, want an error other than not-exist", err)
	}

	// A file name Windows rejects.
	bad := filepath.Join(testdir.Make(t), "a<b|c")
	if _, err := shm.CreateFile(bad, 4096, shm.DefaultPerm); !errors.Is(err, shm.ErrBadName) {
		t.Fatalf("CreateFile(%q): got %v, want ErrBadName", bad, err)
	}
	if _, err := shm.OpenFile(bad, 1); !errors.Is(err, shm.ErrBadName) {
		t.Fatalf("OpenFile(%q): got %v, want ErrBadName", bad, err)
	}
}
