package shmring_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/stream"
)

// The fan-out tests run one cmd/producer -subscribers N process and
// cmd/consumer -subscribe processes, as a user would. The ones that stop a
// subscriber are Unix-only (integration_fanout_unix_test.go).

// subscriber starts cmd/consumer -subscribe kind on the ring name.
func subscriber(t *testing.T, name, kind string, extra ...string) *run {
	t.Helper()
	_, consumer := buildCommands(t)
	return start(t, consumer, append([]string{"-name", name, "-subscribe", kind, "-json", "-idle", "2m"}, extra...)...)
}

// result waits for a subscriber and returns its summary and exit status.
func result(t *testing.T, c *run, limit time.Duration) (stream.Result, int) {
	t.Helper()
	code := c.wait(t, limit)
	var res stream.Result
	if err := json.Unmarshal(c.stdout.Bytes(), &res); err != nil {
		t.Fatalf("subscriber summary: %v\n%s", err, c)
	}
	return res, code
}

// TestFanoutEightSubscribers: one producer process sends 200k messages of
// 32 B to 1 KiB once, into a 64 KiB fan-out ring that wraps all the time;
// eight reliable subscriber processes each receive every one, in order and
// intact. The lag bound is a minute: nine processes on a small machine (or
// under Wine, where one was once held back past the default second and
// rightly evicted) must not be evicted here; eviction has tests of its own.
func TestFanoutEightSubscribers(t *testing.T) {
	producer, _ := buildCommands(t)
	name := demoName(t)
	const count = 200_000
	p := start(t, producer, "-name", name, "-subscribers", "8", "-wait-subscribers", "8", "-capacity", "64KiB",
		"-count", fmt.Sprint(count), "-size", "32", "-max-size", "1024", "-lag-bound", "1m")
	var subs []*run
	for range 8 {
		subs = append(subs, subscriber(t, name, "reliable"))
	}
	// Held open to say, should the producer fail, where each subscriber
	// was (under Wine, heavily loaded, the producer once waited 30 s for
	// room that none of them made).
	r, err := shmring.Open(name, shmring.WithOpenWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if code := p.wait(t, 5*time.Minute); code != 0 {
		st, _ := r.Stats()
		js, _ := json.Marshal(st)
		t.Fatalf("producer exited %d\n%s\nthe ring then: %s", code, p, js)
	}
	for i, s := range subs {
		res, code := result(t, s, time.Minute)
		if code != 0 || res.Messages != count || res.Lost != 0 || res.Corrupt != 0 {
			t.Fatalf("subscriber %d: exit %d, %d messages, lost %d, corrupt %d\n%s", i, code, res.Messages, res.Lost, res.Corrupt, s)
		}
		if i == 0 {
			t.Logf("subscriber 0: %.2f M msg/s", res.MsgsPerSec/1e6)
		}
	}
}

// TestFanoutSubscriberKilled: with no lag bound, a reliable subscriber
// killed in the middle of the stream stops holding the producer back (the
// kernel's release of its lock proves the death); the other three complete
// with nothing lost.
func TestFanoutSubscriberKilled(t *testing.T) {
	producer, _ := buildCommands(t)
	name := demoName(t)
	const count = 100_000
	p := start(t, producer, "-name", name, "-subscribers", "4", "-wait-subscribers", "4", "-capacity", "64KiB",
		"-lag-bound", "-1s", "-count", fmt.Sprint(count), "-size", "32", "-max-size", "256")
	var subs []*run
	for range 4 {
		subs = append(subs, subscriber(t, name, "reliable"))
	}
	r := openWhenAttached(t, name, 4)
	defer r.Close()
	waitMessages(t, r, 10_000)
	subs[0].cmd.Process.Kill()
	killed := time.Now()
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("producer exited %d\n%s", code, p)
	}
	t.Logf("the producer finished %v after the kill", time.Since(killed).Round(time.Millisecond))
	for i, s := range subs[1:] {
		res, code := result(t, s, time.Minute)
		if code != 0 || res.Messages != count || res.Lost != 0 {
			t.Fatalf("subscriber %d: exit %d, %d messages, lost %d\n%s", i+1, code, res.Messages, res.Lost, s)
		}
	}
}

// openWhenAttached opens the fan-out ring name once n subscribers attached.
func openWhenAttached(t *testing.T, name string, n uint64) *shmring.Ring {
	t.Helper()
	r, err := shmring.Open(name, shmring.WithOpenWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		st, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Fanout != nil && st.Fanout.Attaches >= n {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d subscribers attached in a minute, want %d", st.Fanout.Attaches, n)
		}
	}
}

// waitMessages waits until the frontier passed n messages.
func waitMessages(t *testing.T, r *shmring.Ring, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		st, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Fanout.Messages >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in a minute, want %d", st.Fanout.Messages, n)
		}
	}
}
