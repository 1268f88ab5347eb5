//go:build unix

package shmring_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/futex"
)

// hostileDialerChild connects to SHMRING_TEST_NAME by hand, as FORMAT.md
// says a client does, keeping the files of its connection's two rings
// open, so that it can write anything into them after the server accepted.
// It writes "hello", says "connected", then does SHMRING_TEST_MODE to both
// rings: "scribble" (random bytes at random offsets, over and over, for a
// second; the generator seeded with SHMRING_TEST_SEED) or "truncate" (the files cut to nothing), says "done", and idles.
func hostileDialerChild() int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 2 }
	name := os.Getenv("SHMRING_TEST_NAME")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lr, err := shmring.Open(name)
	if err != nil {
		return fail(err)
	}
	id := uuid.New()
	base := fmt.Sprintf("%s.%x", name, id[:])
	up, err := shmring.Create(base+".c", shmring.WithCapacity(4096), shmring.WithEOF(true))
	if err != nil {
		return fail(err)
	}
	down, err := shmring.Create(base+".s", shmring.WithCapacity(4096), shmring.WithEOF(true))
	if err != nil {
		return fail(err)
	}
	var files []*os.File
	for _, r := range []*shmring.Ring{up, down} {
		f, err := os.OpenFile(r.Path(), os.O_RDWR, 0)
		if err != nil {
			return fail(err)
		}
		files = append(files, f)
	}
	// Bells too, where they work: the server sleeps on the one of its
	// incoming ring, which this client then floods with bytes.
	var flags uint32
	bell := -1
	if futex.BellsSupported() {
		if err := futex.CreateBell(up.Path()+".bell", 0o600); err != nil {
			return fail(err)
		}
		if err := futex.CreateBell(down.Path()+".bell", 0o600); err != nil {
			return fail(err)
		}
		if bell, err = syscall.Open(up.Path()+".bell", os.O_RDWR|syscall.O_NONBLOCK, 0); err != nil {
			return fail(err)
		}
		flags = 1
	}
	p, err := up.Producer()
	if err != nil {
		return fail(err)
	}
	c, err := down.Consumer()
	if err != nil {
		return fail(err)
	}
	lp, err := lr.Producer()
	if err != nil {
		return fail(err)
	}
	req := make([]byte, 32)
	copy(req, "SHMCONN1")
	binary.LittleEndian.PutUint32(req[8:], uint32(os.Getpid()))
	binary.LittleEndian.PutUint32(req[12:], flags)
	copy(req[16:], id[:])
	if err := lp.Send(ctx, req); err != nil {
		return fail(err)
	}
	lp.Close()
	if _, err := c.Recv(ctx, make([]byte, 32)); err != nil {
		return fail(err)
	}
	if err := p.Send(ctx, []byte("hello")); err != nil {
		return fail(err)
	}
	fmt.Println("connected")
	time.Sleep(200 * time.Millisecond)
	switch os.Getenv("SHMRING_TEST_MODE") {
	case "scribble":
		seed, _ := strconv.ParseUint(os.Getenv("SHMRING_TEST_SEED"), 10, 64)
		rng := rand.New(rand.NewPCG(seed, 2))
		junk := make([]byte, 64)
		for end := time.Now().Add(time.Second); time.Now().Before(end); {
			for _, f := range files {
				fi, err := f.Stat()
				if err != nil {
					return fail(err)
				}
				for i := range junk {
					junk[i] = byte(rng.Uint32())
				}
				n := rng.IntN(len(junk)) + 1
				f.WriteAt(junk[:n], rng.Int64N(fi.Size()-int64(n)))
			}
			p.TrySend([]byte("more")) // keep the server reading
			if bell >= 0 {
				syscall.Write(bell, junk) // spurious wake-ups, and a FIFO kept full
			}
		}
	case "truncate":
		for _, f := range files {
			if err := f.Truncate(0); err != nil {
				return fail(err)
			}
		}
	}
	fmt.Println("done")
	time.Sleep(time.Minute)
	return 0
}

// TestConnHostileClient: a client that writes garbage into its
// connection's rings while the server serves it, or cuts their files to
// nothing, cannot crash, hang or disturb the server: its own connection
// fails (or reads garbage as bytes), and the server's other connections
// carry on with every byte intact.
func TestConnHostileClient(t *testing.T) {
	for _, mode := range []string{"scribble", "truncate"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "truncate" && raceEnabled {
				t.Skip("a race-enabled process cannot survive a fault in an atomic operation on vanished memory")
			}
			// The default liveness interval: a scribble may replace the
			// PIDs in the slot table, and then the reader cannot watch
			// the writer's process and looks at its lock on that timer.
			l := listen(t)
			if _, err := os.Stat(filepath.Join("/dev/shm", l.Addr().String())); err != nil {
				t.Skipf("rings are not files in /dev/shm here: %v", err)
			}
			// Good clients, echoed by the server, before and after.
			var good [3]*shmring.Conn
			serverErr := make(chan error, 8)
			var wg sync.WaitGroup
			serve := func(c *shmring.Conn) {
				defer wg.Done()
				defer c.Close()
				_, err := io.Copy(c, c)
				serverErr <- err
			}
			for i := range good {
				client, server, err := pipe(t, l)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { client.Close() })
				good[i] = client
				wg.Add(1)
				go serve(server)
			}
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			cmd, lines, stderr := childLines(t, "hostiledialer", "SHMRING_TEST_NAME="+l.Addr().String(),
				"SHMRING_TEST_MODE="+mode, "SHMRING_TEST_SEED="+strconv.FormatUint(seed, 10))
			hostile, err := l.AcceptConn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if l := nextLine(t, lines, stderr); l != "connected" {
				t.Fatalf("child: %q", l)
			}
			buf := make([]byte, 64)
			if n, err := hostile.Read(buf); err != nil || string(buf[:n]) != "hello" {
				t.Fatalf("Read: %q, %v", buf[:n], err)
			}
			// The server reads the hostile connection until it fails,
			// with a deadline: whatever was written, Read returns.
			readErr := make(chan error, 1)
			go func() {
				hostile.SetReadDeadline(time.Now().Add(20 * time.Second))
				for {
					if _, err := hostile.Read(buf); err != nil {
						readErr <- err
						return
					}
				}
			}()
			if l := nextLine(t, lines, stderr); l != "done" {
				t.Fatalf("child: %q", l)
			}
			for i, c := range good {
				checkEcho(t, c, i)
			}
			cmd.Process.Kill()
			select {
			case err := <-readErr:
				t.Logf("the hostile connection's Read: %v", err)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatal("Read on the hostile connection still blocked 20 s after its client died")
				}
			case <-time.After(40 * time.Second):
				t.Fatal("Read on the hostile connection never returned")
			}
			hostile.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := hostile.Write(make([]byte, 100<<10)); err == nil {
				t.Error("a Write of 100 KiB to a dead hostile client succeeded")
			}
			hostile.Close()
			for i, c := range good {
				checkEcho(t, c, i)
				c.Close()
			}
			wg.Wait()
			close(serverErr)
			for err := range serverErr {
				if err != nil {
					t.Errorf("a good connection's server side: %v", err)
				}
			}
		})
	}
}

// checkEcho sends numbered messages through an echoing connection and
// checks every byte that comes back.
func checkEcho(t *testing.T, c *shmring.Conn, who int) {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.SetDeadline(time.Time{})
	want := make([]byte, 1000)
	got := make([]byte, 1000)
	for round := range 50 {
		for i := range want {
			want[i] = byte(who + round + i)
		}
		if _, err := c.Write(want); err != nil {
			t.Fatalf("good connection %d: Write: %v", who, err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("good connection %d: Read: %v", who, err)
		}
		if string(got) != string(want) {
			t.Fatalf("good connection %d: round %d came back different", who, round)
		}
	}
}
