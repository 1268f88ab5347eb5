package shmring_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/cpus"
	"github.com/shmring/shmring/internal/testdir"
)

func TestMain(m *testing.M) {
	if os.Getenv("SHMRING_TEST_CHILD") != "" {
		os.Exit(child())
	}
	// Race-enabled child processes otherwise wait a second at exit.
	os.Setenv("GORACE", "atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/shmring/shmring/internal/shm.keep")) // the Windows mutex keeper lives as long as the process
}

// skipUnsupported skips on systems without segments and fails on any other
// error.
func skipUnsupported(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, shmring.ErrNotSupported) {
		tb.Skipf("shared memory not supported here: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

func ringName(tb testing.TB) string {
	tb.Helper()
	name := "shmring-test-" + uuid.NewString()
	tb.Cleanup(func() { shmring.Remove(name) })
	return name
}

// message writes message seq of a stream: its size and bytes derive from seq.
func message(buf []byte, seq uint64, maxSize int) []byte {
	size := int(seq * 7919 % uint64(maxSize+1)) // in uint64: int is 32 bits on 386
	m := buf[:size]
	for i := range m {
		m[i] = byte(seq + uint64(i)*13)
	}
	if size >= 8 {
		binary.LittleEndian.PutUint64(m, seq)
	}
	return m
}

func TestNamedAcrossMappings(t *testing.T) {
	name := ringName(t)
	cr, err := shmring.Create(name, shmring.WithCapacity(4096))
	skipUnsupported(t, err)
	defer cr.Close()
	or, err := shmring.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer or.Close()
	if cr.Info().UUID != or.Info().UUID {
		t.Fatalf("UUIDs differ: %x and %x", cr.Info().UUID, or.Info().UUID)
	}
	c, err := cr.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := or.Producer()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	buf, out := make([]byte, 2048), make([]byte, 2048)
	for seq := range uint64(1000) {
		msg := message(buf, seq, 1000)
		if err := p.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		n, err := c.Recv(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out[:n], msg) {
			t.Fatalf("message %d differs through the second mapping", seq)
		}
	}
	p.Close()
	if _, err := c.Recv(ctx, out); !errors.Is(err, io.EOF) {
		t.Fatalf("after the producer closed: got %v, want io.EOF", err)
	}
}

func TestCreateErrors(t *testing.T) {
	name := ringName(t)
	r, err := shmring.Create(name)
	skipUnsupported(t, err)
	defer r.Close()
	if _, err := shmring.Create(name); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create of an existing name: got %v, want os.ErrExist", err)
	}
	for _, tc := range []struct {
		name string
		opts []shmring.Option
	}{
		{"capacity not a power of two", []shmring.Option{shmring.WithCapacity(5000)}},
		{"capacity too small", []shmring.Option{shmring.WithCapacity(128)}},
		{"max message over half the capacity", []shmring.Option{shmring.WithCapacity(4096), shmring.WithMaxMessage(4096)}},
		{"max message zero", []shmring.Option{shmring.WithMaxMessage(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := ringName(t)
			_, err := shmring.Create(n, tc.opts...)
			if !errors.Is(err, shmring.ErrBadConfig) {
				t.Fatalf("got %v, want ErrBadConfig", err)
			}
			if _, err := os.Stat("/dev/shm/" + n); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a refused Create left a file behind: %v", err)
			}
		})
	}
	for _, bad := range []string{"", "a/b", "..", "x\x00y"} {
		if _, err := shmring.Create(bad); !errors.Is(err, shmring.ErrBadName) {
			t.Fatalf("Create(%q): got %v, want ErrBadName", bad, err)
		}
		if _, err := shmring.Open(bad); !errors.Is(err, shmring.ErrBadName) {
			t.Fatalf("Open(%q): got %v, want ErrBadName", bad, err)
		}
	}
}

func TestOpenWait(t *testing.T) {
	name := ringName(t)
	_, err := shmring.Open(name)
	if errors.Is(err, shmring.ErrNotSupported) {
		t.Skip(err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a missing ring: got %v, want os.ErrNotExist", err)
	}
	// The creator keeps the ring open until the opener is done: on Windows
	// a named ring lives only while some process has it open.
	type result struct {
		r   *shmring.Ring
		err error
	}
	created := make(chan result, 1)
	time.AfterFunc(30*time.Millisecond, func() {
		r, err := shmring.Create(name)
		created <- result{r, err}
	})
	r, err := shmring.Open(name, shmring.WithOpenWait(10*time.Second))
	if err != nil {
		t.Fatalf("Open with a wait, ring created 30ms later: %v", err)
	}
	r.Close()
	if c := <-created; c.err != nil {
		t.Fatal(c.err)
	} else {
		c.r.Close()
	}
	start := time.Now()
	_, err = shmring.Open(ringName(t), shmring.WithOpenWait(50*time.Millisecond))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a ring never created: got %v, want os.ErrNotExist", err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatalf("Open gave up after %v, before its 50ms wait", time.Since(start))
	}
}

// TestOpenNotARing opens files that are not rings, or broken ones; each
// gives its own error, and none panics.
func TestOpenNotARing(t *testing.T) {
	dir := testdir.Make(t)
	good := filepath.Join(dir, "good")
	r, err := shmring.CreateFile(good, shmring.WithCapacity(4096))
	skipUnsupported(t, err)
	r.Close()
	image, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	patch := func(off int, b ...byte) []byte {
		img := bytes.Clone(image)
		copy(img[off:], b)
		return img
	}
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", bytes.Repeat([]byte("not a ring "), 2000), shmring.ErrBadMagic},
		{"zeros", make([]byte, len(image)), shmring.ErrNotReady},
		{"tiny", []byte("x"), shmring.ErrSize},
		{"empty", nil, shmring.ErrSize},
		{"truncated", image[:len(image)-4096], shmring.ErrSize},
		{"extended", append(bytes.Clone(image), make([]byte, 4096)...), shmring.ErrSize},
		{"version 2", patch(8, 2), shmring.ErrVersion},
		{"init word unset", patch(96, 0, 0, 0, 0), shmring.ErrNotReady},
		{"capacity not a power of two", patch(32, 1, 0x10), shmring.ErrBadHeader},
		{"max message too large", patch(28, 0xff, 0xff), shmring.ErrBadHeader},
		{"zero key", patch(56, 0, 0, 0, 0, 0, 0, 0, 0), shmring.ErrBadHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := shmring.OpenFile(path, shmring.WithInitWait(20*time.Millisecond))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCloseOrder(t *testing.T) {
	r, err := shmring.CreateFile(filepath.Join(testdir.Make(t), "ring"), shmring.WithCapacity(4096))
	skipUnsupported(t, err)
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	// Closing the Ring first keeps the mapping for its producer and consumer.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Producer(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Producer after Close: got %v, want os.ErrClosed", err)
	}
	if err := p.TrySend([]byte("still mapped")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.TryRecv(buf)
	if err != nil || string(buf[:n]) != "still mapped" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	for _, f := range []func() error{p.Close, p.Close, c.Close, c.Close} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.TrySend(nil); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("TrySend after Close: got %v, want os.ErrClosed", err)
	}
}

func TestAllocsOnMappedRing(t *testing.T) {
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithCapacity(1<<16))
	skipUnsupported(t, err)
	defer r.Close()
	p, _ := r.Producer()
	defer p.Close()
	c, _ := r.Consumer()
	defer c.Close()
	ctx := context.Background()
	msg, buf := make([]byte, 64), make([]byte, 64)
	if n := testing.AllocsPerRun(1000, func() {
		p.Send(ctx, msg)
		c.Recv(ctx, buf)
		w, _ := p.Reserve(ctx, 64)
		w[0] = 1
		p.Commit(64)
		v, _ := c.Peek(ctx)
		_ = v[0]
		c.Release()
	}); n != 0 {
		t.Fatalf("%v allocations per Send/Recv/Reserve/Commit/Peek/Release, want 0", n)
	}
}

// child is the helper process: it runs as the test binary with
// SHMRING_TEST_CHILD set, and returns its exit status.
func child() int {
	switch os.Getenv("SHMRING_TEST_CHILD") {
	case "stream":
		return streamChild()
	case "consumer":
		return consumerChild()
	case "churn":
		return churnChild()
	case "tiny":
		return tinyChild()
	case "hold":
		return holdChild()
	case "headstop":
		return headStopChild()
	case "removedproducer":
		return removedProducerChild()
	case "removedconsumer":
		return removedConsumerChild()
	case "createhold":
		return createHoldChild()
	case "attach":
		return attachChild()
	case "feeder":
		return feederChild()
	case "claim":
		return claimChild()
	case "dialer":
		return dialerChild()
	case "listener":
		return listenerChild()
	case "hostiledialer":
		return hostileDialerChild()
	case "manydialer":
		return manyDialerChild()
	case "producer":
		count, _ := strconv.ParseUint(os.Getenv("SHMRING_TEST_COUNT"), 10, 64)
		maxSize, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_MAXSIZE"))
		p, done := childProducer(shmring.OpenFile(os.Getenv("SHMRING_TEST_PATH"), shmring.WithOpenWait(10*time.Second)))
		if p == nil {
			return 2
		}
		defer done()
		// A bound for a hang, not a speed: 300k messages that each
		// wake a sleeper took 62-63 s under Wine on a VM whose system
		// calls are dear.
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		buf := make([]byte, maxSize)
		for seq := range count {
			if err := p.Send(ctx, message(buf, seq, maxSize)); err != nil {
				fmt.Fprintf(os.Stderr, "send %d: %v\n", seq, err)
				return 1
			}
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown child", os.Getenv("SHMRING_TEST_CHILD"))
	return 2
}

// startChild re-runs the test binary as a helper process.
func startChild(tb testing.TB, role string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := execChild(exe, role, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd = startRetrying(tb, cmd)
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &out
}

// childProducer attaches a producer, in a helper process, to the ring that
// an Open call returned. On failure it prints why, for the parent's report,
// and returns nil. done closes the producer and the ring.
func childProducer(r *shmring.Ring, err error) (p *shmring.Producer, done func()) {
	if err == nil {
		if p, err = r.Producer(); err == nil {
			return p, func() { p.Close(); r.Close() }
		}
		r.Close()
	}
	fmt.Fprintln(os.Stderr, err)
	return nil, nil
}

// childConsumer is childProducer for the consumer.
func childConsumer(r *shmring.Ring, err error) (c *shmring.Consumer, done func()) {
	if err == nil {
		if c, err = r.Consumer(); err == nil {
			return c, func() { c.Close(); r.Close() }
		}
		r.Close()
	}
	fmt.Fprintln(os.Stderr, err)
	return nil, nil
}

// startRetrying starts cmd and returns it, or a copy it started instead.
// Under Wine, creating a process now and then fails with a system error
// ("Internal error.", seen once in a local run of the whole CI) that says
// nothing of the program, so on Windows such a failure is tried twice more
// with a fresh copy of cmd. cmd's output must not be a pipe from
// StdoutPipe or StderrPipe, which a failed Start closes.
func startRetrying(tb testing.TB, cmd *exec.Cmd) *exec.Cmd {
	tb.Helper()
	for try := 1; ; try++ {
		err := cmd.Start()
		if err == nil {
			return cmd
		}
		var errno syscall.Errno
		if runtime.GOOS != "windows" || !errors.As(err, &errno) || try == 3 {
			tb.Fatal(err)
		}
		tb.Logf("starting %s, try %d: %v", cmd.Path, try, err)
		time.Sleep(100 * time.Millisecond)
		next := exec.Command(cmd.Path, cmd.Args[1:]...)
		next.Env, next.Dir, next.Stdin, next.Stdout, next.Stderr = cmd.Env, cmd.Dir, cmd.Stdin, cmd.Stdout, cmd.Stderr
		cmd = next
	}
}

// execChild prepares the test binary exe to run as a helper process.
// freshProcess runs the calling test alone in a new process of this test
// binary, and reports whether the caller is that process (then it goes on
// with the test). Tests that bound the process's threads need it: Go never
// ends a thread, so a process shared with the other tests counts theirs.
func freshProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv("SHMRING_TEST_FRESH") == t.Name() {
		return true
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-test.run", "^" + regexp.QuoteMeta(t.Name()) + "$", "-test.v", "-test.count=1"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "SHMRING_TEST_FRESH="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("%s, in a process of its own:\n%s", t.Name(), out)
	switch {
	case err != nil:
		t.Fatalf("%s failed in a process of its own: %v", t.Name(), err)
	case !bytes.Contains(out, []byte("--- PASS: "+t.Name())) && !bytes.Contains(out, []byte("--- SKIP: "+t.Name())):
		t.Fatalf("%s did not run in a process of its own", t.Name())
	}
	return false
}

func execChild(exe, role string, env ...string) *exec.Cmd {
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), "SHMRING_TEST_CHILD="+role), env...)
	return cmd
}

// TestTwoProcesses streams messages of every size up to the maximum from a
// child process through a small ring, so that it wraps and fills constantly,
// and checks every byte.
func TestTwoProcesses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy shmring.WaitPolicy
	}{
		{"default", shmring.DefaultWaitPolicy},
		{"always park", shmring.WaitPolicy{}},
		{"spin", shmring.SpinWaitPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			count := uint64(300_000)
			if testing.Short() {
				count = 30_000
			}
			if tc.policy.NoPark && cpus.One() {
				// Two processes that never sleep take turns on one
				// CPU only when the kernel preempts them (a round
				// trip of milliseconds; the README says never to run
				// it there): the whole stream would take minutes.
				t.Skip("SpinWaitPolicy at both ends on one CPU: the README rules it out")
			}
			path := filepath.Join(testdir.Make(t), "ring")
			r, err := shmring.CreateFile(path, shmring.WithCapacity(16384), shmring.WithWaitPolicy(tc.policy))
			skipUnsupported(t, err)
			defer r.Close()
			maxSize := r.Info().MaxMessage
			c, err := r.Consumer()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cmd, out := startChild(t, "producer", "SHMRING_TEST_PATH="+path,
				fmt.Sprint("SHMRING_TEST_COUNT=", count), fmt.Sprint("SHMRING_TEST_MAXSIZE=", maxSize))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			buf, want := make([]byte, maxSize), make([]byte, maxSize)
			seq := uint64(0)
			for ; ; seq++ {
				n, err := c.Recv(ctx, buf)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("after %d messages: %v\nchild:\n%s", seq, err, out)
				}
				if w := message(want, seq, int(maxSize)); !bytes.Equal(buf[:n], w) {
					t.Fatalf("message %d: got %d bytes, want %d, or bytes differ", seq, n, len(w))
				}
			}
			// The child's output is safe to read once it has exited.
			werr := cmd.Wait()
			if seq != count {
				t.Fatalf("stream ended after %d messages, want %d\nchild (%v):\n%s", seq, count, werr, out)
			}
			if werr != nil {
				t.Fatalf("child: %v\n%s", werr, out)
			}
		})
	}
}

// TestCancelThenUnmap cancels blocked calls and unmaps the ring at once,
// many times: the goroutine that a cancelled context starts to wake the
// sleeper must be done with the ring's memory before the call returns (it
// once was not, and a producer stopped by SIGTERM crashed with SIGSEGV).
func TestCancelThenUnmap(t *testing.T) {
	dir := testdir.Make(t)
	for i := range 300 {
		path := filepath.Join(dir, fmt.Sprint("ring", i))
		r, err := shmring.CreateFile(path, shmring.WithCapacity(4096), shmring.WithWaitPolicy(shmring.WaitPolicy{}))
		skipUnsupported(t, err)
		c, err := r.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(time.Duration(i%50) * time.Microsecond)
			cancel()
		}()
		if _, err := c.Recv(ctx, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("Recv on an empty ring: got %v, want context.Canceled", err)
		}
		c.Close()
		r.Close() // unmaps: nothing may touch the memory after this
		os.Remove(path)
	}
}
