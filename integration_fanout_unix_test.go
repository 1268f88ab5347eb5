//go:build unix

package shmring_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestFanoutLossyStopped: a lossy subscriber stopped (SIGSTOP) for a while
// in the middle of a paced stream is lapped; once resumed it reports what it
// lost, and the messages missing from what it received (by their sequence
// numbers) are exactly those (cmd/consumer checks it, and fails otherwise).
// A reliable subscriber beside it receives everything.
func TestFanoutLossyStopped(t *testing.T) {
	producer, _ := buildCommands(t)
	name := demoName(t)
	const count, rate = 300_000, 200_000
	p := start(t, producer, "-name", name, "-subscribers", "4", "-wait-subscribers", "2", "-capacity", "64KiB",
		"-count", fmt.Sprint(count), "-rate", fmt.Sprint(rate), "-size", "64")
	lossy := subscriber(t, name, "lossy")
	reliable := subscriber(t, name, "reliable")
	r := openWhenAttached(t, name, 2)
	defer r.Close()
	time.Sleep(300 * time.Millisecond)
	resume, ok := stopProcess(lossy.cmd.Process)
	if !ok {
		t.Skip("cannot stop a process here")
	}
	time.Sleep(300 * time.Millisecond)
	resume()
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("producer exited %d\n%s", code, p)
	}
	res, code := result(t, lossy, time.Minute)
	if code != 0 || res.LostReported == 0 || res.Lost != res.LostReported || res.Messages+res.Lost != count {
		t.Fatalf("lossy subscriber: exit %d, %d messages, %d missing, %d reported lost, want %d in all\n%s", code, res.Messages, res.Lost, res.LostReported, count, lossy)
	}
	t.Logf("lossy subscriber stopped for 300 ms at %d msg/s: lost %d messages in %d laps, reported exactly", rate, res.LostReported, res.Laps)
	res, code = result(t, reliable, time.Minute)
	if code != 0 || res.Messages != count || res.Lost != 0 {
		t.Fatalf("reliable subscriber: exit %d, %d messages, lost %d\n%s", code, res.Messages, res.Lost, reliable)
	}
}

// TestFanoutKillAndEvict: of six reliable subscribers, one is killed
// (SIGKILL) and one stopped (SIGSTOP) in the middle of the stream. The dead
// one stops holding the producer back at once; the stopped one is alive and
// held to the lag bound, then evicted; once resumed it learns it was
// evicted. The other four complete with nothing lost.
func TestFanoutKillAndEvict(t *testing.T) {
	producer, _ := buildCommands(t)
	name := demoName(t)
	const count = 400_000
	p := start(t, producer, "-name", name, "-subscribers", "8", "-wait-subscribers", "6", "-capacity", "64KiB",
		"-lag-bound", "500ms", "-count", fmt.Sprint(count), "-size", "32", "-max-size", "256")
	var subs []*run
	for range 6 {
		subs = append(subs, subscriber(t, name, "reliable"))
	}
	r := openWhenAttached(t, name, 6)
	defer r.Close()
	waitMessages(t, r, 20_000)
	subs[0].cmd.Process.Signal(syscall.SIGKILL)
	resume, ok := stopProcess(subs[1].cmd.Process)
	if !ok {
		t.Skip("cannot stop a process here")
	}
	stopped := time.Now()
	if code := p.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("producer exited %d\n%s", code, p)
	}
	t.Logf("the producer finished %v after the kill and the stop (lag bound 500 ms)", time.Since(stopped).Round(time.Millisecond))
	for i, s := range subs[2:] {
		res, code := result(t, s, time.Minute)
		if code != 0 || res.Messages != count || res.Lost != 0 || res.Corrupt != 0 {
			t.Fatalf("subscriber %d: exit %d, %d messages, lost %d\n%s", i+2, code, res.Messages, res.Lost, s)
		}
	}
	resume()
	res, code := result(t, subs[1], time.Minute)
	if code != 1 || !res.Evicted {
		t.Fatalf("the stopped subscriber: exit %d, evicted %v\n%s", code, res.Evicted, subs[1])
	}
}
