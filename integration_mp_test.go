//go:build unix

package shmring_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/stream"
	"github.com/shmring/shmring/internal/testdir"
)

// The multi-producer tests that stop a process (SIGSTOP), scribble on a ring
// or truncate it under its users: Unix only.

// endStream ends a producer running with -count 0 cleanly (SIGTERM makes it
// send its final message) and reports true.
func endStream(p *run) bool {
	p.cmd.Process.Signal(syscall.SIGTERM)
	return true
}

// TestStoppedProducerIsNotRecovered stops a producer (SIGSTOP) in mid-stream
// for ten times the liveness interval, several times: it is slow, not dead,
// and every one of its messages must arrive.
func TestStoppedProducerIsNotRecovered(t *testing.T) {
	producer, consumer := buildCommands(t)
	name := demoName(t)
	c := start(t, consumer, "-name", name, "-producers", "2", "-capacity", "64KiB", "-json")
	count := "200000"
	a := start(t, producer, "-name", name, "-id", "1", "-count", count, "-size", "32", "-max-size", "1024")
	b := start(t, producer, "-name", name, "-id", "2", "-count", count, "-size", "32", "-max-size", "1024")
	for range 3 {
		time.Sleep(50 * time.Millisecond)
		a.cmd.Process.Signal(syscall.SIGSTOP)
		time.Sleep(10 * 100 * time.Millisecond)
		a.cmd.Process.Signal(syscall.SIGCONT)
	}
	for _, p := range []*run{a, b} {
		if code := p.wait(t, 5*time.Minute); code != 0 {
			t.Fatalf("producer exited %d\n%s", code, p)
		}
	}
	res := summary(t, c, time.Minute)
	if !res.OK() || res.Messages != 400_000 || res.Recovered != 0 || res.DeadProducers != 0 {
		t.Fatalf("summary %+v", res)
	}
}

// TestScribbler has a third process write random bytes over the control
// lines and the data area of a ring while a producer and a consumer run.
// Both must end on their own, with an error and a non-zero status, never
// with a panic, a crash or a hang (their -idle and -stall bound the waits);
// or, where every scribble landed on bytes already read, carry on, and
// deliver every message whole once the producer is told to end. A scribble
// that only the producer meets (the tail word, say, or the head it reads
// as it attaches) makes it fail and detach, and then the consumer reads
// what it had sent, intact (perhaps nothing), to a clean end of the
// stream, and may say so.
func TestScribbler(t *testing.T) {
	producer, consumer := buildCommands(t)
	for _, target := range []string{"control", "data"} {
		t.Run(target, func(t *testing.T) {
			path := filepath.Join(testdir.Make(t), "ring")
			c := start(t, consumer, "-path", path, "-capacity", "64KiB", "-idle", "2s", "-json")
			p := start(t, producer, "-path", path, "-count", "0", "-stall", "2s")
			r, err := shmring.OpenFile(path, shmring.WithOpenWait(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rng := rand.New(rand.NewPCG(1, 2))
			off, span := int64(4096), int64(1024) // the control lines
			if target == "data" {
				off, span = 16384, 64<<10
			}
			junk := make([]byte, 64)
			for i := 0; i < 200 && (c.cmd.ProcessState == nil || p.cmd.ProcessState == nil); i++ {
				for j := range junk {
					junk[j] = byte(rng.Uint32())
				}
				f.WriteAt(junk, off+rng.Int64N(span-64))
				time.Sleep(time.Millisecond)
			}
			// Scribbles that all landed where nothing unread lay (the
			// consumer right behind the producer, the junk written over
			// before it was read) corrupt nothing the readers see: the
			// stream then runs on. After ten seconds, the producer is
			// told to end its stream, and every message must arrive.
			pdone := make(chan int, 1)
			go func() {
				err := p.cmd.Wait()
				var exit *exec.ExitError
				switch {
				case errors.As(err, &exit):
					pdone <- exit.ExitCode()
				case err != nil:
					pdone <- -1
				default:
					pdone <- 0
				}
			}()
			ended := false
			var pcode int
			select {
			case pcode = <-pdone:
			case <-time.After(10 * time.Second):
				ended = endStream(p)
				select {
				case pcode = <-pdone:
				case <-time.After(time.Minute):
					p.cmd.Process.Kill()
					<-pdone
					t.Fatalf("the producer did not end within a minute of SIGTERM\n%s", p)
				}
			}
			codes := map[*run]int{c: c.wait(t, time.Minute), p: pcode}
			for _, cmd := range []*run{c, p} {
				code := codes[cmd]
				out := cmd.stderr.String()
				if strings.Contains(out, "panic") || strings.Contains(out, "fatal error") || strings.Contains(out, "goroutine ") {
					t.Fatalf("%s crashed (exit %d)\n%s", filepath.Base(cmd.cmd.Path), code, cmd)
				}
				if ended && code == 0 {
					// The scribbles missed: the stream was ended
					// cleanly, and must have arrived whole.
					if cmd == c {
						var res stream.Result
						if err := json.Unmarshal(c.stdout.Bytes(), &res); err != nil || !res.OK() {
							t.Fatalf("consumer of an ended stream: not every message arrived whole (%v)\n%s\n%s", err, c, p)
						}
					}
					t.Logf("%s: exit 0 after the stream was ended: the scribbles hit nothing unread", filepath.Base(cmd.cmd.Path))
					continue
				}
				if cmd == c && code == 0 {
					// The producer failed and detached (part-way, or
					// at setup, having sent nothing); what it had
					// sent must have arrived whole.
					var res stream.Result
					if err := json.Unmarshal(c.stdout.Bytes(), &res); err != nil || !res.OK() || codes[p] != 1 && codes[p] != 2 {
						t.Fatalf("consumer exited 0 on a scribbled ring, the producer %d (%v)\n%s\n%s", codes[p], err, c, p)
					}
				} else if code != 1 && (code != 2 || cmd == c) {
					// 1: failed part-way; 2: refused at setup (a
					// producer that attached after the scribbling
					// began).
					t.Fatalf("%s exited %d on a scribbled ring\n%s", filepath.Base(cmd.cmd.Path), code, cmd)
				}
				t.Logf("%s: exit %d: %s %s", filepath.Base(cmd.cmd.Path), code, strings.TrimSpace(out), strings.TrimSpace(cmd.stdout.String()))
			}
		})
	}
}

// TestTruncatedLive truncates a ring's file to nothing while a producer and
// a consumer run: both must say so and exit 1, not die of SIGBUS.
func TestTruncatedLive(t *testing.T) {
	if raceEnabled {
		// Under -race, sync/atomic runs in the race runtime's C code; a
		// fault there cannot become a Go panic (the runtime cannot unwind
		// through C), so the process dies (seen 1-2 runs in 20).
		t.Skip("a race-enabled process cannot survive a fault in an atomic operation on vanished memory")
	}
	producer, consumer := buildCommands(t)
	path := filepath.Join(testdir.Make(t), "ring")
	c := start(t, consumer, "-path", path, "-capacity", "64KiB", "-idle", "5s")
	p := start(t, producer, "-path", path, "-count", "0", "-stall", "5s")
	r, err := shmring.OpenFile(path, shmring.WithOpenWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	waitAttached(t, r, p)
	r.Close()
	time.Sleep(100 * time.Millisecond)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []*run{c, p} {
		code := cmd.wait(t, time.Minute)
		out := cmd.stderr.String()
		t.Logf("%s: exit %d: %s", filepath.Base(cmd.cmd.Path), code, strings.TrimSpace(out))
		if code != 1 || !strings.Contains(out, "truncated") || strings.Contains(out, "fatal error") {
			t.Fatalf("%s: exit %d, want 1 and the reason\n%s", filepath.Base(cmd.cmd.Path), code, cmd)
		}
	}
}

// openFilesAllowed returns how many files this process may open.
func openFilesAllowed() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return uint64(lim.Cur) // int64 on FreeBSD (where RLIM_INFINITY, -1, converts to the largest value)
}
