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
	dir, err := os.MkdirTemp("", "shmbench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	switch s.Transport {
	case "uds":
		s.Addr = filepath.Join(dir, "sock")
	case "conn":
		s.Addr = "shmbench-" + uuid.NewString()
	default:
		return result{}, fmt.Errorf("http runs over conn and uds, not %s", s.Transport)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Duration+time.Minute)
	defer cancel()
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cpu0 := selfCPU()
	cmd, out, err := startPeer(ctx, exe, s)
	if err != nil {
		return result{}, err
	}
	defer killPeer(cmd)
	policy, err := waitPolicy(s.Wait)
	if err != nil && s.Transport == "conn" {
		return result{}, err
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		if s.Transport == "conn" {
			return shmring.Dial(ctx, s.Addr, shmring.WithWaitPolicy(policy))
		}
		var d net.Dialer
		return d.DialContext(ctx, "unix", s.Addr)
	}}
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
	// The server is up when a request succeeds.
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if err = call("/echo"); err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			return result{}, fmt.Errorf("no server: %v: %s", err, out)
		}
	}
	h := hdrhistogram.New(1, 60e9, 3)
	start := stream.Now()
	deadline := start + int64(s.Duration)
	n := uint64(0)
	for ; stream.Now() < deadline; n++ {
		t0 := stream.Now()
		if err := call("/echo"); err != nil {
			return result{}, err
		}
		h.RecordValue(stream.Now() - t0)
	}
	secs := float64(stream.Now()-start) / 1e9
	call("/quit")
	tr.CloseIdleConnections()
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("server: %v: %s", err, out)
	}
	res := result{Transport: s.Transport, Wait: s.Wait, Pattern: s.Pattern, Size: s.Size, Producers: 1,
		Messages: n, Seconds: secs, CPUSeconds: selfCPU() - cpu0 + (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()}
	if secs > 0 {
		res.MsgsPerSec = float64(n) / secs
		res.MBPerSec = res.MsgsPerSec * float64(s.Size) / 1e6
	}
	res.LatencyNs = stream.Latency{P50: h.ValueAtQuantile(50), P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()}
	return res, nil
}

// httpPeer serves the echo handler until a request for /quit.
func httpPeer(s spec) error {
	var ln net.Listener
	var err error
	if s.Transport == "conn" {
		policy, perr := waitPolicy(s.Wait)
		if perr != nil {
			return perr
		}
		ln, err = shmring.Listen(s.Addr, shmring.WithWaitPolicy(policy))
	} else {
		ln, err = net.Listen("unix", s.Addr)
	}
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
