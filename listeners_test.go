//go:build linux

package shmring_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring"
)

// findListener returns the listener name as Listeners reports it.
func findListener(t *testing.T, name string) shmring.ListenerStatus {
	t.Helper()
	ls, err := shmring.Listeners()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("listener %s not listed among %+v", name, ls)
	return shmring.ListenerStatus{}
}

// TestListeners follows a connection made by another process through
// Listeners and cmd/shmstat -list: pending before it is accepted, open with
// both ends' PIDs, users and byte counts (from the kernel and the rings,
// although the accepted rings have no names), then the client dead.
func TestListeners(t *testing.T) {
	l := listen(t)
	name := l.Addr().String()
	if got := findListener(t, name); !got.Listening || got.ServerPID != os.Getpid() || len(got.Conns) != 0 || !got.ConnsListed {
		t.Fatalf("a fresh listener: %+v", got)
	}
	cmd, lines, stderr := childLines(t, "dialer", "SHMRING_TEST_NAME="+name)
	// Until Accept, the dial waits: pending, one request waiting.
	var got shmring.ListenerStatus
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got = findListener(t, name)
		if len(got.Conns) == 1 && got.Waiting == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pending connection listed: %+v", got)
		}
	}
	if c := got.Conns[0]; c.State != "pending" || c.Client.PID != cmd.Process.Pid || c.Client.UID != os.Getuid() || !c.Client.Alive {
		t.Fatalf("before Accept: %+v", c)
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if l := nextLine(t, lines, stderr); l != "connected" {
		t.Fatalf("child: %q", l)
	}
	if _, err := server.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	got = findListener(t, name)
	if len(got.Conns) != 1 {
		t.Fatalf("after Accept: %+v", got)
	}
	c := got.Conns[0]
	// Unread counts from the positions a reader last published (it may
	// publish lazily): "hello" is unread, the answer may look so.
	if c.Client.Unread < 8+5 || c.Server.Unread > 128 {
		t.Fatalf("unread bytes: client's %d, server's %d", c.Client.Unread, c.Server.Unread)
	}
	c.Client.Unread, c.Server.Unread = 0, 0
	// The server wrote the 32-byte answer and ten bytes.
	want := shmring.ConnStatus{ID: c.ID, State: "open",
		Client: shmring.ConnEndStatus{PID: cmd.Process.Pid, UID: os.Getuid(), Alive: true, Writing: true, Messages: 1, Bytes: 5},
		Server: shmring.ConnEndStatus{PID: os.Getpid(), UID: os.Getuid(), Alive: true, Writing: true, Messages: 2, Bytes: 42}}
	if c != want {
		t.Fatalf("open connection:\n got %+v\nwant %+v", c, want)
	}

	// shmstat -list, in text and JSON.
	shmstat := command(t, "shmstat")
	txt := start(t, shmstat, "-list")
	if code := txt.wait(t, time.Minute); code != 0 {
		t.Fatalf("shmstat -list exited %d\n%s", code, txt)
	}
	out := txt.stdout.String()
	if !strings.Contains(out, name+"  listening") || !strings.Contains(out, c.ID+"  open") {
		t.Fatalf("shmstat -list does not show the listener and its connection:\n%s", out)
	}
	js := start(t, shmstat, "-list", "-json")
	if code := js.wait(t, time.Minute); code != 0 {
		t.Fatalf("shmstat -list -json exited %d\n%s", code, js)
	}
	var listed []struct {
		Name     string                  `json:"name"`
		State    string                  `json:"state"`
		Listener *shmring.ListenerStatus `json:"listener"`
	}
	if err := json.Unmarshal(js.stdout.Bytes(), &listed); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	found := false
	for _, e := range listed {
		if e.Name == name {
			if e.Listener != nil && len(e.Listener.Conns) == 1 {
				c := e.Listener.Conns[0]
				c.Client.Unread, c.Server.Unread = 0, 0
				found = c == want
			}
		}
	}
	if !found {
		t.Fatalf("shmstat -list -json lacks the listener or its connection:\n%s", js.stdout.String())
	}

	// The client killed: its end is dead.
	cmd.Process.Kill()
	cmd.Wait()
	got = findListener(t, name)
	if len(got.Conns) != 1 || got.Conns[0].State != "client dead" || got.Conns[0].Client.Alive || !got.Conns[0].Server.Alive {
		t.Fatalf("after the client was killed: %+v", got)
	}
	// Closed by the server too: nobody holds the rings, nothing is listed.
	server.Close()
	if got := findListener(t, name); len(got.Conns) != 0 {
		t.Fatalf("after both ends went: %+v", got)
	}
}
