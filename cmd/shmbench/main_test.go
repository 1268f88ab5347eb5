//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"
)

// The test binary is also the peer: run re-executes it.
func TestMain(m *testing.M) {
	if env := os.Getenv(peerEnv); env != "" {
		os.Exit(peerMain(env))
	}
	if env := os.Getenv(manyWaiterEnv); env != "" {
		os.Exit(manyWaiterMain(env))
	}
	// A race-enabled peer otherwise waits a second at exit, in every case.
	os.Setenv("GORACE", "atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	os.Exit(m.Run())
}

// TestEveryCase runs every pattern over every transport briefly, as real
// processes, and checks the JSON: every case present, with messages counted,
// CPU time, and latency where the pattern measures it.
func TestEveryCase(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("named rings live in /dev/shm; %s is not measured", runtime.GOOS)
	}
	doc := runJSON(t, "-json", "-duration", "100ms", "-sizes", "64,64KiB", "-producers", "3", "-rate", "2000")
	if doc.Machine.CPUs < 1 || doc.Machine.Go == "" {
		t.Fatalf("machine %+v", doc.Machine)
	}
	// 4 patterns x (3 shmring transports (shmring, shmring-batch, conn)
	// x 2 policies + 4 other transports) x 2 sizes.
	if len(doc.Results) != 4*10*2 {
		t.Fatalf("%d results, want 80", len(doc.Results))
	}
	seen := map[string]bool{}
	for _, r := range doc.Results {
		name := r.Pattern + " " + r.Transport + " " + r.Wait
		seen[name] = true
		if r.Messages == 0 || r.MsgsPerSec <= 0 || r.MBPerSec <= 0 || r.Seconds <= 0 || r.CPUSeconds <= 0 {
			t.Errorf("%s %d B: %+v", name, r.Size, r)
		}
		if (strings.HasPrefix(r.Transport, "shmring") || r.Transport == "conn") != (r.Wait != "") {
			t.Errorf("%s: wait %q", name, r.Wait)
		}
		timed := r.Pattern == "pingpong" || r.Pattern == "lowrate"
		if timed != (r.LatencyNs.P50 > 0) || r.LatencyNs.Max < r.LatencyNs.P99 || r.LatencyNs.P99 < r.LatencyNs.P50 {
			t.Errorf("%s %d B: latency %+v", name, r.Size, r.LatencyNs)
		}
		if want := map[bool]int{true: 3, false: 1}[r.Pattern == "mpsc"]; r.Producers != want {
			t.Errorf("%s: %d producers, want %d", name, r.Producers, want)
		}
		if r.Pattern == "lowrate" && (r.Messages < 150 || r.Messages > 200) {
			t.Errorf("lowrate %s: %d messages in 100 ms at 2000/s", r.Transport, r.Messages)
		}
	}
	if len(seen) != 4*10 {
		t.Errorf("%d distinct cases: %v", len(seen), seen)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-sizes", "16"},
		{"-sizes", "64,lots"},
		{"-transports", "carrier-pigeon"},
		{"-patterns", "broadcast"},
		{"-waits", "sleepy"},
		{"-waits", "spin=forever"},
		{"-producers", "0"},
		{"-duration", "0s"},
		{"extra"},
	} {
		var out, errs bytes.Buffer
		if code := run(args, &out, &errs); code != 2 || !strings.Contains(errs.String(), "shmbench") && !strings.Contains(errs.String(), "flag") {
			t.Errorf("%v: exit %d, stderr %q", args, code, &errs)
		}
	}
}

// TestProgressNotInLogs runs one case with stderr a buffer, as in a CI log:
// progress comes as plain lines, with no terminal escape sequences.
func TestProgressNotInLogs(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("named rings live in /dev/shm; %s is not measured", runtime.GOOS)
	}
	var out, errs bytes.Buffer
	code := run([]string{"-duration", "50ms", "-sizes", "64", "-patterns", "stream", "-transports", "uds", "-waits", "default"}, &out, &errs)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, &errs)
	}
	if strings.Contains(errs.String(), "\033") || !strings.Contains(errs.String(), "[1/1] ") {
		t.Fatalf("stderr not a terminal: got %q, want plain progress lines", &errs)
	}
	if !strings.Contains(out.String(), "uds") {
		t.Fatalf("no table on stdout:\n%s", &out)
	}
}

// TestContention runs a case confined to one CPU beside a busy thread, and
// checks that the JSON records the condition and that the run puts this
// process back as it found it.
func TestContention(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("-cpus confines processes with sched_setaffinity, which %s lacks", runtime.GOOS)
	}
	procs := runtime.GOMAXPROCS(0)
	doc := runJSON(t, "-json", "-cpus", "1", "-load", "1", "-duration", "100ms", "-sizes", "64", "-patterns", "pingpong", "-transports", "uds,shmring", "-waits", "default")
	if m := doc.Machine; m.CPUsLimit != 1 || len(m.CPUSet) != 1 || m.Load != 1 {
		t.Fatalf("machine %+v: want cpus_limit 1, one CPU in cpu_set, load 1", m)
	}
	if len(doc.Results) != 2 || doc.Results[0].Messages == 0 || doc.Results[1].Messages == 0 {
		t.Fatalf("results %+v", doc.Results)
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Fatalf("GOMAXPROCS %d after the run, %d before", got, procs)
	}
	var out, errs bytes.Buffer
	for _, args := range [][]string{{"-cpus", "4096"}, {"-cpus", "-1"}, {"-load", "-1"}, {"-load", "65"}} {
		errs.Reset()
		if code := run(append(args, "-duration", "10ms", "-patterns", "stream", "-transports", "uds", "-sizes", "64"), &out, &errs); code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %q", args, code, &errs)
		}
	}
}

// TestManyRingsPattern runs manyrings over 50 rings with each receiver, and
// checks the row: the waiting process's threads and idle wake-ups, the
// latency of the messages sent at random, and the stream into one ring.
func TestManyRingsPattern(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("named rings live in /dev/shm; %s is not measured", runtime.GOOS)
	}
	doc := runJSON(t, "-json", "-patterns", "manyrings", "-rings", "50", "-duration", "100ms", "-rate", "2000", "-sizes", "64", "-waits", "default")
	if len(doc.Results) != 3 {
		t.Fatalf("%d results, want shmring, shmring-waitset and uds: %+v", len(doc.Results), doc.Results)
	}
	for _, r := range doc.Results {
		if r.Pattern != "manyrings" || r.Rings != 50 || r.Threads < 1 || r.IdleWakeupsPerSec == nil || r.BaselineWakeupsPerSec == nil {
			t.Errorf("%s: %+v", r.Transport, r)
		}
		if r.Messages < 150 || r.Messages > 200 || r.LatencyNs.P50 <= 0 || r.LatencyNs.Max < r.LatencyNs.P50 {
			t.Errorf("%s: %d messages at 2000/s for 100 ms, latency %+v", r.Transport, r.Messages, r.LatencyNs)
		}
		if r.MsgsPerSec <= 0 || r.CPUSeconds <= 0 {
			t.Errorf("%s: stream %.0f msgs/s, %.2f CPU-s", r.Transport, r.MsgsPerSec, r.CPUSeconds)
		}
	}
	var out, errs bytes.Buffer
	if code := run([]string{"-patterns", "manyrings", "-rings", "0"}, &out, &errs); code != 2 {
		t.Errorf("-rings 0: exit %d, want 2", code)
	}
}

// TestHTTPPattern runs the http pattern over conn and uds briefly and
// checks that round trips were timed.
func TestHTTPPattern(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("named rings live in /dev/shm; %s is not measured", runtime.GOOS)
	}
	doc := runJSON(t, "-json", "-patterns", "http", "-duration", "100ms", "-sizes", "64", "-waits", "default")
	if len(doc.Results) != 2 {
		t.Fatalf("%d results, want conn and uds: %+v", len(doc.Results), doc.Results)
	}
	for _, r := range doc.Results {
		if r.Messages == 0 || r.LatencyNs.P50 <= 0 || r.CPUSeconds <= 0 || (r.Transport == "conn") != (r.Wait != "") {
			t.Errorf("%s: %+v", r.Transport, r)
		}
	}
}

// TestConnectPattern runs the connect pattern over conn and uds briefly and
// checks that whole connections were made and timed.
func TestConnectPattern(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("named rings live in /dev/shm; %s is not measured", runtime.GOOS)
	}
	doc := runJSON(t, "-json", "-patterns", "connect", "-duration", "100ms", "-sizes", "64", "-waits", "default")
	if len(doc.Results) != 2 {
		t.Fatalf("%d results, want conn and uds: %+v", len(doc.Results), doc.Results)
	}
	for _, r := range doc.Results {
		if r.Pattern != "connect" || r.Messages == 0 || r.MsgsPerSec <= 0 || r.LatencyNs.P50 <= 0 || r.CPUSeconds <= 0 || (r.Transport == "conn") != (r.Wait != "") {
			t.Errorf("%s: %+v", r.Transport, r)
		}
	}
}

// runJSON runs shmbench with args and decodes its JSON.
func runJSON(t *testing.T, args ...string) (doc struct {
	Machine machine  `json:"machine"`
	Results []result `json:"results"`
}) {
	t.Helper()
	var out, errs bytes.Buffer
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("exit %d\n%s", code, &errs)
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	return doc
}

// TestFanoutPattern runs the fanout pattern over its four transports
// briefly and checks the fields its rows promise.
func TestFanoutPattern(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skipf("named rings live in /dev/shm; %s is not measured", runtime.GOOS)
	}
	doc := runJSON(t, "-json", "-patterns", "fanout", "-subscribers", "3", "-duration", "100ms", "-sizes", "64", "-waits", "default",
		"-transports", "shmring,shmring-lossy,shmring-stopped,uds-buffered")
	if len(doc.Results) != 4 {
		t.Fatalf("%d results, want 4: %+v", len(doc.Results), doc.Results)
	}
	for _, r := range doc.Results {
		if r.Pattern != "fanout" || r.Subscribers != 3 || r.MsgsPerSec <= 0 || r.MinMsgsPerSec <= 0 || r.MinMsgsPerSec > r.MsgsPerSec*1.0001 || r.PublisherMsgsPerSec <= 0 {
			t.Errorf("%s: %+v", r.Transport, r)
		}
		// A reliable subscriber loses nothing; the stopped lossy one
		// (resumed after the case) must have been lapped.
		switch r.Transport {
		case "shmring", "uds-buffered":
			if r.Lost != 0 {
				t.Errorf("%s: lost %d", r.Transport, r.Lost)
			}
		case "shmring-stopped":
			// Lapped for sure once more than the ring's capacity was
			// sent (80 bytes a record).
			if r.PublisherMsgsPerSec*r.Seconds*80 > streamCapacity && r.Lost == 0 {
				t.Errorf("%s: the stopped subscriber lost nothing in 100 ms at %.0f msgs/s", r.Transport, r.PublisherMsgsPerSec)
			}
		}
	}
	var out, errs bytes.Buffer
	if code := run([]string{"-patterns", "fanout", "-subscribers", "0"}, &out, &errs); code != 2 {
		t.Errorf("-subscribers 0: exit %d, want 2", code)
	}
}
