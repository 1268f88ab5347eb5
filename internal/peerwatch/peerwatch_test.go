package peerwatch_test

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shmring/shmring/internal/peerwatch"
)

func TestMain(m *testing.M) {
	if os.Getenv("PEERWATCH_TEST_SLEEP") != "" {
		time.Sleep(time.Minute) // the child process of the tests
		return
	}
	goleak.VerifyTestMain(m)
}

func needWatch(t *testing.T) {
	t.Helper()
	if !peerwatch.Supported() {
		t.Skipf("no process watching on %s (pidfd needs Linux 5.3; Windows uses process handles)", runtime.GOOS)
	}
}

// child starts this test binary as a process that sleeps for a minute.
func child(t *testing.T) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "PEERWATCH_TEST_SLEEP=1")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start a child process: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestWatchKilled(t *testing.T) {
	needWatch(t)
	cmd := child(t)
	fired := make(chan int, 2)
	var stops []func()
	for i := range 2 { // two watchers of one process share its pidfd
		stop, err := peerwatch.Watch(cmd.Process.Pid, func() { fired <- i })
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, stop)
	}
	select {
	case <-fired:
		t.Fatal("fired while the process runs")
	case <-time.After(50 * time.Millisecond):
	}
	cmd.Process.Kill()
	for range 2 {
		select {
		case <-fired:
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s of the kill")
		}
	}
	for _, stop := range stops {
		stop() // after firing: does nothing
	}
}

func TestWatchStopped(t *testing.T) {
	needWatch(t)
	cmd := child(t)
	fired := make(chan struct{}, 1)
	stop, err := peerwatch.Watch(cmd.Process.Pid, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	stop()
	stop()
	cmd.Process.Kill()
	cmd.Wait()
	select {
	case <-fired:
		t.Fatal("a stopped watch fired")
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWatchGone(t *testing.T) {
	needWatch(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run a child process: %v", err)
	}
	// Reaped: its PID names no process (unless reused at once, which a
	// test cannot prevent; then the watch simply waits, and this fails),
	// or on Windows an ended process whose object lingers a moment.
	called := make(chan struct{}, 1)
	stop, err := peerwatch.Watch(cmd.Process.Pid, func() { called <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	select {
	case <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("watching a process that has ended did not call fn")
	}
}

func TestWatchBadPID(t *testing.T) {
	if _, err := peerwatch.Watch(0, func() {}); err == nil {
		t.Fatal("Watch(0) succeeded")
	}
}
