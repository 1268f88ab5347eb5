//go:build unix

package shmring_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/stream"
	"github.com/shmring/shmring/internal/testdir"
)

// The multi-producer tests run cmd/consumer with -producers N and several
// cmd/producer processes, and kill or stop some of them for real.

// summary waits for the consumer and returns its JSON summary, failing the
// test unless it exits 0.
func summary(t *testing.T, c *run, limit time.Duration) stream.Result {
	t.Helper()
	if code := c.wait(t, limit); code != 0 {
		t.Fatalf("consumer exited %d\n%s", code, c)
	}
	var res stream.Result
	if err := json.Unmarshal(c.stdout.Bytes(), &res); err != nil {
		t.Fatalf("consumer summary: %v\n%s", err, c)
	}
	return res
}

func perProducer(res stream.Result) map[uint32]stream.ProducerResult {
	m := make(map[uint32]stream.ProducerResult)
	for _, p := range res.PerProd {
		m[p.ID] = p
	}
	return m
}

// TestMultiProducerExchange: 4 producer processes x 300k messages of 32 B to
// 4 KiB into a 64 KiB ring, which wraps and fills all the time.
func TestMultiProducerExchange(t *testing.T) {
	producer, consumer := buildCommands(t)
	count := 300_000
	if testing.Short() {
		count = 30_000
	}
	name := demoName(t)
	c := start(t, consumer, "-name", name, "-producers", "4", "-capacity", "64KiB", "-json")
	var ps []*run
	for id := 1; id <= 4; id++ {
		ps = append(ps, start(t, producer, "-name", name, "-id", fmt.Sprint(id), "-count", fmt.Sprint(count), "-size", "32", "-max-size", "4096"))
	}
	for _, p := range ps {
		if code := p.wait(t, 10*time.Minute); code != 0 {
			t.Fatalf("producer exited %d\n%s\nconsumer: %s", code, p, c)
		}
	}
	res := summary(t, c, time.Minute)
	if !res.OK() || res.Messages != uint64(4*count) || res.Producers != 4 || res.Recovered != 0 || res.DeadProducers != 0 {
		t.Fatalf("summary %+v", res)
	}
	for id, p := range perProducer(res) {
		if !p.Finished || p.Received != uint64(count) {
			t.Fatalf("producer %d: %+v", id, p)
		}
	}
	t.Logf("%d messages, %.0f MB/s, %.2f M msg/s", res.Messages, res.MBPerSec, res.MsgsPerSec/1e6)
}

// TestChaosKillProducers kills a random producer at a random moment, again
// and again, while the others run, and starts another in its place. Every
// message each killed producer committed must arrive, intact and in order,
// and the consumer must reach the end (it gives up after 10 s without a
// message, far past the recovery bound). SHMRING_CHAOS_KILLS sets the number
// of kills (default 50) for a soak.
func TestChaosKillProducers(t *testing.T) {
	producer, consumer := buildCommands(t)
	kills := 50
	if s := os.Getenv("SHMRING_CHAOS_KILLS"); s != "" {
		var err error
		if kills, err = strconv.Atoi(s); err != nil {
			t.Fatalf("SHMRING_CHAOS_KILLS=%q: %v", s, err)
		}
	}
	const running = 4
	name := demoName(t)
	c := start(t, consumer, "-name", name, "-producers", fmt.Sprint(running+kills), "-capacity", "64KiB", "-idle", "10s", "-json")
	r, err := shmring.Open(name, shmring.WithOpenWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	live := map[int]*run{} // by id
	nextID := 1
	launch := func() {
		p := start(t, producer, "-name", name, "-id", fmt.Sprint(nextID), "-count", "0", "-size", "32", "-max-size", "1024")
		waitAttached(t, r, p)
		live[nextID] = p
		nextID++
	}
	for range running {
		launch()
	}
	committed := map[uint32]uint64{} // killed producer's id -> messages its slot counted
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for range kills {
		time.Sleep(time.Duration(1+rng.IntN(40)) * time.Millisecond)
		ids := make([]int, 0, len(live))
		for id := range live {
			ids = append(ids, id)
		}
		id := ids[rng.IntN(len(ids))]
		p := live[id]
		delete(live, id)
		pid := p.cmd.Process.Pid
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
		st, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.Slots {
			if s.PID == uint32(pid) {
				committed[uint32(id)] = s.Messages
			}
		}
		launch()
	}
	for id, p := range live {
		p.cmd.Process.Signal(syscall.SIGTERM) // ends its stream cleanly
		if code := p.wait(t, time.Minute); code != 0 {
			t.Fatalf("producer %d exited %d\n%s", id, code, p)
		}
	}
	res := summary(t, c, time.Minute)
	if !res.OK() {
		t.Fatalf("lost, duplicated, reordered or corrupt: %+v", res)
	}
	got := perProducer(res)
	for id, n := range committed {
		// The slot counts a message just after committing it: one more
		// may have been committed than it says.
		if p := got[id]; p.Received < n || p.Received > n+1 || p.Finished {
			t.Fatalf("killed producer %d: %d messages committed (or one more), received %+v", id, n, p)
		}
	}
	for id := range live {
		if p := got[uint32(id)]; !p.Finished || p.Received != p.Sent {
			t.Fatalf("surviving producer %d: %+v", id, p)
		}
	}
	t.Logf("%d kills: %d messages from %d producers, %d unfinished claims recovered, %d dead slots freed by the consumer",
		kills, res.Messages, res.Producers, res.Recovered, res.DeadProducers)
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

// TestProducerSeesConsumerDeath: a producer blocked on a full ring whose
// consumer was killed fails with an error that says so.
func TestProducerSeesConsumerDeath(t *testing.T) {
	producer, consumer := buildCommands(t)
	name := demoName(t)
	c := start(t, consumer, "-name", name, "-capacity", "64KiB")
	p := start(t, producer, "-name", name, "-count", "0")
	time.Sleep(100 * time.Millisecond)
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	if code := p.wait(t, time.Minute); code != 1 || !strings.Contains(p.stderr.String(), "consumer died") {
		t.Fatalf("producer exited %d, want 1 and the reason\n%s", code, p)
	}
}

// waitAttached waits until the producer process p holds a slot of r, so that
// killing it is killing an attached producer.
func waitAttached(t *testing.T, r *shmring.Ring, p *run) {
	t.Helper()
	pid := uint32(p.cmd.Process.Pid)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		st, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.Slots {
			if s.PID == pid && s.Attached {
				return
			}
		}
	}
	t.Fatalf("producer never attached\n%s", p)
}

// TestScribbler has a third process write random bytes over the control
// lines and the data area of a ring while a producer and a consumer run.
// Both must end on their own, with an error and a non-zero status, never
// with a panic, a crash or a hang (their -idle and -stall bound the waits).
func TestScribbler(t *testing.T) {
	producer, consumer := buildCommands(t)
	for _, target := range []string{"control", "data"} {
		t.Run(target, func(t *testing.T) {
			path := filepath.Join(testdir.Make(t), "ring")
			c := start(t, consumer, "-path", path, "-capacity", "64KiB", "-idle", "2s")
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
			for _, cmd := range []*run{c, p} {
				code := cmd.wait(t, time.Minute)
				out := cmd.stderr.String()
				if strings.Contains(out, "panic") || strings.Contains(out, "fatal error") || strings.Contains(out, "goroutine ") {
					t.Fatalf("%s crashed (exit %d)\n%s", filepath.Base(cmd.cmd.Path), code, cmd)
				}
				// 1: failed part-way; 2: refused at setup (a producer that
				// attached after the scribbling began).
				if code != 1 && (code != 2 || cmd == c) {
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
