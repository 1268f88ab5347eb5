package shmring_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/internal/testdir"
)

// The restart cases: a ring removed or replaced under its peers, and a
// leftover of a killed creator.

// removedProducerChild fills the ring SHMRING_TEST_NAME, says "full", then
// blocks in Send and reports how each call ends once the ring is removed.
func removedProducerChild() int {
	p, done := childProducer(shmring.Open(os.Getenv("SHMRING_TEST_NAME")))
	if p == nil {
		return 2
	}
	defer done()
	msg := make([]byte, 64)
	for p.TrySend(msg) == nil {
	}
	fmt.Println("full")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	report := func(call string, err error) {
		fmt.Printf("%s: removed=%v: %v\n", call, errors.Is(err, shmring.ErrRingRemoved), err)
	}
	report("blocked Send", p.Send(ctx, msg))
	report("Send", p.Send(ctx, msg))
	report("TrySend", p.TrySend(msg))
	_, err := p.SendBatch(ctx, [][]byte{msg, msg})
	report("SendBatch", err)
	_, err = p.TryReserve(8)
	report("TryReserve", err)
	return 0
}

// removedConsumerChild reads the ring SHMRING_TEST_NAME, printing each
// message's number, until a call fails; it prints how.
func removedConsumerChild() int {
	c, done := childConsumer(shmring.Open(os.Getenv("SHMRING_TEST_NAME")))
	if c == nil {
		return 2
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	buf := make([]byte, 64)
	for {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			fmt.Printf("Recv: removed=%v: %v\n", errors.Is(err, shmring.ErrRingRemoved), err)
			_, err = c.TryRecv(buf)
			fmt.Printf("TryRecv: removed=%v: %v\n", errors.Is(err, shmring.ErrRingRemoved), err)
			return 0
		}
		fmt.Println(binary.LittleEndian.Uint64(buf[:n]))
	}
}

// childLines starts a helper process and returns a channel of its stdout
// lines, closed when it exits, and its stderr.
func childLines(t *testing.T, role string, env ...string) (*exec.Cmd, <-chan string, *strings.Builder) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := execChild(exe, role, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range lines {
		}
		cmd.Wait()
	})
	return cmd, lines, &stderr
}

// nextLine returns the child's next line, failing after a generous bound.
func nextLine(t *testing.T, lines <-chan string, stderr *strings.Builder) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatalf("the child exited early:\n%s", stderr)
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("no line from the child in 30 s")
	}
	return ""
}

// TestRemovedRingStrandsNoProducer is the restart of a server: it removes
// its ring while a client process is blocked sending into it (full, and
// nobody consuming), and a new server creates a ring at the same name. The
// client's blocked Send and every later call must fail with ErrRingRemoved
// instead of writing into a ring nobody will read.
func TestRemovedRingStrandsNoProducer(t *testing.T) {
	name := ringName(t)
	old, err := shmring.Create(name, shmring.WithCapacity(4096))
	skipUnsupported(t, err)
	defer old.Close()
	_, lines, stderr := childLines(t, "removedproducer", "SHMRING_TEST_NAME="+name)
	if l := nextLine(t, lines, stderr); l != "full" {
		t.Fatalf("child said %q, want full\n%s", l, stderr)
	}
	time.Sleep(20 * time.Millisecond) // let it block in Send (either way it must fail)
	if err := old.Remove(); err != nil {
		t.Fatal(err)
	}
	create := func() *shmring.Ring {
		fresh, err := shmring.Create(name, shmring.WithCapacity(4096))
		if err != nil {
			t.Fatalf("a new ring at the removed name: %v", err)
		}
		t.Cleanup(func() { fresh.Close() })
		return fresh
	}
	var fresh *shmring.Ring
	if shm.NamesAreFiles {
		fresh = create() // while the client still has the old one
	} else {
		// Windows: the name lives while the old ring is open.
		_, err := shmring.Create(name, shmring.WithCapacity(4096))
		if !errors.Is(err, os.ErrExist) || !errors.Is(err, shmring.ErrRingRemoved) {
			t.Fatalf("create at the name of a removed ring still open on %s: %v, want os.ErrExist and ErrRingRemoved", runtime.GOOS, err)
		}
	}
	for _, call := range []string{"blocked Send", "Send", "TrySend", "SendBatch", "TryReserve"} {
		l := nextLine(t, lines, stderr)
		if !strings.HasPrefix(l, call+": removed=true") || !strings.Contains(l, name) {
			t.Errorf("%s after the ring was removed: %q, want ErrRingRemoved naming the ring", call, l)
		}
	}
	if _, err := old.Producer(); !errors.Is(err, shmring.ErrRingRemoved) {
		t.Errorf("Producer of the removed ring: %v, want ErrRingRemoved", err)
	}
	if _, err := old.Consumer(); !errors.Is(err, shmring.ErrRingRemoved) {
		t.Errorf("Consumer of the removed ring: %v, want ErrRingRemoved", err)
	}
	st, err := old.Stats()
	if err != nil || !st.Removed {
		t.Errorf("Stats of the removed ring: Removed %v, %v", st.Removed, err)
	}
	if fresh == nil {
		// Windows: free once the client (which has exited) and this
		// process have closed it.
		for range lines {
		}
		old.Close()
		fresh = create()
	}
	if st, err := fresh.Stats(); err != nil || st.Removed {
		t.Errorf("Stats of the new ring: Removed %v, %v", st.Removed, err)
	}
}

// TestRemovedRingConsumerDrains removes a ring, with the package-level
// Remove, while its consumer process is blocked in Recv and messages are
// still in flight: the consumer gets every message committed, then
// ErrRingRemoved, from Recv and TryRecv.
func TestRemovedRingConsumerDrains(t *testing.T) {
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithCapacity(4096))
	skipUnsupported(t, err)
	defer r.Close()
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(from, to uint64) {
		for seq := from; seq < to; seq++ {
			if err := p.TrySend(binary.LittleEndian.AppendUint64(nil, seq)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 5)
	_, lines, stderr := childLines(t, "removedconsumer", "SHMRING_TEST_NAME="+name)
	for seq := range 5 {
		if l := nextLine(t, lines, stderr); l != fmt.Sprint(seq) {
			t.Fatalf("message %d: child said %q", seq, l)
		}
	}
	send(5, 10)
	if err := shmring.Remove(name); err != nil {
		t.Fatal(err)
	}
	for seq := 5; seq < 10; seq++ {
		if l := nextLine(t, lines, stderr); l != fmt.Sprint(seq) {
			t.Fatalf("message %d, committed before the removal: child said %q", seq, l)
		}
	}
	for _, call := range []string{"Recv", "TryRecv"} {
		if l := nextLine(t, lines, stderr); !strings.HasPrefix(l, call+": removed=true") {
			t.Errorf("%s of a drained removed ring: %q, want ErrRingRemoved", call, l)
		}
	}
	if err := p.TrySend([]byte("late")); !errors.Is(err, shmring.ErrRingRemoved) {
		t.Errorf("TrySend after Remove: %v, want ErrRingRemoved", err)
	}
}

// createHoldChild creates the ring SHMRING_TEST_NAME, says so, and keeps it
// open until killed.
func createHoldChild() int {
	r, err := shmring.Create(os.Getenv("SHMRING_TEST_NAME"))
	if err != nil {
		fmt.Println(err)
		return 2
	}
	defer r.Close()
	fmt.Println("created")
	time.Sleep(time.Minute)
	return 0
}

// TestRemoveIfUnused removes a named ring only when no process has it open.
func TestRemoveIfUnused(t *testing.T) {
	name := ringName(t)
	if err := shmring.RemoveIfUnused(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing name: %v, want os.ErrNotExist", err)
	}
	if err := shmring.RemoveIfUnused("a/b"); !errors.Is(err, shmring.ErrBadName) {
		t.Fatalf("a bad name: %v, want ErrBadName", err)
	}
	cmd, lines, stderr := childLines(t, "createhold", "SHMRING_TEST_NAME="+name)
	if l := nextLine(t, lines, stderr); l != "created" {
		skipUnsupported(t, errors.New(l))
	}
	if err := shmring.RemoveIfUnused(name); !errors.Is(err, shmring.ErrInUse) {
		t.Fatalf("a ring open in another process: %v, want ErrInUse", err)
	}
	r, err := shmring.Open(name)
	if err != nil {
		t.Fatalf("the ring in use was removed: %v", err)
	}
	if runtime.GOOS == "linux" {
		// This process's own use counts too (OFD locks; POSIX record
		// locks elsewhere do not see their own process).
		cmd.Process.Kill()
		cmd.Wait()
		if err := shmring.RemoveIfUnused(name); !errors.Is(err, shmring.ErrInUse) {
			t.Fatalf("a ring open in this process: %v, want ErrInUse", err)
		}
	}
	r.Close()
	cmd.Process.Kill()
	cmd.Wait()
	err = shmring.RemoveIfUnused(name)
	if !shm.NamesAreFiles {
		// The name went with its last user.
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a ring nobody has open on %s: %v, want os.ErrNotExist", runtime.GOOS, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("a ring whose creator was killed: %v", err)
	}
	if _, err := shmring.Open(name); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open after RemoveIfUnused: %v, want os.ErrNotExist", err)
	}

	path, _ := shm.NamePath(name)
	// Not a ring: never removed.
	if err := os.WriteFile(path, []byte("not a ring, but long enough to be looked at as one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := shmring.RemoveIfUnused(name); err == nil || errors.Is(err, shmring.ErrInUse) {
		t.Fatalf("a file that is not a ring: %v, want an error saying so", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the file that is not a ring was removed: %v", err)
	}
	// Unfinished: spared while its creator may be writing it.
	if err := os.WriteFile(path, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := shmring.RemoveIfUnused(name); !errors.Is(err, shmring.ErrInUse) {
		t.Fatalf("a fresh unfinished ring: %v, want ErrInUse", err)
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(path, old, old)
	if err := shmring.RemoveIfUnused(name); err != nil {
		t.Fatalf("an unfinished ring a minute old: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the unfinished ring is still there: %v", err)
	}
}

// TestReplaceUnused creates a ring where a killed creator left one, in one
// call, and never replaces a ring in use.
func TestReplaceUnused(t *testing.T) {
	name := ringName(t)
	cmd, lines, stderr := childLines(t, "createhold", "SHMRING_TEST_NAME="+name)
	if l := nextLine(t, lines, stderr); l != "created" {
		skipUnsupported(t, errors.New(l))
	}
	// In use: never replaced, whatever the option.
	_, err := shmring.Create(name, shmring.WithReplaceUnused())
	if !errors.Is(err, os.ErrExist) || !errors.Is(err, shmring.ErrInUse) {
		t.Fatalf("replacing a ring in use: %v, want os.ErrExist and ErrInUse", err)
	}
	held, err := shmring.Open(name)
	if err != nil {
		t.Fatalf("the ring in use is gone: %v", err)
	}
	oldID := held.Info().UUID
	held.Close()

	cmd.Process.Kill() // the leftover of a creator killed with SIGKILL
	cmd.Wait()
	if shm.NamesAreFiles {
		if _, err := shmring.Create(name); !errors.Is(err, os.ErrExist) {
			t.Fatalf("create over a leftover without the option: %v, want os.ErrExist", err)
		}
	}
	r, err := shmring.Create(name, shmring.WithReplaceUnused())
	if err != nil {
		t.Fatalf("replacing the leftover: %v", err)
	}
	defer r.Close()
	if r.Info().UUID == oldID {
		t.Fatal("the ring was not replaced")
	}
	// And it works.
	p, c := pairOf(t, r)
	if err := p.TrySend([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := c.TryRecv(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("TryRecv: %q, %v", buf[:n], err)
	}
}

// TestReplaceUnusedFile is TestReplaceUnused for a file-backed ring left
// by a closed creator, and a file that is not a ring.
func TestReplaceUnusedFile(t *testing.T) {
	path := filepath.Join(testdir.Make(t), "ring")
	r, err := shmring.CreateFile(path, shmring.WithCapacity(4096))
	skipUnsupported(t, err)
	r.Close()
	if _, err := shmring.CreateFile(path); !errors.Is(err, os.ErrExist) {
		t.Fatalf("create over a closed ring without the option: %v, want os.ErrExist", err)
	}
	r, err = shmring.CreateFile(path, shmring.WithReplaceUnused())
	if !shm.NamesAreFiles {
		// Windows has no presence lock: whether the file is in use
		// cannot be told, and the call says so.
		if !errors.Is(err, os.ErrExist) || !errors.Is(err, shmring.ErrNotSupported) {
			t.Fatalf("replacing a file-backed ring on %s: %v, want os.ErrExist and ErrNotSupported", runtime.GOOS, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("replacing a closed ring: %v", err)
	}
	r.Close()

	// A closed ring removed by path; one open here is in use.
	if err := shmring.RemoveFileIfUnused(path); err != nil {
		t.Fatalf("RemoveFileIfUnused of a closed ring: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the closed ring is still there: %v", err)
	}
	if err := shmring.RemoveFileIfUnused(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("RemoveFileIfUnused of a missing file: %v, want os.ErrNotExist", err)
	}
	open, err := shmring.CreateFile(path, shmring.WithCapacity(4096))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if runtime.GOOS == "linux" {
		if err := shmring.RemoveFileIfUnused(path); !errors.Is(err, shmring.ErrInUse) {
			t.Fatalf("RemoveFileIfUnused of a ring open here: %v, want ErrInUse", err)
		}
	}

	other := filepath.Join(testdir.Make(t), "other")
	if err := os.WriteFile(other, []byte(strings.Repeat("x", 5000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := shmring.CreateFile(other, shmring.WithReplaceUnused()); !errors.Is(err, os.ErrExist) {
		t.Fatalf("create over a file that is not a ring: %v, want os.ErrExist", err)
	}
	if b, err := os.ReadFile(other); err != nil || len(b) != 5000 {
		t.Fatalf("the file that is not a ring changed: %d bytes, %v", len(b), err)
	}
}

// TestErrorsNameTheRing checks that errors after Close say which ring, and
// that Commit says what was wrong with its length.
func TestErrorsNameTheRing(t *testing.T) {
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithCapacity(4096))
	skipUnsupported(t, err)
	defer r.Close()
	p, c := pairOf(t, r)
	if _, err := p.TryReserve(10); err != nil {
		t.Fatal(err)
	}
	err = p.Commit(20)
	if !errors.Is(err, shmring.ErrCommitSize) || !strings.Contains(err.Error(), "commit of 20 bytes, 10 reserved") {
		t.Errorf("Commit(20) after Reserve(10): %v", err)
	}
	p.Abort()
	p.Close()
	c.Close()
	for what, err := range map[string]error{
		"Send":    p.Send(context.Background(), nil),
		"TrySend": p.TrySend(nil),
		"Recv":    func() error { _, err := c.Recv(context.Background(), nil); return err }(),
		"TryPeek": func() error { _, err := c.TryPeek(); return err }(),
	} {
		if !errors.Is(err, os.ErrClosed) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s after Close: %v, want os.ErrClosed naming ring %s", what, err, name)
		}
	}
	// The errors a loop meets stay bare: comparable, allocation-free.
	p2, c2 := pairOf(t, r)
	if _, err := c2.TryRecv(nil); err != shmring.ErrEmpty {
		t.Errorf("TryRecv of an empty ring: %v, want ErrEmpty itself", err)
	}
	for p2.TrySend(make([]byte, 100)) == nil {
	}
	if err := p2.TrySend(make([]byte, 100)); err != shmring.ErrFull {
		t.Errorf("TrySend into a full ring: %v, want ErrFull itself", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p2.Send(ctx, make([]byte, 100)); err != context.Canceled {
		t.Errorf("Send with a cancelled context: %v, want context.Canceled itself", err)
	}
}

// pairOf attaches a producer and the consumer to r, closed at the end of
// the test (closing them earlier is harmless: Close is idempotent).
func pairOf(t *testing.T, r *shmring.Ring) (*shmring.Producer, *shmring.Consumer) {
	t.Helper()
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}
