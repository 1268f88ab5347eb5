//go:build unix

package shmring_test

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/shm"
)

// TestRemoveUnused lists and cleans named rings in every state: open here,
// closed, open in a killed process, open in a stopped process, never
// finished, and a file that is not a ring.
func TestRemoveUnused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("presence locks are OFD locks on Linux; elsewhere a process's own rings look unused to it")
	}
	names := map[string]string{}
	for _, k := range []string{"open", "closed", "killed", "stopped", "unfinished", "other"} {
		names[k] = ringName(t)
	}
	dir := shm.Dir()
	old := time.Now().Add(-time.Minute)
	age := func(name string) { os.Chtimes(filepath.Join(dir, name), old, old) }

	open, err := shmring.Create(names["open"])
	skipUnsupported(t, err)
	defer open.Close()
	age(names["open"])
	closed, err := shmring.Create(names["closed"])
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	age(names["closed"])
	for _, k := range []string{"killed", "stopped"} {
		r, err := shmring.Create(names[k])
		if err != nil {
			t.Fatal(err)
		}
		cmd, _ := startChildPiped(t, "hold", "SHMRING_TEST_NAME="+names[k])
		r.Close() // the child keeps it open
		if k == "killed" {
			cmd.Process.Kill()
			cmd.Wait()
		} else {
			cmd.Process.Signal(syscall.SIGSTOP)
			defer cmd.Process.Signal(syscall.SIGCONT)
		}
		age(names[k])
	}
	os.WriteFile(filepath.Join(dir, names["unfinished"]), make([]byte, 8192), 0o600)
	age(names["unfinished"])
	os.WriteFile(filepath.Join(dir, names["other"]), []byte("somebody else's shared memory, not a ring"), 0o600)
	age(names["other"])

	want := map[string]string{"open": "in use", "closed": "unused", "killed": "unused", "stopped": "in use", "unfinished": "unfinished"}
	list, err := shmring.List()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, st := range list {
		got[st.Name] = st.State
	}
	for k, state := range want {
		if got[names[k]] != state {
			t.Errorf("List: %s ring is %q, want %q", k, got[names[k]], state)
		}
	}
	if _, listed := got[names["other"]]; listed {
		t.Error("List shows a file that is not a ring")
	}

	removed, err := shmring.RemoveUnused()
	if err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	for _, st := range removed {
		gone[st.Name] = true
	}
	for k := range names {
		_, statErr := os.Stat(filepath.Join(dir, names[k]))
		shouldGo := k == "closed" || k == "killed" || k == "unfinished"
		if gone[names[k]] != shouldGo || os.IsNotExist(statErr) != shouldGo {
			t.Errorf("RemoveUnused: %s ring reported removed %v, file gone %v; want %v", k, gone[names[k]], os.IsNotExist(statErr), shouldGo)
		}
	}
	if _, err := shmring.Open(names["stopped"]); err != nil {
		t.Errorf("the stopped process's ring: %v", err)
	}
}

// startChildPiped starts a helper process and waits for its first line.
func startChildPiped(t *testing.T, role string, env ...string) (*childProc, string) {
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
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGCONT); cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "open\n" {
		t.Fatalf("helper said %q", line)
	}
	return &childProc{cmd.Process, cmd.Wait}, line
}

type childProc struct {
	Process *os.Process
	Wait    func() error
}
