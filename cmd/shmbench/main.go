//go:build unix

// Command shmbench measures shmring side by side with Unix sockets, pipes
// and TCP on loopback, between real processes: it re-runs itself as the
// peer of every case.
//
// Patterns:
//   - stream: one peer sends as fast as it can for -duration; throughput;
//   - pingpong: one message in flight, echoed by the peer; round-trip latency;
//   - lowrate: the peer sends -rate messages per second; one-way latency,
//     which includes waking a receiver that went to sleep;
//   - mpsc: -producers peers send at once into one receiver; throughput;
//   - manyrings: one process waits on -rings rings (default 1000), one peer
//     holds the other ends; the JSON row adds threads (the waiting
//     process's peak OS threads) and idle_wakeups_per_sec (its context
//     switches per second while nothing is sent), latency_ns is the one-way
//     latency of -rate messages per second into random rings, and
//     msgs_per_sec the rate of a stream into one ring while the others
//     idle (see manyrings.go). Not in the default -patterns;
//   - fanout: this process publishes as fast as it can, -subscribers peers
//     (default 4) each receive every message; msgs_per_sec is the mean of
//     their delivered rates, min_msgs_per_sec the slowest one's, lost what
//     lossy ones reported lost (transports shmring, shmring-lossy,
//     shmring-stopped and uds-buffered; see fanout.go). Not in the default
//     -patterns;
//   - http: the peer serves net/http, this process times HTTP/1.1 round
//     trips with a body of the message size echoed back (transports conn
//     and uds only; see http.go). Not in the default -patterns;
//   - connect: the peer listens, this process connects, exchanges one
//     message (echoed) and closes, one connection at a time; msgs_per_sec
//     is connections per second, latency_ns each connection's time, dial
//     to close (transports conn and uds only; see connect.go). Not in the
//     default -patterns.
//
// Contention, a condition of the whole run: -cpus N confines every process
// of every case to N CPUs (as a 1-CPU container would), and -load N runs N
// busy threads beside each case (busy neighbours). The JSON's machine object
// records both (cpus_limit, cpu_set, load).
//
// Transports: conn (shmring's net.Conn from Dial and Listen, framed by the
// same code as uds; once per -waits policy), shmring-waitset (manyrings only: the waiting process serves
// every ring from one WaitSet; shmring there is a goroutine per ring in
// Recv), shmring (once per -waits policy: "spin" never sleeps,
// "default" is the library's default, "park" sleeps after 64 polls, "spin=20us"
// polls that long before it sleeps), shmring-batch (the same, the sender
// collecting up to 16 KiB of messages and sending them with SendBatch when
// it has nothing more to send, as uds-buffered does with its buffer), uds (a Unix stream socket, one write
// per message), uds-buffered (the same through a 64 KiB bufio.Writer, flushed
// when the sender has nothing more to send), pipe, tcp (loopback). Every
// message is written whole by the sender and read whole by the receiver,
// which checks its size and the sequence number at both ends of it.
//
// Output: a table, or with -json one object {"machine": {...}, "results":
// [...]}. Exit status 0 when every case ran, 1 when one failed, 2 for usage
// errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shmring/shmring/internal/bytesize"
	"github.com/shmring/shmring/internal/stream"
	"github.com/shmring/shmring/internal/term"
)

func main() {
	if env := os.Getenv(peerEnv); env != "" {
		os.Exit(peerMain(env))
	}
	if env := os.Getenv(manyWaiterEnv); env != "" {
		os.Exit(manyWaiterMain(env))
	}
	if n, err := strconv.Atoi(os.Getenv(loadEnv)); err == nil && n > 0 {
		os.Exit(loadMain(n))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shmbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		asJSON     = fs.Bool("json", false, "print one JSON object instead of a table")
		duration   = fs.Duration("duration", 2*time.Second, "how long each case runs")
		sizes      = fs.String("sizes", "64,1024,65536", "message `SIZES`, comma-separated (at least 32 bytes each; KiB and MiB suffixes work)")
		transports = fs.String("transports", "shmring,shmring-waitset,shmring-batch,conn,uds,uds-buffered,pipe,tcp", "`TRANSPORTS` to compare (not every pattern has every transport)")
		patterns   = fs.String("patterns", "stream,pingpong,lowrate,mpsc", "`PATTERNS` to run")
		waits      = fs.String("waits", "spin,default", "shmring wait `POLICIES`: spin, default, park, spin=DURATION")
		producers  = fs.Int("producers", 4, "peers sending at once in the mpsc pattern")
		rate       = fs.Float64("rate", 1000, "messages per second in the lowrate and manyrings patterns")
		rings      = fs.Int("rings", 1000, "rings (or sockets) waited on in the manyrings pattern")
		subs       = fs.Int("subscribers", 4, "subscribers of the fanout pattern")
		cpus       = fs.Int("cpus", 0, "confine every process of every case to `N` CPUs (the first N this process may use); 0: no limit")
		load       = fs.Int("load", 0, "run `N` busy threads at normal priority during each case, on the same CPUs")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cases, err := plan(*patterns, *transports, *waits, *sizes, *producers, *rings, *rate, *duration)
	if *subs < 1 || *subs > 64 {
		err = fmt.Errorf("-subscribers %d: want 1 to 64", *subs)
	}
	for i := range cases {
		if cases[i].Pattern == "fanout" {
			cases[i].Subscribers = *subs
		}
	}
	if err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		fmt.Fprintf(stderr, "shmbench: %v\n", err)
		return 2
	}
	if *load < 0 || *load > 64 {
		fmt.Fprintf(stderr, "shmbench: -load %d: want 0 to 64 busy threads\n", *load)
		return 2
	}
	cpuSet, undo, err := confine(*cpus)
	if err != nil {
		fmt.Fprintf(stderr, "shmbench: %v\n", err)
		return 2
	}
	defer undo()
	m := describeMachine()
	m.CPUsLimit, m.CPUSet, m.Load = *cpus, cpuSet, *load
	var results []result
	status := 0
	// Progress on stderr: one line redrawn in place on a terminal, a line
	// per case anywhere else (a log has no use for escape sequences).
	tty := term.IsTerminal(stderr)
	for i, s := range cases {
		switch {
		case tty:
			fmt.Fprintf(stderr, "\r\033[K[%d/%d] %s", i+1, len(cases), s)
		case !*asJSON:
			fmt.Fprintf(stderr, "[%d/%d] %s\n", i+1, len(cases), s)
		}
		res, err := runLoaded(s, *load)
		if err != nil {
			if tty {
				fmt.Fprintln(stderr)
			}
			fmt.Fprintf(stderr, "shmbench: %s: %v\n", s, err)
			status = 1
			continue
		}
		results = append(results, res)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Machine machine  `json:"machine"`
			Results []result `json:"results"`
		}{m, results})
	} else {
		printTable(stdout, m, results)
	}
	if tty {
		fmt.Fprint(stderr, "\r\033[K")
	}
	return status
}

// plan lists the cases the flags ask for, checking each value.
func plan(patterns, transports, waits, sizes string, producers, rings int, rate float64, d time.Duration) ([]spec, error) {
	if d <= 0 || producers < 1 || producers > 64 || rate <= 0 || rings < 1 || rings > 100000 {
		return nil, errors.New("-duration and -rate must be positive, -producers 1 to 64, -rings 1 to 100000")
	}
	var sz []int
	for _, f := range strings.Split(sizes, ",") {
		n, err := bytesize.Parse(strings.TrimSpace(f))
		if err != nil || n < minSize || n > 1<<20 {
			return nil, fmt.Errorf("size %q: want %d bytes to 1MiB", f, minSize)
		}
		sz = append(sz, int(n))
	}
	var ws []string
	for _, w := range strings.Split(waits, ",") {
		if _, err := waitPolicy(w); err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	var cases []spec
	for _, p := range strings.Split(patterns, ",") {
		switch p {
		case "stream", "pingpong", "lowrate", "mpsc", "manyrings", "http", "fanout", "connect":
		default:
			return nil, fmt.Errorf("unknown pattern %q (stream, pingpong, lowrate, mpsc, manyrings, http, fanout, connect)", p)
		}
		for _, t := range strings.Split(transports, ",") {
			switch t {
			case "shmring", "shmring-waitset", "shmring-batch", "shmring-lossy", "shmring-stopped", "conn", "uds", "uds-buffered", "pipe", "tcp":
			default:
				return nil, fmt.Errorf("unknown transport %q (shmring, shmring-waitset, shmring-batch, shmring-lossy, shmring-stopped, conn, uds, uds-buffered, pipe, tcp)", t)
			}
			fanT := t == "shmring" || t == "shmring-lossy" || t == "shmring-stopped" || t == "uds-buffered"
			if p == "fanout" && !fanT || p != "fanout" && (t == "shmring-lossy" || t == "shmring-stopped") {
				continue // fanout: shmring, its lossy and stopped variants, uds-buffered; only fanout has the variants
			}
			if (p == "manyrings") != (t == "shmring-waitset") && (p != "manyrings" || (t != "shmring" && t != "uds")) {
				continue // manyrings compares shmring, shmring-waitset and uds; only manyrings has shmring-waitset
			}
			if (p == "http" || p == "connect") && t != "conn" && t != "uds" {
				continue // net/http and connections: conn against uds
			}
			tw := []string{""}
			if strings.HasPrefix(t, "shmring") || t == "conn" {
				tw = ws
			}
			for _, w := range tw {
				for _, n := range sz {
					s := spec{Pattern: p, Transport: t, Wait: w, Size: n, Producers: 1, Duration: d, Rate: rate}
					if p == "mpsc" {
						s.Producers = producers
					}
					if p == "manyrings" {
						s.Rings = rings
					}
					cases = append(cases, s)
				}
			}
		}
	}
	return cases, nil
}

// runLoaded runs one case beside load busy threads.
func runLoaded(s spec, load int) (result, error) {
	stop, err := startLoad(load)
	if err != nil {
		return result{}, fmt.Errorf("starting %d busy threads: %w", load, err)
	}
	defer stop()
	switch s.Pattern {
	case "manyrings":
		return manyRings(s)
	case "http":
		return runHTTP(s)
	case "connect":
		return runConnect(s)
	case "fanout":
		return runFanout(s)
	}
	return runCase(s)
}

// runCase runs one case: it prepares the transport, starts the peers,
// measures, and adds up the CPU time of every process involved.
func runCase(s spec) (result, error) {
	dir, err := os.MkdirTemp("", "shmbench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), s.Duration+time.Minute)
	defer cancel()
	e, err := newEndpoint(ctx, s, dir)
	if err != nil {
		return result{}, err
	}
	defer e.close()
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cpu0 := selfCPU()
	var peers []*exec.Cmd
	var outs []*strings.Builder
	defer func() {
		for _, p := range peers {
			if p.ProcessState == nil {
				p.Process.Kill()
				p.Wait()
			}
		}
	}()
	for i := range s.Producers {
		ps := s
		cmd := exec.CommandContext(ctx, exe)
		e.peer(i, &ps, cmd)
		js, _ := json.Marshal(ps)
		cmd.Env = append(os.Environ(), peerEnv+"="+string(js))
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return result{}, err
		}
		peers, outs = append(peers, cmd), append(outs, out)
	}
	cs, err := e.conns()
	if err != nil {
		return result{}, err
	}
	n, secs, h, err := measure(s, cs)
	for _, c := range cs {
		if c != conn(e.rc) {
			c.close()
		}
	}
	if err != nil {
		return result{}, err
	}
	cpu := selfCPU() - cpu0
	for i, p := range peers {
		if err := p.Wait(); err != nil {
			return result{}, fmt.Errorf("peer %d: %v: %s", i, err, outs[i])
		}
		cpu += (p.ProcessState.UserTime() + p.ProcessState.SystemTime()).Seconds()
	}
	res := result{Transport: s.Transport, Wait: s.Wait, Pattern: s.Pattern, Size: s.Size, Producers: s.Producers,
		Messages: n, Seconds: secs, CPUSeconds: cpu}
	if secs > 0 {
		res.MsgsPerSec = float64(n) / secs
		res.MBPerSec = res.MsgsPerSec * float64(s.Size) / 1e6
	}
	if h.TotalCount() > 0 {
		res.LatencyNs = stream.Latency{P50: h.ValueAtQuantile(50), P99: h.ValueAtQuantile(99),
			P999: h.ValueAtQuantile(99.9), Max: h.Max()}
	}
	return res, nil
}

// peerMain is a peer process: it joins the case's transport and plays its
// part of the pattern.
func peerMain(env string) int {
	var s spec
	if err := json.Unmarshal([]byte(env), &s); err != nil {
		fmt.Fprintf(os.Stderr, "shmbench peer: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Duration+time.Minute)
	defer cancel()
	if s.Pattern == "http" || s.Pattern == "connect" {
		serve := httpPeer
		if s.Pattern == "connect" {
			serve = connectPeer
		}
		if err := serve(s); err != nil {
			fmt.Fprintf(os.Stderr, "shmbench peer: %v\n", err)
			return 1
		}
		return 0
	}
	if s.Pattern == "fanout" {
		if err := fanoutPeer(ctx, s); err != nil {
			fmt.Fprintf(os.Stderr, "shmbench peer: %v\n", err)
			return 1
		}
		return 0
	}
	if s.Pattern == "manyrings" {
		ctx, cancel := context.WithTimeout(context.Background(), 3*s.Duration+time.Minute)
		defer cancel()
		if err := manyPeer(ctx, s); err != nil {
			fmt.Fprintf(os.Stderr, "shmbench peer: %v\n", err)
			return 1
		}
		return 0
	}
	c, err := dial(ctx, s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shmbench peer %d: %v\n", s.ID, err)
		return 2
	}
	defer c.close()
	if err := peerRun(s, c); err != nil {
		fmt.Fprintf(os.Stderr, "shmbench peer %d: %v\n", s.ID, err)
		return 1
	}
	return 0
}

// selfCPU is this process's CPU time so far, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
}
