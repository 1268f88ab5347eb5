package echo_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/shmring/shmring"
	echo "github.com/shmring/shmring/examples/grpc"
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
	echo.Serve(echo.NewServer(), shm, uds) // until killed
	return 0
}

// serverProcess starts the server in a process of its own and returns the
// targets that reach it.
func serverProcess(b *testing.B) map[string]string {
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
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		shmring.RemoveIfUnused(name)
	})
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		b.Fatalf("server process: %q, %v", line, err)
	}
	return map[string]string{"shmring": "shmring:" + name, "uds": "unix:" + sock}
}

// BenchmarkUnary64Process is a 64-byte unary round trip to a server in
// another process, through shmring and through a Unix socket.
func BenchmarkUnary64Process(b *testing.B) { benchUnary(b, serverProcess(b), "shmring", "uds") }

// BenchmarkStream64Process streams 64-byte messages from a server in
// another process; one op is one message.
func BenchmarkStream64Process(b *testing.B) { benchStream(b, serverProcess(b), "shmring", "uds") }

// BenchmarkUnary64ProcessTwoClients is BenchmarkUnary64Process with two
// connections calling at once, each from a goroutine of its own: the
// server's process and this one each have two readers asleep at a time,
// as a server with several busy clients has. One op is one call.
func BenchmarkUnary64ProcessTwoClients(b *testing.B) {
	targets := serverProcess(b)
	for _, via := range []string{"shmring", "uds"} {
		b.Run(via, func(b *testing.B) {
			ccs := []*grpc.ClientConn{client(b, targets[via]), client(b, targets[via])}
			req := make([]byte, 64)
			ctx := context.Background()
			for _, cc := range ccs {
				if _, err := echo.Echo(ctx, cc, req); err != nil { // connect first
					b.Fatal(err)
				}
			}
			b.ResetTimer()
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
		})
	}
}
