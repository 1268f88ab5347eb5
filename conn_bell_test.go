//go:build linux

package shmring_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/testhook"
)

// bellFDs counts this process's open descriptors of the bells of listener
// l's connections, from the kernel's view of them (/proc/self/fd): the
// bells' names are removed once the connection is set up, so each reads
// ".bell (deleted)".
func bellFDs(t *testing.T, l *shmring.Listener) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.Contains(target, l.Addr().String()+".") && strings.Contains(target, ".bell") {
			n++
		}
	}
	return n
}

// bellNames lists what is named after l's connections' bells.
func bellNames(t *testing.T, l *shmring.Listener) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(filepath.Dir(mustRingPath(t, l.Addr().String())), l.Addr().String()+".*.bell"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// echoBlocked makes each side Read before the other Writes, so that the
// reader sleeps, both ways, and checks the bytes.
func echoBlocked(t *testing.T, client, server *shmring.Conn) {
	t.Helper()
	for _, c := range []struct{ from, to *shmring.Conn }{{client, server}, {server, client}, {client, server}} {
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 16)
			c.to.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := c.to.Read(buf)
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(buf[:n])
		}()
		time.Sleep(20 * time.Millisecond) // the reader is asleep
		if _, err := c.from.Write([]byte("ding")); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != "ding" {
			t.Fatalf("a Read woken by a Write got %q", s)
		}
	}
}

// TestConnBells: where bells work, both ends of a connection take them
// (two descriptors each: its own bell to sleep on, the peer's to ring), no
// bell is left named once the connection is set up, a Read asleep on its
// bell is woken by the peer's Write, and closing leaves no descriptor.
// Against a peer that offers no bells (a dialer without them), or a server
// that takes none, both ends use the futex, and the connection works the
// same.
func TestConnBells(t *testing.T) {
	if !futex.BellsSupported() {
		t.Skip("bells need Linux 5.16 or later (futex_waitv) here")
	}
	for _, c := range []struct {
		name             string
		noDialer, noServ bool
		want             int
	}{
		{"both", false, false, 4},
		{"a dialer without bells", true, false, 0},
		{"a server without bells", false, true, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := listen(t)
			testhook.NoBells.Store(c.noDialer)
			if c.noServ {
				// After the dialer made its bells, before the
				// server reads the request.
				testhook.BeforeRequest = func() { testhook.NoBells.Store(true) }
			}
			defer func() { testhook.BeforeRequest = nil; testhook.NoBells.Store(false) }()
			client, server, err := pipe(t, l)
			if err != nil {
				t.Fatal(err)
			}
			if n := bellFDs(t, l); n != c.want {
				t.Errorf("%d descriptors of bells open, want %d", n, c.want)
			}
			if names := bellNames(t, l); len(names) > 0 {
				t.Errorf("bells still named after the handshake: %v", names)
			}
			echoBlocked(t, client, server)
			client.Close()
			if _, err := server.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("Read after the peer closed: %v, want io.EOF", err)
			}
			server.Close()
			if n := bellFDs(t, l); n != 0 {
				t.Errorf("%d descriptors of bells open after both ends closed", n)
			}
		})
	}
}
