package shm_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/internal/testdir"
)

// TestFullTmpfs creates a segment larger than a small tmpfs can hold: it
// must fail at creation with ErrNoSpace, leave no file behind, and a
// segment that fits must work to its last byte (no SIGBUS later).
func TestFullTmpfs(t *testing.T) {
	dir := testdir.Make(t)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): %v", err)
	}
	defer unix.Unmount(dir, 0)
	path := filepath.Join(dir, "big")
	_, err := shm.CreateFile(path, 4<<20, 0o600)
	if !errors.Is(err, shm.ErrNoSpace) {
		t.Fatalf("4 MiB segment in a 1 MiB tmpfs: got %v, want ErrNoSpace", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed segment was left behind: %v", err)
	}
	s, err := shm.CreateFile(filepath.Join(dir, "fits"), 512<<10, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mem := s.Bytes()
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1 // every page is backed: this would SIGBUS if it were not
	}
	mem[len(mem)-1] = 1
}

// TestHelperOpener is the child of TestOtherUserRefused: it tries to open the
// segment and reports the error it got.
func TestHelperOpener(t *testing.T) {
	path := os.Getenv("SHM_OPEN_HELPER_FILE")
	if path == "" {
		t.Skip("helper process for TestOtherUserRefused")
	}
	s, err := shm.OpenFile(path, 1)
	if err == nil {
		s.Close()
		os.Stdout.WriteString("opened\n")
		os.Exit(0)
	}
	os.Stdout.WriteString(err.Error() + "\n")
	os.Exit(1)
}

// TestOtherUserRefused runs a child as another user (nobody): it must not be
// able to open a segment created with the default mode, 0600, and must be
// able to open one created 0666.
func TestOtherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a child as another user needs root")
	}
	dir, err := os.MkdirTemp("", "shm-perm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // the child must reach the files; the files decide
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary itself must be readable and executable by nobody.
	bin := filepath.Join(dir, "test.bin")
	if data, err := os.ReadFile(exe); err != nil || os.WriteFile(bin, data, 0o755) != nil {
		t.Fatalf("copying the test binary: %v", err)
	}
	for _, tc := range []struct {
		perm os.FileMode
		want string
	}{
		{shm.DefaultPerm, "permission denied"},
		{0o666, "opened"},
	} {
		path := filepath.Join(dir, "seg-"+tc.perm.String())
		s, err := shm.CreateFile(path, 4096, tc.perm)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^TestHelperOpener$")
		cmd.Env = append(os.Environ(), "SHM_OPEN_HELPER_FILE="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, _ := cmd.Output()
		s.Close()
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("mode %v: the other user's open said %q, want %q", tc.perm, out, tc.want)
		}
	}
}
