package shmring_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/internal/stream"
	"github.com/shmring/shmring/internal/testdir"
)

// The integration tests build cmd/producer and cmd/consumer once and run
// them as separate processes, as a user would.

var build struct {
	once sync.Once
	dir  string
	err  error
}

// buildCommands builds the commands, or finds them in the directory named
// by SHMRING_TEST_COMMANDS (scripts/test-windows builds them there: a test
// running under Wine has no go command).
func buildCommands(tb testing.TB) (producer, consumer string) {
	tb.Helper()
	if dir := os.Getenv("SHMRING_TEST_COMMANDS"); dir != "" {
		build.dir = dir
		return builtPath("producer"), builtPath("consumer")
	}
	if runtime.GOOS != "linux" {
		tb.Skipf("the command tests run on Linux, and on Windows through scripts/test-windows")
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "shmring-cmds-")
		if build.err != nil {
			return
		}
		args := []string{"build", "-o", build.dir + "/"}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/producer", "./cmd/consumer", "./cmd/shmstat")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		tb.Fatal(build.err)
	}
	return builtPath("producer"), builtPath("consumer")
}

// command returns the path of one of the built commands.
func command(tb testing.TB, name string) string {
	tb.Helper()
	buildCommands(tb)
	return builtPath(name)
}

func builtPath(name string) string {
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	return filepath.Join(build.dir, name)
}

// run is one command in flight, with its output kept for the failure report.
type run struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
}

func start(tb testing.TB, bin string, args ...string) *run {
	tb.Helper()
	r := &run{cmd: exec.Command(bin, args...)}
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	r.cmd = startRetrying(tb, r.cmd)
	tb.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	return r
}

// wait waits for the command, at most limit, and returns its exit status.
func (r *run) wait(tb testing.TB, limit time.Duration) int {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			tb.Fatal(err)
		}
		return 0
	case <-time.After(limit):
		r.cmd.Process.Kill()
		<-done
		tb.Fatalf("%s did not finish within %v\nstderr:\n%s", r.cmd.Path, limit, &r.stderr)
		return -1
	}
}

// stop kills the command if it is still running and waits for it, so that
// its output can be read.
func (r *run) stop() {
	if r.cmd.ProcessState == nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	}
}

// String reports the command and its output, for a failing test: it stops
// the command first if it is still running (its output is not safe to read
// before that).
func (r *run) String() string {
	r.stop()
	return fmt.Sprintf("%s\nstdout:\n%s\nstderr:\n%s", strings.Join(r.cmd.Args, " "), &r.stdout, &r.stderr)
}

func demoName(tb testing.TB) string {
	tb.Helper()
	name := "shmring-it-" + uuid.NewString()
	tb.Cleanup(func() { os.Remove("/dev/shm/" + name) })
	return name
}

// exchange runs one consumer and one producer and returns the consumer's
// JSON summary, failing the test unless both exit 0.
func exchange(t *testing.T, consumerArgs, producerArgs []string) stream.Result {
	t.Helper()
	return exchangeAfter(t, "", consumerArgs, producerArgs)
}

// exchangeAfter is exchange where a ring is left at path already: the
// producer starts only once the consumer has put its own ring there, so that
// it cannot join the leftover first (which would keep it in use, or see it
// removed under it). It reads the ring's UUID from the file, which takes no
// lock a peer would notice (and a new file may reuse the old one's inode).
// On Windows, where an open handle gets in the way of a removal, it does
// not wait.
func exchangeAfter(t *testing.T, path string, consumerArgs, producerArgs []string) stream.Result {
	t.Helper()
	producer, consumer := buildCommands(t)
	left, leftOK := ringID(path)
	c := start(t, consumer, append([]string{"-json"}, consumerArgs...)...)
	// A ring left in a file: wait for the consumer's own (on Windows too,
	// where a named ring goes with its last process and leaves no file).
	// A producer started before would join the one left behind and send
	// its messages to nobody.
	for deadline := time.Now().Add(time.Minute); leftOK; time.Sleep(time.Millisecond) {
		if id, ok := ringID(path); ok && id != left {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer's ring did not replace the one left at %s in a minute\n%s", path, c)
		}
	}
	p := start(t, producer, producerArgs...)
	if code := p.wait(t, 5*time.Minute); code != 0 {
		t.Fatalf("producer exited %d\n%s\nconsumer: %s", code, p, c)
	}
	if code := c.wait(t, time.Minute); code != 0 {
		t.Fatalf("consumer exited %d\n%s", code, c)
	}
	var res stream.Result
	if err := json.Unmarshal(c.stdout.Bytes(), &res); err != nil {
		t.Fatalf("consumer summary: %v\n%s", err, c)
	}
	return res
}

// ringID reads the UUID in the header of the ring file at path, once its
// creator has finished it.
func ringID(path string) (id [16]byte, ok bool) {
	if path == "" {
		return id, false
	}
	f, err := os.Open(path)
	if err != nil {
		return id, false
	}
	defer f.Close()
	var hdr [100]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil || string(hdr[96:100]) != "REDY" {
		return id, false
	}
	copy(id[:], hdr[64:80])
	return id, true
}

func TestDemoExchange(t *testing.T) {
	count := 1_000_000
	if testing.Short() {
		count = 100_000
	}
	for _, tc := range []struct {
		name     string
		count    int
		consumer []string
		producer []string
		wantSize [2]int // smallest and largest message
	}{
		// A 64 KiB ring and sizes from 32 B to 2 KiB: it wraps every few
		// hundred messages, at every offset.
		{"mixed sizes, small ring", count, []string{"-capacity", "64KiB"},
			[]string{"-size", "32", "-max-size", "2048"}, [2]int{32, 2048}},
		// The largest message the ring accepts, and the smallest.
		{"maximum size", count / 50, []string{"-capacity", "64KiB"},
			[]string{"-size", "32", "-max-size", "32752"}, [2]int{32, 32752}},
		{"spin policy", count, []string{"-capacity", "1MiB", "-policy", "spin"},
			[]string{"-policy", "spin"}, [2]int{64, 64}},
		{"park policy", count / 10, []string{"-capacity", "64KiB", "-policy", "park"},
			[]string{"-policy", "park", "-size", "100"}, [2]int{100, 100}},
		// Batches of 64 messages of 32 B to 512 B, with SendBatch.
		{"batches", count, []string{"-capacity", "64KiB"},
			[]string{"-size", "32", "-max-size", "512", "-batch", "64"}, [2]int{32, 512}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := demoName(t)
			res := exchange(t, append([]string{"-name", name}, tc.consumer...),
				append([]string{"-name", name, "-count", fmt.Sprint(tc.count)}, tc.producer...))
			if !res.OK() || res.Messages != uint64(tc.count) || res.Producers != 1 {
				t.Fatalf("summary %+v, want %d messages, nothing lost, duplicated, reordered or corrupt", res, tc.count)
			}
			lo, hi := uint64(tc.wantSize[0]), uint64(tc.wantSize[1])
			if res.Bytes < res.Messages*lo || res.Bytes > res.Messages*hi {
				t.Fatalf("%d bytes in %d messages: outside %d..%d bytes each", res.Bytes, res.Messages, lo, hi)
			}
			if res.Samples == 0 || res.LatencyNs.P50 <= 0 || res.LatencyNs.Max < res.LatencyNs.P50 {
				t.Fatalf("latency %+v from %d samples", res.LatencyNs, res.Samples)
			}
		})
	}
}

func TestDemoFileBacked(t *testing.T) {
	path := filepath.Join(testdir.Make(t), "ring")
	res := exchange(t, []string{"-path", path, "-capacity", "256KiB"},
		[]string{"-path", path, "-count", "200000", "-size", "48", "-max-size", "600"})
	if !res.OK() || res.Messages != 200_000 {
		t.Fatalf("summary %+v", res)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the consumer left its ring file behind: %v", err)
	}
}

func TestDemoRate(t *testing.T) {
	name := demoName(t)
	start := time.Now()
	res := exchange(t, []string{"-name", name}, []string{"-name", name, "-count", "200", "-rate", "1000"})
	if !res.OK() || res.Messages != 200 || res.Samples != 200 {
		t.Fatalf("summary %+v: want 200 messages, every one timed", res)
	}
	// 200 messages at 1000/s cannot take less than 0.199 s: the pacing works.
	if d := time.Since(start); d < 199*time.Millisecond {
		t.Fatalf("200 messages at 1000/s took %v", d)
	}
}

// TestDemoBadInput checks that each kind of bad input gives its exit status
// and a message that says what is wrong.
func TestDemoBadInput(t *testing.T) {
	producer, consumer := buildCommands(t)
	missing := demoName(t)
	garbage := filepath.Join(testdir.Make(t), "garbage")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a ring! "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	tiny := filepath.Join(testdir.Make(t), "tiny")
	if err := os.WriteFile(tiny, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		bin  string
		args []string
		code int
		want string
	}{
		{"ring never appears", producer, []string{"-name", missing, "-wait", "200ms"}, 2, missing},
		{"size below the header", producer, []string{"-size", "16"}, 2, "minimum is 32"},
		{"max-size below size", producer, []string{"-size", "64", "-max-size", "40"}, 2, "below -size"},
		{"bad name", producer, []string{"-name", "../etc/passwd", "-wait", "0s"}, 2, "invalid segment name"},
		{"capacity not a power of two", consumer, []string{"-name", missing, "-capacity", "100000"}, 2, "power of two"},
		{"capacity unparsable", consumer, []string{"-capacity", "lots"}, 2, "byte size"},
		{"unknown policy", consumer, []string{"-policy", "nap"}, 2, "default, spin or park"},
		{"zero producers", consumer, []string{"-producers", "0"}, 2, "at least 1"},
		{"not a ring", producer, []string{"-path", garbage, "-wait", "0s"}, 2, "bad magic"},
		{"too small to be a ring", producer, []string{"-path", tiny, "-wait", "0s"}, 2, "size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, tc.bin, tc.args...)
			if code := r.wait(t, time.Minute); code != tc.code {
				t.Fatalf("exit status %d, want %d\n%s", code, tc.code, r)
			}
			if !strings.Contains(r.stderr.String(), tc.want) {
				t.Fatalf("stderr does not mention %q\n%s", tc.want, r)
			}
			if strings.Contains(r.stderr.String(), "panic") {
				t.Fatalf("panic\n%s", r)
			}
		})
	}
}

// TestDemoUnfinishedProducer checks exit status 1 when a producer never
// finishes: the consumer waits for two, one comes.
func TestDemoUnfinishedProducer(t *testing.T) {
	producer, consumer := buildCommands(t)
	name := demoName(t)
	c := start(t, consumer, "-name", name, "-producers", "2", "-idle", "500ms", "-json")
	p := start(t, producer, "-name", name, "-count", "1000")
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("producer exited %d\n%s", code, p)
	}
	if code := c.wait(t, time.Minute); code != 1 {
		t.Fatalf("consumer exited %d, want 1\n%s", code, c)
	}
	if !strings.Contains(c.stderr.String(), "1 of 2 producers finished") {
		t.Fatalf("consumer does not say why\n%s", c)
	}
}

// TestDemoForce checks that -force replaces a stale ring and refuses to
// delete a file that is not one.
func TestDemoForce(t *testing.T) {
	_, consumer := buildCommands(t)
	dir := testdir.Make(t)
	stale := filepath.Join(dir, "stale")
	old := start(t, consumer, "-path", stale, "-idle", "100ms")
	// Kill the consumer once its ring is made, leaving the file behind: a
	// whole ring, which the exchange below can tell from the one that
	// replaces it (a file left half made is the empty case further down).
	for deadline := time.Now().Add(time.Minute); ; {
		if _, ok := ringID(stale); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ring never appeared\n%s", old)
		}
		time.Sleep(time.Millisecond)
	}
	old.cmd.Process.Kill()
	old.wait(t, time.Minute)
	if c := start(t, consumer, "-path", stale); c.wait(t, time.Minute) != 2 {
		t.Fatalf("without -force a stale ring must be refused\n%s", c)
	}
	res := exchangeAfter(t, stale, []string{"-path", stale, "-force"}, []string{"-path", stale, "-count", "1000"})
	if !res.OK() || res.Messages != 1000 {
		t.Fatalf("summary %+v", res)
	}
	// A creator killed between creating the file and sizing it leaves it
	// empty: -force takes that too.
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if res := exchange(t, []string{"-path", empty, "-force"}, []string{"-path", empty, "-count", "1000"}); !res.OK() || res.Messages != 1000 {
		t.Fatalf("summary %+v", res)
	}
	notRing := filepath.Join(dir, "precious")
	if err := os.WriteFile(notRing, bytes.Repeat([]byte("keep me "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	c := start(t, consumer, "-path", notRing, "-force")
	if code := c.wait(t, time.Minute); code != 2 || !strings.Contains(c.stderr.String(), "not a ring") {
		t.Fatalf("exit %d, want 2 and a refusal\n%s", code, c)
	}
	if _, err := os.Stat(notRing); err != nil {
		t.Fatalf("-force deleted a file that is not a ring: %v", err)
	}
}

// TestDemoReplace checks that -replace takes the ring of a killed consumer
// and refuses one that a live consumer has open.
func TestDemoReplace(t *testing.T) {
	_, consumer := buildCommands(t)
	name := demoName(t)
	old := start(t, consumer, "-name", name, "-idle", "1m")
	r, err := shmring.Open(name, shmring.WithOpenWait(time.Minute))
	if err != nil {
		t.Fatalf("%v\n%s", err, old)
	}
	r.Close()
	// In use: refused, and the live consumer goes on.
	if c := start(t, consumer, "-name", name, "-replace"); c.wait(t, time.Minute) != 2 || !strings.Contains(c.stderr.String(), "in use") {
		t.Fatalf("-replace of a ring in use must be refused\n%s", c)
	}
	old.cmd.Process.Kill() // its ring is left behind (on Windows it goes with it)
	old.wait(t, time.Minute)
	if runtime.GOOS == "windows" {
		// Under Wine a killed process's handles close a moment after
		// it is reported dead: wait for its ring to go with them.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			r, err := shmring.Open(name)
			if err != nil {
				break
			}
			r.Close()
		}
	}
	path, _ := shm.NamePath(name) // a file on Unix; on Windows nothing is left to wait for
	res := exchangeAfter(t, path, []string{"-name", name, "-replace"}, []string{"-name", name, "-count", "1000"})
	if !res.OK() || res.Messages != 1000 {
		t.Fatalf("summary %+v", res)
	}
}
