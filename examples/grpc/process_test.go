package echo_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/shmring/shmring"
	echo "github.com/shmring/shmring/examples/grpc"
	"github.com/shmring/shmring/examples/grpc/callpath"
)

// The server of the cross-process benchmarks: this test binary, run with
// ECHO_SERVE=SHMRING_NAME,SOCKET_PATH, serves on both and says "ready".
func TestMain(m *testing.M) {
	if spec := os.Getenv("ECHO_SERVE"); spec != "" {
		os.Exit(serveMain(spec))
	}
	os.Exit(m.Run())
}

func serveMain(spec string) int {
	var name, sock string
	for i := range spec {
		if spec[i] == ',' {
			name, sock = spec[:i], spec[i+1:]
		}
	}
	shm, err := shmring.Listen(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer shm.Close()
	uds, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("ready")
	go command(os.Stdin, os.Stdout)
	echo.Serve(echo.NewServer(), shm, uds) // until killed
	return 0
}

// command answers the benchmark's requests, one a line: "usage" (this
// process's usage so far), "trace PATH" (start an execution trace into a
// new file PATH) and "stop" (end it); each gets one line back.
func command(in io.Reader, out io.Writer) {
	var f *os.File
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		var err error
		switch verb {
		case "usage":
			fmt.Fprintln(out, usageNow())
			continue
		case "trace":
			if f, err = os.Create(arg); err == nil {
				err = trace.Start(f)
			}
		case "stop":
			trace.Stop()
			err = f.Close()
		default:
			err = fmt.Errorf("unknown command %q", verb)
		}
		fmt.Fprintln(out, err)
	}
}

// serverProc is the server of the cross-process benchmarks.
type serverProc struct {
	targets map[string]string
	in      io.Writer
	out     *bufio.Reader
}

// ask sends the server process a command and returns its answer.
func (s *serverProc) ask(b testing.TB, cmd string) string {
	b.Helper()
	if _, err := io.WriteString(s.in, cmd+"\n"); err != nil {
		b.Fatal(err)
	}
	line, err := s.out.ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSuffix(line, "\n")
}

// usage asks the server process what it has spent so far.
func (s *serverProc) usage(b testing.TB) usage {
	b.Helper()
	line := s.ask(b, "usage")
	u, err := parseUsage(line)
	if err != nil {
		b.Fatalf("server's usage %q: %v", line, err)
	}
	return u
}

// serverProcess starts the server in a process of its own.
func serverProcess(b testing.TB) *serverProc {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	name := "shmring-echo-" + uuid.NewString()
	sock := filepath.Join(b.TempDir(), "echo.sock")
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "ECHO_SERVE="+name+","+sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		shmring.RemoveIfUnused(name)
	})
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("server process: %q, %v", line, err)
	}
	return &serverProc{map[string]string{"shmring": "shmring:" + name, "uds": "unix:" + sock}, in, r}
}

// BenchmarkUnary64Process is a 64-byte unary round trip to a server in
// another process, through shmring and through a Unix socket.
// Besides the times, it reports what each process spent per call (cpu,
// thread switches, goroutines started: see usage); with ECHO_TRACE, both
// processes trace the calls, for package callpath.
func BenchmarkUnary64Process(b *testing.B) {
	s := serverProcess(b)
	benchUnary(b, s.targets, s, "shmring", "uds")
}

// BenchmarkStream64Process streams 64-byte messages from a server in
// another process; one op is one message.
func BenchmarkStream64Process(b *testing.B) {
	benchStream(b, serverProcess(b).targets, "shmring", "uds")
}

// BenchmarkUnary64ProcessTwoClients is BenchmarkUnary64Process with two
// connections calling at once, each from a goroutine of its own: the
// server's process and this one each have two readers asleep at a time,
// as a server with several busy clients has. One op is one call.
func BenchmarkUnary64ProcessTwoClients(b *testing.B) {
	s := serverProcess(b)
	for _, via := range []string{"shmring", "uds"} {
		b.Run(via, func(b *testing.B) {
			ccs := []*grpc.ClientConn{client(b, s.targets[via]), client(b, s.targets[via])}
			req := make([]byte, 64)
			ctx := context.Background()
			for _, cc := range ccs {
				if _, err := echo.Echo(ctx, cc, req); err != nil { // connect first
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			c0, s0 := usageNow(), s.usage(b)
			var wg sync.WaitGroup
			for i, cc := range ccs {
				wg.Go(func() {
					for range b.N/len(ccs) + i*(b.N%len(ccs)) {
						if _, err := echo.Echo(ctx, cc, req); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			usageNow().sub(c0).report(b, "client")
			s.usage(b).sub(s0).report(b, "server")
		})
	}
}

// TestCallPath traces 300 calls in both processes, through each transport,
// and checks that package callpath follows their critical path: across
// the processes and over nearly all the calls' time. A reader that finds
// the next bytes already there, or (shmring) finds a message while it
// spins, has no wake-up to follow, so not every call hands over each way;
// through the socket most do.
func TestCallPath(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the two processes' traces share a clock only where Go's trace clock is the monotonic clock (Linux)")
	}
	s := serverProcess(t)
	const calls = 300
	for _, via := range []string{"shmring", "uds"} {
		t.Run(via, func(t *testing.T) {
			cc := client(t, s.targets[via])
			req := make([]byte, 64)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := echo.Echo(ctx, cc, req); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			stop := traceBoth(t, s, dir, via)
			start := time.Now()
			for range calls {
				if _, err := echo.Echo(ctx, cc, req); err != nil {
					t.Fatal(err)
				}
			}
			took := time.Since(start)
			stop()
			r, err := callpath.AnalyzeFiles(filepath.Join(dir, "client-"+via+".trace"), filepath.Join(dir, "server-"+via+".trace"), callpath.GRPCRoot, callpath.GRPCWriter)
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			r.Print(&out, calls)
			t.Log("\n" + out.String())
			var sum int64
			for _, ns := range r.Spent {
				sum += ns
			}
			if sum != r.Span {
				t.Errorf("the steps add up to %d ns, the path to %d", sum, r.Span)
			}
			if r.Span < took.Nanoseconds()*8/10 {
				t.Errorf("the path covers %v of the calls' %v: it lost its way", time.Duration(r.Span), took)
			}
			least := 1
			if via == "uds" {
				least = calls / 2
			}
			if r.Handovers["server"] < least || r.Handovers["client"] < least {
				t.Errorf("hand-overs to the server %d, to the client %d, want at least %d each", r.Handovers["server"], r.Handovers["client"], least)
			}
		})
	}
}
