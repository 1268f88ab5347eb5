package shm_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/internal/testdir"
)

func lockSegment(t *testing.T) (*shm.Segment, string) {
	t.Helper()
	path := filepath.Join(testdir.Make(t), "seg")
	s, err := shm.CreateFile(path, 4096, 0o600)
	skipUnsupported(t, err)
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestLockWithinSegment(t *testing.T) {
	s, _ := lockSegment(t)
	for _, step := range []struct {
		what string
		do   func() (bool, error)
		want bool
	}{
		{"first TryLock", func() (bool, error) { return s.TryLock(100) }, true},
		{"Locked while held", func() (bool, error) { return s.Locked(100) }, true},
		{"second TryLock", func() (bool, error) { return s.TryLock(100) }, false},
		{"TryLock of another byte", func() (bool, error) { return s.TryLock(101) }, true},
		{"TryLock after Unlock", func() (bool, error) { s.Unlock(100); return s.TryLock(100) }, true},
		{"Locked after Unlock", func() (bool, error) { s.Unlock(100); return s.Locked(100) }, false},
	} {
		got, err := step.do()
		if err != nil || got != step.want {
			t.Fatalf("%s: got %v, %v; want %v", step.what, got, err, step.want)
		}
	}
	s.Close()
	if _, err := s.TryLock(1); err == nil {
		t.Fatal("TryLock after Close succeeded")
	}
}

// Two Segments of one file exclude each other when the locks belong to
// open file descriptions (Linux) or to the process's keeper of named mutexes
// (Windows); POSIX locks elsewhere do not, as documented.
func TestLockAcrossSegments(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "windows" {
		t.Skipf("%s has no OFD locks: %s", runtime.GOOS, shm.LockKind)
	}
	a, path := lockSegment(t)
	b, err := shm.OpenFile(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if ok, err := a.TryLock(7); !ok || err != nil {
		t.Fatalf("a.TryLock: %v, %v", ok, err)
	}
	if ok, err := b.TryLock(7); ok || err != nil {
		t.Fatalf("b.TryLock of a's lock: %v, %v", ok, err)
	}
	if held, err := b.Locked(7); !held || err != nil {
		t.Fatalf("b.Locked of a's lock: %v, %v", held, err)
	}
	a.Close() // closing the description releases its locks
	if ok, err := b.TryLock(7); !ok || err != nil {
		t.Fatalf("b.TryLock after a.Close: %v, %v", ok, err)
	}
}

// TestHelperLocker is the child of TestLockReleasedAtDeath: it takes a lock,
// says so, and waits to be killed.
func TestHelperLocker(t *testing.T) {
	path := os.Getenv("SHM_LOCK_HELPER_FILE")
	if path == "" {
		t.Skip("helper process for TestLockReleasedAtDeath")
	}
	s, err := shm.OpenFile(path, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.TryLock(42); !ok || err != nil {
		t.Fatalf("child TryLock: %v, %v", ok, err)
	}
	os.Stdout.WriteString("locked\n")
	time.Sleep(time.Minute)
	os.Exit(3)
}

func TestLockReleasedAtDeath(t *testing.T) {
	s, path := lockSegment(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperLocker$")
	cmd.Env = append(os.Environ(), "SHM_LOCK_HELPER_FILE="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	if held, err := s.Locked(42); !held || err != nil {
		t.Fatalf("Locked while the child holds it: %v, %v", held, err)
	}
	if ok, err := s.TryLock(42); ok || err != nil {
		t.Fatalf("TryLock while the child holds it: %v, %v", ok, err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup in the child
		t.Fatal(err)
	}
	cmd.Wait()
	if held, err := s.Locked(42); held || err != nil {
		t.Fatalf("Locked after the child's death: %v, %v", held, err)
	}
	if ok, err := s.TryLock(42); !ok || err != nil {
		t.Fatalf("TryLock after the child's death: %v, %v", ok, err)
	}
}
