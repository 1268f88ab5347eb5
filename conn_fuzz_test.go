//go:build unix

package shmring_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shmring/shmring"
)

// FuzzListenerRequest sends a listener anything a dialer could: a request
// of any bytes (up to the listener ring's 32, the flags word that offers
// bells included), and, when files is set, files of any content at the
// names of the connection the request names (garbage as the rings and the
// bells a client was to create). Whatever it gets, the
// server must not crash or stop: a real Dial right after is accepted and
// carries a message, and a request that is not one connects nobody.
func FuzzListenerRequest(f *testing.F) {
	valid := func(pid uint32, id uuid.UUID) []byte {
		b := make([]byte, 32)
		copy(b, "SHMCONN1")
		binary.LittleEndian.PutUint32(b[8:], pid)
		copy(b[16:], id[:])
		return b
	}
	id := uuid.MustParse("0b0b1a7e-5e1f-4c3d-9a8b-7c6d5e4f3a2b")
	f.Add(valid(uint32(os.Getpid()), id), false, []byte(nil))
	f.Add(valid(uint32(os.Getpid()), id), true, []byte("SHMRING\x01"))
	f.Add(valid(0, id), false, []byte(nil))
	f.Add(valid(1, uuid.UUID{}), true, make([]byte, 4096))
	f.Add([]byte("SHMCONN1"), false, []byte(nil))
	f.Add([]byte{}, false, []byte(nil))
	f.Add(valid(uint32(os.Getpid()), id)[:31], false, []byte(nil))
	f.Add(append([]byte("SHMACPT1"), make([]byte, 24)...), false, []byte(nil))

	name := fmt.Sprintf("shmring-fuzz-%d", os.Getpid())
	l, err := shmring.Listen(name)
	if err != nil {
		f.Skipf("no listener here: %v", err)
	}
	f.Cleanup(func() { l.Close() })
	dir := filepath.Dir(mustRingPath(f, name))
	removeDeadFuzzers(dir)

	f.Fuzz(func(t *testing.T, req []byte, files bool, content []byte) {
		if len(req) > 32 {
			req = req[:32]
		}
		var paths []string
		if files && len(req) == 32 {
			var id uuid.UUID
			copy(id[:], req[16:])
			base := filepath.Join(dir, fmt.Sprintf("%s.%x", name, id[:]))
			// The bells' names too: files that are not FIFOs.
			for _, p := range []string{base + ".c", base + ".s", base + ".c.bell", base + ".s.bell"} {
				if err := os.WriteFile(p, content, 0o600); err == nil {
					paths = append(paths, p)
				}
			}
		}
		defer func() {
			for _, p := range paths {
				os.Remove(p)
			}
		}()
		lr, err := shmring.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := lr.Producer()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.TrySend(req); err != nil {
			t.Fatal(err)
		}
		p.Close()
		lr.Close()

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		dialed := make(chan error, 1)
		go func() {
			c, err := shmring.Dial(ctx, name)
			if err == nil {
				_, err = c.Write([]byte("real"))
				defer c.Close()
				// Wait for the server to read it before closing.
				_, err2 := c.Read(make([]byte, 1))
				if err2 == nil {
					err = fmt.Errorf("read a byte the server never wrote")
				}
			}
			dialed <- err
		}()
		c, err := l.AcceptConn(ctx)
		if err != nil {
			t.Fatalf("Accept after a fuzzed request: %v", err)
		}
		buf := make([]byte, 8)
		n, err := c.Read(buf)
		c.Close()
		if err != nil || string(buf[:n]) != "real" {
			t.Fatalf("the connection accepted after a fuzzed request read %q, %v: not the real dialer's", buf[:n], err)
		}
		if err := <-dialed; err != nil {
			t.Fatalf("the real dialer: %v", err)
		}
	})
}

// removeDeadFuzzers removes what fuzzing processes that are gone left
// behind (the fuzzing coordinator may kill a worker in the middle of an
// input): files named shmring-fuzz-<pid>... of PIDs no process has.
func removeDeadFuzzers(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "shmring-fuzz-*"))
	for _, file := range files {
		pidPart, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(file), "shmring-fuzz-"), ".")
		pid, err := strconv.Atoi(pidPart)
		if err == nil && pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.Remove(file)
		}
	}
}

// mustRingPath returns where the ring name's file is.
func mustRingPath(tb testing.TB, name string) string {
	tb.Helper()
	r, err := shmring.Open(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	return r.Path()
}
