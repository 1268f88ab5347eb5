package shm_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/internal/testdir"
)

// skipUnsupported skips a test on systems where segments are not implemented
// and fails it on any other error.
func skipUnsupported(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, shm.ErrNotSupported) {
		tb.Skipf("segments not supported here: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

func uniqueName(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("shmring-test-%s", uuid.NewString())
	tb.Cleanup(func() { shm.Remove(name) })
	return name
}

func TestNamedCreateOpenShare(t *testing.T) {
	name := uniqueName(t)
	a, err := shm.Create(name, 8192, shm.DefaultPerm)
	skipUnsupported(t, err)
	defer a.Close()
	if got := len(a.Bytes()); got != 8192 {
		t.Fatalf("len(Bytes()) = %d, want 8192", got)
	}
	b, err := shm.Open(name, 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.Bytes()[100] = 42
	if got := b.Bytes()[100]; got != 42 {
		t.Fatalf("second mapping reads %d, want 42", got)
	}
	if runtime.GOOS == "windows" {
		// No file, no mode, no name to remove: the mapping exists while a
		// handle to it does.
		a.Close()
		if got := b.Bytes()[100]; got != 42 {
			t.Fatalf("after the creator closed, the mapping reads %d, want 42", got)
		}
		b.Close()
		if _, err := shm.Open(name, 1); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Open after every handle closed: got %v, want os.ErrNotExist", err)
		}
		return
	}
	st, err := os.Stat(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := shm.Open(name, 1); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open after Remove: got %v, want os.ErrNotExist", err)
	}
	// The mapping outlives the name.
	if got := b.Bytes()[100]; got != 42 {
		t.Fatalf("after Remove the mapping reads %d, want 42", got)
	}
}

func TestCreateExisting(t *testing.T) {
	name := uniqueName(t)
	a, err := shm.Create(name, 4096, shm.DefaultPerm)
	skipUnsupported(t, err)
	defer a.Close()
	_, err = shm.Create(name, 4096, shm.DefaultPerm)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("second Create: got %v, want os.ErrExist", err)
	}
}

func TestOpenMissing(t *testing.T) {
	_, err := shm.Open("shmring-test-"+uuid.NewString(), 1)
	if errors.Is(err, shm.ErrNotSupported) {
		t.Skip(err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want os.ErrNotExist", err)
	}
}

func TestBadNames(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"slash", "a/b"},
		{"backslash", `a\b`},
		{"dotdot", ".."},
		{"dotdot inside", "a..b"},
		{"dot", "."},
		{"nul", "a\x00b"},
		{"too long", strings.Repeat("x", shm.MaxNameLen+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := shm.Create(tc.in, 4096, shm.DefaultPerm); !errors.Is(err, shm.ErrBadName) {
				t.Fatalf("Create(%q): got %v, want ErrBadName", tc.in, err)
			}
			if _, err := shm.Open(tc.in, 1); !errors.Is(err, shm.ErrBadName) {
				t.Fatalf("Open(%q): got %v, want ErrBadName", tc.in, err)
			}
			if err := shm.Remove(tc.in); !errors.Is(err, shm.ErrBadName) {
				t.Fatalf("Remove(%q): got %v, want ErrBadName", tc.in, err)
			}
		})
	}
	if err := shm.ValidateName(strings.Repeat("x", shm.MaxNameLen)); err != nil {
		t.Fatalf("name of MaxNameLen bytes: %v", err)
	}
}

func TestTooSmall(t *testing.T) {
	dir := testdir.Make(t)
	if _, err := shm.CreateFile(filepath.Join(dir, "zero"), 0, shm.DefaultPerm); !errors.Is(err, shm.ErrTooSmall) {
		t.Fatalf("CreateFile size 0: got %v, want ErrTooSmall", err)
	}
	path := filepath.Join(dir, "small")
	if err := os.WriteFile(path, make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := shm.OpenFile(path, 4096)
	if errors.Is(err, shm.ErrNotSupported) {
		t.Skip(err)
	}
	if !errors.Is(err, shm.ErrTooSmall) {
		t.Fatalf("OpenFile of 100 bytes needing 4096: got %v, want ErrTooSmall", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := shm.OpenFile(empty, 0); !errors.Is(err, shm.ErrTooSmall) {
		t.Fatalf("OpenFile of an empty file: got %v, want ErrTooSmall", err)
	}
}

func TestNotRegular(t *testing.T) {
	_, err := shm.OpenFile(testdir.Make(t), 1)
	if errors.Is(err, shm.ErrNotSupported) {
		t.Skip(err)
	}
	if err == nil {
		t.Fatal("OpenFile of a directory succeeded")
	}
}

func TestFileBacked(t *testing.T) {
	path := filepath.Join(testdir.Make(t), "ring")
	a, err := shm.CreateFile(path, 65536, 0o640)
	skipUnsupported(t, err)
	a.Bytes()[65535] = 7
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if a.Bytes() != nil {
		t.Fatal("Bytes after Close is not nil")
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o640 { // Windows has no modes
		t.Fatalf("mode %v, want 0640 (the umask must not apply)", st.Mode().Perm())
	}
	b, err := shm.OpenFile(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := b.Bytes()[65535]; got != 7 {
		t.Fatalf("reopened file reads %d, want 7", got)
	}
}

func TestSymlinkRefused(t *testing.T) {
	dir := testdir.Make(t)
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("cannot make a symbolic link here: %v", err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		// Wine 8 reports success and makes nothing.
		t.Skipf("os.Symlink returned nil but made no symbolic link (%v)", err)
	}
	if _, err := shm.OpenFile(link, 1); err == nil {
		t.Fatal("OpenFile followed a symbolic link")
	} else if errors.Is(err, shm.ErrNotSupported) {
		t.Skip(err)
	}
	if _, err := shm.CreateFile(link, 4096, shm.DefaultPerm); !errors.Is(err, os.ErrExist) {
		t.Fatalf("CreateFile over a symbolic link: got %v, want os.ErrExist", err)
	}
}
