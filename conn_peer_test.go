package shmring_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/shm"
)

// TestConnPeerKilled: the server end of a connection whose client process
// is stopped sees it alive (where a process can be stopped: not Windows); killed, its Read returns ErrPeerDead (not
// io.EOF) and its Write fails with ErrPeerDead, with a liveness interval of
// an hour: the event of the process's end, not a timer, tells.
func TestConnPeerKilled(t *testing.T) {
	l := listen(t, shmring.WithLiveness(time.Hour))
	cmd, lines, stderr := childLines(t, "dialer", "SHMRING_TEST_NAME="+l.Addr().String())
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if l := nextLine(t, lines, stderr); l != "connected" {
		t.Fatalf("child: %q", l)
	}
	buf := make([]byte, 16)
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	if resume, ok := stopProcess(cmd.Process); ok {
		server.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := server.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read while the peer is stopped: %v, want a timeout (it is alive)", err)
		}
		if _, err := server.Write([]byte("still there?")); err != nil {
			t.Fatalf("Write while the peer is stopped: %v", err)
		}
		resume()
	} else {
		t.Logf("the stopped-peer part is skipped: a process cannot be stopped from outside on %s", runtime.GOOS)
	}
	server.SetReadDeadline(time.Now().Add(30 * time.Second))
	done := make(chan error, 1)
	go func() {
		_, err := server.Read(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cmd.Process.Kill()
	start := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, shmring.ErrPeerDead) {
			t.Fatalf("Read after the peer was killed: %v, want ErrPeerDead", err)
		}
		t.Logf("Read: ErrPeerDead %v after the kill", time.Since(start))
	case <-time.After(40 * time.Second):
		t.Fatal("Read still blocked after the peer was killed")
	}
	var werr error
	for range 100 { // the watch's report may trail the kill a little
		if _, werr = server.Write([]byte("anyone?")); werr != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(werr, shmring.ErrPeerDead) {
		t.Fatalf("Write after the peer was killed: %v, want ErrPeerDead", werr)
	}
}

// TestConnServerKilled: the client end of a connection whose server process
// is killed gets ErrPeerDead from Read and Write, and the connection's
// rings leave no name behind.
func TestConnServerKilled(t *testing.T) {
	name := ringName(t)
	t.Cleanup(func() { shmring.RemoveIfUnused(name) }) // the killed server's listener ring
	cmd, lines, stderr := childLines(t, "listener", "SHMRING_TEST_NAME="+name)
	if l := nextLine(t, lines, stderr); l != "listening" {
		t.Fatalf("child: %q", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := shmring.Dial(ctx, name, shmring.WithLiveness(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if l := nextLine(t, lines, stderr); l != "accepted" {
		t.Fatalf("child: %q", l)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 16))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cmd.Process.Kill()
	select {
	case err := <-done:
		if !errors.Is(err, shmring.ErrPeerDead) {
			t.Fatalf("Read after the server was killed: %v, want ErrPeerDead", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("Read still blocked after the server was killed")
	}
	var werr error
	for range 100 {
		if _, werr = c.Write([]byte("anyone?")); werr != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(werr, shmring.ErrPeerDead) {
		t.Fatalf("Write after the server was killed: %v, want ErrPeerDead", werr)
	}
	for _, left := range named(t, name+".") {
		t.Errorf("a connection's ring left named after the server died: %s", left)
	}
}

// named lists the rings whose names begin with prefix; none where names
// are kernel objects that go with their last handle (List is not
// supported there).
func named(t *testing.T, prefix string) []string {
	t.Helper()
	rings, err := shmring.List()
	if errors.Is(err, shmring.ErrNotSupported) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rings {
		if strings.HasPrefix(r.Name, prefix) {
			names = append(names, r.Name)
		}
	}
	// And what List does not show: the bells, FIFOs beside the rings.
	if bells, err := filepath.Glob(filepath.Join(shm.Dir(), prefix+"*.bell")); err == nil {
		for _, b := range bells {
			names = append(names, filepath.Base(b))
		}
	}
	return names
}

// TestDialDeadServer: a dial to a listener whose server process was killed
// is refused at once (a Unix socket's ECONNREFUSED), not left waiting for
// an answer that cannot come until the caller's context ends, whether the
// server died before the dial or while it waited; and the dial's own rings
// are gone.
func TestDialDeadServer(t *testing.T) {
	for _, during := range []bool{false, true} {
		t.Run(fmt.Sprintf("during=%v", during), func(t *testing.T) {
			name := ringName(t)
			t.Cleanup(func() { shmring.RemoveIfUnused(name) })
			cmd, lines, stderr := childLines(t, "listener", "SHMRING_TEST_NAME="+name, "SHMRING_TEST_NOACCEPT=1")
			if l := nextLine(t, lines, stderr); l != "listening" {
				t.Fatalf("child: %q", l)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			if !during {
				cmd.Process.Kill()
				cmd.Wait()
			}
			go func() {
				c, err := shmring.Dial(ctx, name)
				if err == nil {
					c.Close()
				}
				done <- err
			}()
			if during {
				time.Sleep(50 * time.Millisecond) // the dial is waiting for the answer
				cmd.Process.Kill()
			}
			err := <-done
			// Where names are kernel objects (Windows), the listener
			// went with its server: nothing left to dial, if the dial
			// came to open it only then.
			gone := runtime.GOOS == "windows" && errors.Is(err, os.ErrNotExist)
			if !errors.Is(err, shmring.ErrRefused) && !gone || ctx.Err() != nil {
				t.Fatalf("dial to a dead server: %v (context: %v), want ErrRefused before the context ends", err, ctx.Err())
			}
			for _, left := range named(t, name+".") {
				t.Errorf("a connection's ring left named after the refused dial: %s", left)
			}
		})
	}
}

// TestDialNotListener: a dial to a ring that Listen did not make (a plain
// ring with a live consumer, which would never answer) is refused at once,
// and the ring is left alone.
func TestDialNotListener(t *testing.T) {
	name := ringName(t)
	r, err := shmring.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer shmring.Remove(name)
	defer r.Close()
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := shmring.Dial(ctx, name); !errors.Is(err, shmring.ErrRefused) || ctx.Err() != nil {
		t.Fatalf("dial to a plain ring: %v (context: %v), want ErrRefused before the context ends", err, ctx.Err())
	}
	if _, err := c.TryRecv(make([]byte, c.MaxMessage())); !errors.Is(err, shmring.ErrEmpty) {
		t.Fatalf("the plain ring's consumer found %v, want nothing (ErrEmpty)", err)
	}
}

// TestListenerScribbled: a hostile process with access to the listener
// writes garbage over its ring's control lines. The server must not stop:
// its Accept replaces the ring, and a later dial connects.
func TestListenerScribbled(t *testing.T) {
	l := listen(t)
	path := "/dev/shm/" + l.Addr().String()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Skipf("listener ring not a file in /dev/shm here: %v", err)
	}
	junk := make([]byte, 1024)
	for i := range junk {
		junk[i] = byte(i*7 + 13)
	}
	f.WriteAt(junk, 4096) // head, tail, doorbells...
	f.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			buf := make([]byte, 8)
			var n int
			n, err = c.Read(buf)
			if err == nil && string(buf[:n]) != "hi" {
				err = fmt.Errorf("read %q", buf[:n])
			}
			c.Close()
		}
		accepted <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := shmring.Dial(ctx, l.Addr().String())
		cancel()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dial succeeded after the listener was scribbled on: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatalf("Accept after the scribble: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Accept did not return")
	}
}
