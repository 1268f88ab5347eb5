//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/uuid"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/stream"
)

// The http pattern: the peer serves net/http on the transport (a Unix
// socket, or shmring's Listen for conn); this process is the client, and
// times HTTP/1.1 round trips with a body of -sizes bytes echoed back, one at
// a time on a kept-alive connection, for -duration.

func runHTTP(s spec) (result, error) {
	cc, err := startConnCase(s)
	if err != nil {
		return result{}, err
	}
	defer cc.close()
	s = cc.s
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return cc.dial(ctx) }}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	body := make([]byte, s.Size)
	call := func(path string) error {
		resp, err := client.Post("http://shmbench"+path, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			return err
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || len(got) != len(body)) {
			err = fmt.Errorf("status %d, %d bytes back", resp.StatusCode, len(got))
		}
		return err
	}
	n, secs, h, err := cc.measure(func(uint64) error { return call("/echo") })
	if err != nil {
		return result{}, err
	}
	call("/quit")
	tr.CloseIdleConnections()
	return cc.finish(n, secs, h)
}

// httpPeer serves the echo handler until a request for /quit.
func httpPeer(s spec) error {
	ln, err := listenFor(s)
	if err != nil {
		return err
	}
	quit := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
		if r.URL.Path == "/quit" {
			close(quit)
		}
	})}
	go srv.Serve(ln)
	<-quit
	time.Sleep(10 * time.Millisecond) // let the answer go out
	return srv.Close()
}

// connCase is a case of the http or connect pattern under way: its
// address, and the peer serving it.
type connCase struct {
	s      spec // with its address
	dir    string
	ctx    context.Context
	cancel context.CancelFunc
	policy shmring.WaitPolicy
	cmd    *exec.Cmd
	out    *strings.Builder
	cpu0   float64
}

// startConnCase names the case's address (a Unix socket or a shmring
// listener) and starts the peer that serves it.
func startConnCase(s spec) (*connCase, error) {
	var err error
	cc := &connCase{s: s}
	switch s.Transport {
	case "uds", "conn":
	default:
		return nil, fmt.Errorf("%s runs over conn and uds, not %s", s.Pattern, s.Transport)
	}
	if cc.policy, err = waitPolicy(s.Wait); err != nil && s.Transport == "conn" {
		return nil, err
	}
	if cc.dir, err = os.MkdirTemp("", "shmbench-"); err != nil {
		return nil, err
	}
	if s.Transport == "uds" {
		cc.s.Addr = filepath.Join(cc.dir, "sock")
	} else {
		cc.s.Addr = "shmbench-" + uuid.NewString()
	}
	cc.ctx, cc.cancel = context.WithTimeout(context.Background(), s.Duration+time.Minute)
	exe, err := os.Executable()
	if err == nil {
		cc.cpu0 = selfCPU()
		cc.cmd, cc.out, err = startPeer(cc.ctx, exe, cc.s)
	}
	if err != nil {
		cc.cmd = nil
		cc.close()
		return nil, err
	}
	return cc, nil
}

// dial connects to the peer.
func (cc *connCase) dial(ctx context.Context) (net.Conn, error) {
	if cc.s.Transport == "conn" {
		return shmring.Dial(ctx, cc.s.Addr, shmring.WithWaitPolicy(cc.policy))
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", cc.s.Addr)
}

// finish waits for the peer to end and makes the case's row: n exchanges
// in secs, each timed in h.
func (cc *connCase) finish(n uint64, secs float64, h *hdrhistogram.Histogram) (result, error) {
	s, cmd := cc.s, cc.cmd
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("server: %v: %s", err, cc.out)
	}
	res := result{Transport: s.Transport, Wait: s.Wait, Pattern: s.Pattern, Size: s.Size, Producers: 1,
		Messages: n, Seconds: secs, CPUSeconds: selfCPU() - cc.cpu0 + (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()}
	if secs > 0 {
		res.MsgsPerSec = float64(n) / secs
		res.MBPerSec = res.MsgsPerSec * float64(s.Size) / 1e6
	}
	res.LatencyNs = stream.Latency{P50: h.ValueAtQuantile(50), P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()}
	return res, nil
}

// measure calls once until the peer answers (once(0) succeeds), then
// times calls of once(1), once(2), ... for the case's duration.
func (cc *connCase) measure(once func(i uint64) error) (n uint64, secs float64, h *hdrhistogram.Histogram, err error) {
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if err = once(0); err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			return 0, 0, nil, fmt.Errorf("no server: %v: %s", err, cc.out)
		}
	}
	h = hdrhistogram.New(1, 60e9, 3)
	start := stream.Now()
	for deadline := start + int64(cc.s.Duration); stream.Now() < deadline; n++ {
		t0 := stream.Now()
		if err := once(n + 1); err != nil {
			return 0, 0, nil, fmt.Errorf("exchange %d: %w", n+1, err)
		}
		h.RecordValue(stream.Now() - t0)
	}
	return n, float64(stream.Now()-start) / 1e9, h, nil
}

// close ends the peer if it still runs and removes the case's directory.
func (cc *connCase) close() {
	if cc.cmd != nil {
		killPeer(cc.cmd)
	}
	cc.cancel()
	os.RemoveAll(cc.dir)
}

// listenFor is the peer's listener for case s.
func listenFor(s spec) (net.Listener, error) {
	if s.Transport != "conn" {
		return net.Listen("unix", s.Addr)
	}
	policy, err := waitPolicy(s.Wait)
	if err != nil {
		return nil, err
	}
	return shmring.Listen(s.Addr, shmring.WithWaitPolicy(policy))
}

// startPeer starts this program as the peer of case s, its output
// collected for error messages.
func startPeer(ctx context.Context, exe string, s spec) (*exec.Cmd, *strings.Builder, error) {
	cmd := exec.CommandContext(ctx, exe)
	js, _ := json.Marshal(s)
	cmd.Env = append(os.Environ(), peerEnv+"="+string(js))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out, cmd.Start()
}

// killPeer ends a peer that has not been waited for.
func killPeer(cmd *exec.Cmd) {
	if cmd.ProcessState == nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}
