package futex_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmring/shmring/internal/futex"
)

// bells makes a FIFO and opens it twice, as the sleeping process and the
// ringing one would.
func bells(t *testing.T) (sleeper, ringer *futex.Bell, path string) {
	t.Helper()
	if !futex.BellsSupported() {
		t.Skip("bells need Linux 5.16 or later (futex_waitv) here")
	}
	path = filepath.Join(t.TempDir(), "bell")
	if err := futex.CreateBell(path, 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if sleeper, err = futex.OpenBell(path, os.Geteuid()); err != nil {
		t.Fatal(err)
	}
	if ringer, err = futex.OpenBell(path, os.Geteuid()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Close(); ringer.Close() })
	return sleeper, ringer, path
}

// sleepAsync runs a Sleep in a goroutine and returns its result channel.
func sleepAsync(b *futex.Bell, word *uint32, val uint32, timeout time.Duration, a *futex.Alarm, av uint32) chan error {
	done := make(chan error, 1)
	go func() { done <- b.Sleep(word, val, timeout, a, av) }()
	return done
}

func waitDone(t *testing.T, done chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the sleep did not end", what)
		return nil
	}
}

// TestBellWakes: a byte written after the word moved ends a sleep; the
// sleep did not end before it.
func TestBellWakes(t *testing.T) {
	sleeper, ringer, _ := bells(t)
	var word uint32
	done := sleepAsync(sleeper, &word, 0, futex.Forever, nil, 0)
	select {
	case err := <-done:
		t.Fatalf("the sleep ended before any ring: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	atomic.StoreUint32(&word, 1)
	ringer.Ring()
	if err := waitDone(t, done, "ring"); err != nil {
		t.Fatal(err)
	}
}

// TestBellLooksAfterEmptying: bytes written before the sleep are read away
// (a sleep with the word unchanged times out rather than ending at once),
// and a word that moved ends the sleep at once even with the FIFO empty.
func TestBellLooksAfterEmptying(t *testing.T) {
	sleeper, ringer, _ := bells(t)
	var word uint32
	for range 3 {
		ringer.Ring() // wake-ups for sleeps that did not happen
	}
	start := time.Now()
	if err := sleeper.Sleep(&word, 0, 50*time.Millisecond, nil, 0); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a sleep after stale rings: %v after %v, want a timeout", err, time.Since(start))
	}
	atomic.StoreUint32(&word, 7)
	if err := sleeper.Sleep(&word, 0, time.Hour, nil, 0); err != nil {
		t.Fatalf("a sleep on a word that moved: %v", err)
	}
}

// peekFIFO opens the FIFO at path a third time, to look at what it holds.
func peekFIFO(t *testing.T, path string) *os.File {
	t.Helper()
	peek, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peek.Close() })
	return peek
}

// TestBellReadsOnlyToWait: a sleep whose word has already moved returns
// without reading the FIFO (the byte that woke it is left for the next
// sleep: a read saved per wake-up); the next sleep that must wait empties
// it first, so that the stale byte does not end it.
func TestBellReadsOnlyToWait(t *testing.T) {
	sleeper, ringer, path := bells(t)
	peek := peekFIFO(t, path)
	held := func() int {
		n, err := unix.IoctlGetInt(int(peek.Fd()), unix.TIOCINQ) // FIONREAD
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	word := uint32(7)
	ringer.Ring()
	if err := sleeper.Sleep(&word, 0, time.Hour, nil, 0); err != nil {
		t.Fatalf("a sleep on a word that moved: %v", err)
	}
	if n := held(); n != 1 {
		t.Fatalf("the FIFO holds %d bytes after a sleep that had nothing to wait for, want the 1 rung", n)
	}
	start := time.Now()
	if err := sleeper.Sleep(&word, 7, 50*time.Millisecond, nil, 0); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a sleep after a stale byte: %v after %v, want a timeout", err, time.Since(start))
	}
	if n := held(); n != 0 {
		t.Fatalf("the FIFO holds %d bytes after a sleep that waited, want 0", n)
	}
}

// TestBellFull: a FIFO filled by rings for nothing (a peer that writes
// without pause, or many wakes for sleeps that did not happen) is emptied
// by the next sleep, so that the ring that matters can write its byte and
// wake it, and so that its byte is a change the poller reports on any
// kernel.
func TestBellFull(t *testing.T) {
	sleeper, ringer, path := bells(t)
	peek := peekFIFO(t, path)
	var word uint32
	for range 1 << 17 { // twice what a pipe holds by default
		ringer.Ring()
	}
	done := sleepAsync(sleeper, &word, 0, futex.Forever, nil, 0)
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the sleep ended before the ring: %v", err)
	default:
	}
	// Emptied before the sleep, whole.
	var one [1]byte
	if n, err := syscall.Read(int(peek.Fd()), one[:]); n > 0 || !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("the FIFO still held bytes after the sleep began (read %d, %v)", n, err)
	}
	atomic.StoreUint32(&word, 1)
	ringer.Ring()
	if err := waitDone(t, done, "ring into a FIFO that was full"); err != nil {
		t.Fatal(err)
	}
}

// TestBellAlarm: an alarm rung during the sleep ends it, an alarm rung
// after the value the sleeper read ends the next sleep at once, and the
// alarms leave nothing that ends a later sleep.
func TestBellAlarm(t *testing.T) {
	sleeper, _, _ := bells(t)
	a := futex.NewAlarm()
	a.RingsBell(sleeper)
	var word uint32
	done := sleepAsync(sleeper, &word, 0, futex.Forever, a, a.Value())
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the sleep ended before the alarm: %v", err)
	default:
	}
	a.Ring()
	if err := waitDone(t, done, "alarm"); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
	av := a.Value()
	a.Ring()
	if err := waitDone(t, sleepAsync(sleeper, &word, 0, futex.Forever, a, av), "alarm before the sleep"); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
	if err := sleeper.Sleep(&word, 0, 50*time.Millisecond, a, a.Value()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a sleep after the alarms: %v, want a timeout", err)
	}
}

// TestBellClose: closing the bell ends a sleep with ErrBellClosed.
func TestBellClose(t *testing.T) {
	sleeper, _, _ := bells(t)
	var word uint32
	done := sleepAsync(sleeper, &word, 0, futex.Forever, nil, 0)
	time.Sleep(20 * time.Millisecond)
	sleeper.Close()
	if err := waitDone(t, done, "close"); !errors.Is(err, futex.ErrBellClosed) {
		t.Fatalf("a sleep on a closed bell: %v, want ErrBellClosed", err)
	}
}

// TestOpenBellRefuses: only a FIFO, not reached through a symbolic link,
// owned by the expected user, is a bell.
func TestOpenBellRefuses(t *testing.T) {
	_, _, fifo := bells(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		uid  int
		want error
	}{
		{file, os.Geteuid(), os.ErrInvalid},
		{link, os.Geteuid(), syscall.ELOOP},
		{fifo, os.Geteuid() + 1, os.ErrPermission},
		{filepath.Join(dir, "none"), os.Geteuid(), os.ErrNotExist},
	} {
		b, err := futex.OpenBell(c.path, c.uid)
		if err == nil {
			b.Close()
		}
		if !errors.Is(err, c.want) {
			t.Errorf("OpenBell(%s, uid %d): %v, want %v", filepath.Base(c.path), c.uid, err, c.want)
		}
	}
	if err := futex.CreateBell(fifo, 0o600); !errors.Is(err, os.ErrExist) {
		t.Errorf("CreateBell over an existing FIFO: %v, want os.ErrExist", err)
	}
}
