package futex_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/testdir"
)

// mapWord maps the first page of path shared and returns its first word.
func mapWord(tb testing.TB, path string) *uint32 {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	return (*uint32)(unsafe.Pointer(&mem[0]))
}

// TestHelperWaiter is the child of TestWakeAcrossProcesses: it sleeps on the
// shared word and exits 0 only if it was woken, not timed out.
func TestHelperWaiter(t *testing.T) {
	path := os.Getenv("FUTEX_HELPER_FILE")
	if path == "" {
		t.Skip("helper process for TestWakeAcrossProcesses")
	}
	word := mapWord(t, path)
	if err := futex.Wait(word, 0, 30*time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "child Wait: %v\n", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func TestWakeAcrossProcesses(t *testing.T) {
	path := filepath.Join(testdir.Make(t), "word")
	if err := os.WriteFile(path, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	word := mapWord(t, path)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperWaiter$", "-test.v")
	cmd.Env = append(os.Environ(), "FUTEX_HELPER_FILE="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The word stays 0, so the child's Wait can only end by a wake (or its
	// timeout), and Wake reports how many sleepers it woke: a 1 proves the
	// child was asleep on this word in its own address space.
	woken := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		n, err := futex.Wake(word, 1)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			woken = n
			break
		}
		time.Sleep(time.Millisecond)
	}
	err = cmd.Wait()
	if woken != 1 {
		t.Fatalf("Wake never found the child asleep (woke %d); child: %v\n%s", woken, err, out.String())
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
}

// BenchmarkBarrier measures membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), the
// fence a side about to sleep pays for both sides: it interrupts every CPU
// that runs a registered thread (inter-processor interrupts, which cost a
// virtual machine an exit each).
func BenchmarkBarrier(b *testing.B) {
	if err := futex.RegisterBarrier(); err != nil {
		b.Skipf("no membarrier here: %v", err)
	}
	for b.Loop() {
		futex.Barrier()
	}
}

// BenchmarkWakeNobody measures a futex wake with no sleeper: the system call
// alone.
func BenchmarkWakeNobody(b *testing.B) {
	var word uint32
	for b.Loop() {
		futex.Wake(&word, 1)
	}
}
