package shmring_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/stream"
)

// The multi-producer tests run cmd/consumer with -producers N and several
// cmd/producer processes, and kill some of them for real. The ones that
// stop a process, scribble on a ring or truncate it are Unix-only
// (integration_mp_test.go).

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
// 4 KiB into a 64 KiB ring, which wraps and fills all the time: one by one,
// and in batches of 32 (SendBatch), two of the producers batching.
func TestMultiProducerExchange(t *testing.T) {
	producer, consumer := buildCommands(t)
	count := 300_000
	if testing.Short() {
		count = 30_000
	}
	for _, batch := range []int{1, 32} {
		t.Run(fmt.Sprint("batch ", batch), func(t *testing.T) {
			name := demoName(t)
			c := start(t, consumer, "-name", name, "-producers", "4", "-capacity", "64KiB", "-json")
			var ps []*run
			for id := 1; id <= 4; id++ {
				b := 1
				if id%2 == 0 {
					b = batch
				}
				ps = append(ps, start(t, producer, "-name", name, "-id", fmt.Sprint(id), "-count", fmt.Sprint(count),
					"-size", "32", "-max-size", "4096", "-batch", fmt.Sprint(b)))
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
		})
	}
}

// TestChaosKillProducers kills a random producer at a random moment, again
// and again, while the others run, and starts another in its place. Every
// message each killed producer committed must arrive, intact and in order,
// and the consumer must reach the end (it gives up after 10 s without a
// message, far past the recovery bound). Producers with an even id send in
// batches of chaosBatch (SendBatch), so dead batch claims are recovered too.
// SHMRING_CHAOS_KILLS sets the number of kills (default 50) for a soak.
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
		p := start(t, producer, "-name", name, "-id", fmt.Sprint(nextID), "-count", "0", "-size", "32", "-max-size", "1024",
			"-batch", fmt.Sprint(chaosBatchOf(nextID)))
		waitAttached(t, r, p)
		live[nextID] = p
		nextID++
	}
	for range running {
		launch()
	}
	committed := map[uint32]uint64{} // killed producer's id -> messages its slot counted
	// kill records what the slot of a producer just killed counted.
	kill := func(t *testing.T, r *shmring.Ring, id, pid int) {
		st, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.Slots {
			if s.PID == uint32(pid) {
				committed[uint32(id)] = s.Messages
			}
		}
	}
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
		p.cmd.Process.Kill()
		p.cmd.Wait()
		kill(t, r, id, p.cmd.Process.Pid)
		launch()
	}
	for id, p := range live {
		if !endStream(p) {
			// No signal to end it cleanly (Windows): killed like the others.
			pid := p.cmd.Process.Pid
			p.cmd.Wait()
			kill(t, r, id, pid)
			delete(live, id)
			continue
		}
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
		// The slot counts messages just after committing them: one more
		// record (one message, or a batch) may have been committed than it
		// says.
		if p, b := got[id], uint64(chaosBatchOf(int(id))); p.Received < n || p.Received > n+b || p.Finished {
			t.Fatalf("killed producer %d: %d messages committed (or up to %d more), received %+v", id, n, b, p)
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

// TestProducerSeesConsumerDeath: a producer blocked on a full ring whose
// consumer was killed fails with an error that says so.
func TestProducerSeesConsumerDeath(t *testing.T) {
	producer, consumer := buildCommands(t)
	name := demoName(t)
	c := start(t, consumer, "-name", name, "-capacity", "64KiB")
	p := start(t, producer, "-name", name, "-count", "0")
	// Kill the consumer once both are attached (process start-up is slow
	// under Wine: a fixed pause killed it before it made the ring).
	r, err := shmring.Open(name, shmring.WithOpenWait(time.Minute))
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, c, p)
	}
	waitAttached(t, r, p)
	for st, err := r.Stats(); !st.Consumer.Alive; st, err = r.Stats() {
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	r.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
	if code := p.wait(t, time.Minute); code != 1 || !strings.Contains(p.stderr.String(), "consumer died") {
		t.Fatalf("producer exited %d, want 1 and the reason\n%s", code, p)
	}
}

// chaosBatch is the batch size of the even producers of the chaos test.
const chaosBatch = 16

func chaosBatchOf(id int) int {
	if id%2 == 0 {
		return chaosBatch
	}
	return 1
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
