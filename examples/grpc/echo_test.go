package echo_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime/trace"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/shmring/shmring"
	echo "github.com/shmring/shmring/examples/grpc"
)

// serve starts one echo server on a TCP, a Unix-socket and a shmring
// listener, and returns the targets that reach it through each.
func serve(tb testing.TB) (targets map[string]string) {
	tb.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Skipf("no TCP loopback here: %v", err)
	}
	sock := filepath.Join(tb.TempDir(), "echo.sock")
	uds, err := net.Listen("unix", sock)
	if err != nil {
		tb.Fatal(err)
	}
	name := "shmring-echo-" + uuid.NewString()
	shm, err := shmring.Listen(name, shmring.WithWaitPolicy(shmring.WaitPolicy{}))
	if err != nil {
		tb.Fatal(err)
	}
	s := echo.NewServer()
	done := make(chan error, 1)
	go func() { done <- echo.Serve(s, tcp, uds, shm) }()
	tb.Cleanup(func() {
		s.Stop()
		<-done
		shm.Close()
	})
	return map[string]string{"tcp": tcp.Addr().String(), "uds": "unix:" + sock, "shmring": "shmring:" + name}
}

func client(tb testing.TB, target string) *grpc.ClientConn {
	tb.Helper()
	cc, err := echo.Dial(target)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// TestOneServerTwoTransports calls one server through TCP and through
// shmring, unary and streaming, and checks every byte.
func TestOneServerTwoTransports(t *testing.T) {
	targets := serve(t)
	for _, via := range []string{"tcp", "shmring"} {
		t.Run(via, func(t *testing.T) {
			cc := client(t, targets[via])
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := range 100 {
				req := bytes.Repeat([]byte{byte(i)}, i*97)
				resp, err := echo.Echo(ctx, cc, req)
				if err != nil || !bytes.Equal(resp, req) {
					t.Fatalf("Echo of %d bytes: %d bytes back, %v", len(req), len(resp), err)
				}
			}
			payload := bytes.Repeat([]byte("s"), 64)
			n, err := echo.Stream(ctx, cc, 1000, payload, func(m []byte) {
				if !bytes.Equal(m, payload) {
					t.Errorf("streamed message %q", m)
				}
			})
			if err != nil || n != 1000 {
				t.Fatalf("Stream: %d of 1000 messages, %v", n, err)
			}
		})
	}
}

// BenchmarkUnary64 is a 64-byte unary round trip through each transport,
// client and server in this process.
func BenchmarkUnary64(b *testing.B) { benchUnary(b, serve(b), nil, "shmring", "uds", "tcp") }

// BenchmarkStream64 streams 64-byte messages from the server in this
// process; one op is one message.
func BenchmarkStream64(b *testing.B) { benchStream(b, serve(b), "shmring", "uds", "tcp") }

// benchUnary measures 64-byte unary calls through each of vias, and
// reports their median and 99th percentile besides the mean, and what
// the processes spent per call: with peer (a server in another process)
// each process's usage, without it this process's.
//
// With ECHO_TRACE=DIR, both processes write an execution trace of the
// timed calls into DIR (client-VIA.trace, server-VIA.trace).
func benchUnary(b *testing.B, targets map[string]string, peer *serverProc, vias ...string) {
	for _, via := range vias {
		b.Run(via, func(b *testing.B) {
			cc := client(b, targets[via])
			req := make([]byte, 64)
			ctx := context.Background()
			if _, err := echo.Echo(ctx, cc, req); err != nil { // connect first
				b.Fatal(err)
			}
			var p0 usage
			if peer != nil {
				p0 = peer.usage(b)
				if dir := os.Getenv("ECHO_TRACE"); dir != "" {
					stop := traceBoth(b, peer, dir, via)
					defer stop()
				}
			}
			c0 := usageNow()
			took := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				start := time.Now()
				if _, err := echo.Echo(ctx, cc, req); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			c := usageNow().sub(c0)
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2]), "p50-ns")
			b.ReportMetric(float64(took[len(took)*99/100]), "p99-ns")
			if peer == nil {
				c.report(b, "proc")
				return
			}
			c.report(b, "client")
			peer.usage(b).sub(p0).report(b, "server")
		})
	}
}

// traceBoth starts an execution trace in this process and in peer, and
// returns what stops both.
func traceBoth(b testing.TB, peer *serverProc, dir, via string) (stop func()) {
	b.Helper()
	if a := peer.ask(b, "trace "+filepath.Join(dir, "server-"+via+".trace")); a != "<nil>" {
		b.Fatalf("server's trace: %s", a)
	}
	f, err := os.Create(filepath.Join(dir, "client-"+via+".trace"))
	if err != nil {
		b.Fatal(err)
	}
	if err := trace.Start(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		trace.Stop()
		f.Close()
		if a := peer.ask(b, "stop"); a != "<nil>" {
			b.Errorf("server's trace: %s", a)
		}
	}
}

func benchStream(b *testing.B, targets map[string]string, vias ...string) {
	for _, via := range vias {
		b.Run(via, func(b *testing.B) {
			cc := client(b, targets[via])
			ctx := context.Background()
			payload := make([]byte, 64)
			if _, err := echo.Echo(ctx, cc, payload); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			n, err := echo.Stream(ctx, cc, uint32(b.N), payload, nil)
			if err != nil || n != b.N {
				b.Fatalf("%d of %d messages: %v", n, b.N, err)
			}
		})
	}
}
