package futex_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/google/uuid"

	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/shm"
)

// sharedWord maps the named segment and registers it under id; it returns
// the word at offset 64.
func sharedWord(tb testing.TB, seg *shm.Segment, id string) *uint32 {
	tb.Helper()
	unregister := futex.Register(seg.Bytes(), id)
	tb.Cleanup(func() { unregister(); seg.Close() })
	return (*uint32)(unsafe.Pointer(&seg.Bytes()[64]))
}

// TestHelperWaiter is the child of TestWakeAcrossProcesses: it sleeps on the
// shared word and exits 0 only if it was woken, not timed out.
func TestHelperWaiter(t *testing.T) {
	name := os.Getenv("FUTEX_HELPER_NAME")
	if name == "" {
		t.Skip("helper process for TestWakeAcrossProcesses")
	}
	seg, err := shm.Open(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	word := sharedWord(t, seg, name)
	if err := futex.Wait(word, 0, 30*time.Second); err != nil {
		fmt.Fprintf(os.Stderr, "child Wait: %v\n", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// TestWakeAcrossProcesses: one Wake in this process ends a Wait in another,
// through the named semaphore both derive from the registered id. The word
// stays 0, so only a wake (or the 30 s timeout) ends the child's Wait.
func TestWakeAcrossProcesses(t *testing.T) {
	name := "futex-test-" + uuid.NewString()
	seg, err := shm.Create(name, 4096, shm.DefaultPerm)
	if err != nil {
		t.Fatal(err)
	}
	word := sharedWord(t, seg, name)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperWaiter$", "-test.v")
	cmd.Env = append(os.Environ(), "FUTEX_HELPER_NAME="+name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // most likely asleep by now; if not, the count waits for it
	start := time.Now()
	if _, err := futex.Wake(word, 1); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child not woken: %v\n%s", err, out.String())
	}
	t.Logf("child exited %v after the wake", time.Since(start))
}

// TestRegisterNamesByID: the same offset in two registered mappings is two
// semaphores when the ids differ, and one when they match (two mappings of
// one ring), whatever the addresses.
func TestRegisterNamesByID(t *testing.T) {
	a, b, c := make([]uint32, 64), make([]uint32, 64), make([]uint32, 64)
	bytesOf := func(w []uint32) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 4*len(w)) }
	id := "futex-test-" + uuid.NewString()
	defer futex.Register(bytesOf(a), id)()
	defer futex.Register(bytesOf(b), id+"-other")()
	defer futex.Register(bytesOf(c), id)()
	if _, err := futex.Wake(&a[16], 1); err != nil {
		t.Fatal(err)
	}
	if err := futex.Wait(&b[16], 0, 50*time.Millisecond); err != os.ErrDeadlineExceeded {
		t.Fatalf("Wait on another ring's word: %v, want the timeout", err)
	}
	if err := futex.Wait(&c[16], 0, 10*time.Second); err != nil {
		t.Fatalf("Wait on the same ring's word in another mapping: %v, want the wake", err)
	}
}

// TestStolenCount: a word that moved while its sleeper's count was taken by
// another sleeper on the same word (futex_windows.go) ends the sleep all the
// same, at the sleeper's next look. A store without a Wake leaves the
// sleeper as such a theft would: its word moved, no count for it. Both ways
// to sleep: Sleep (through a group) and Wait.
func TestStolenCount(t *testing.T) {
	var word uint32
	sleeps := map[string]func(val uint32) error{
		"Sleep": func(val uint32) error { return futex.Sleep(&word, val, futex.Forever, nil, 0) },
		"Wait":  func(val uint32) error { return futex.Wait(&word, val, time.Minute) },
	}
	for _, how := range []string{"Sleep", "Wait"} {
		val := atomic.LoadUint32(&word)
		done := make(chan error, 1)
		go func() { done <- sleeps[how](val) }()
		time.Sleep(300 * time.Millisecond) // asleep, and past its first looks
		atomic.AddUint32(&word, 1)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: a sleeper whose word moved without a count for it slept on", how)
		}
	}
}
