package shmring_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/shmring/shmring"
)

// BenchmarkConnectClose dials, accepts and closes one connection per op, in
// one process: shmring's Listen/Dial against a Unix socket.
func BenchmarkConnectClose(b *testing.B) {
	b.Run("shmring", func(b *testing.B) {
		l, err := shmring.Listen(ringName(b))
		if err != nil {
			b.Skip(err)
		}
		defer l.Close()
		benchConnectClose(b, l, func(ctx context.Context) (net.Conn, error) {
			return shmring.Dial(ctx, l.Addr().String())
		})
	})
	b.Run("uds", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			b.Skip(err)
		}
		defer l.Close()
		var d net.Dialer
		benchConnectClose(b, l, func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		})
	})
}

func benchConnectClose(b *testing.B, l net.Listener, dial func(context.Context) (net.Conn, error)) {
	accepted := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				accepted <- err
				return
			}
			c.Close()
		}
	}()
	ctx := context.Background()
	for b.Loop() {
		c, err := dial(ctx)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	l.Close()
	<-accepted
}

// BenchmarkConnWrite64 writes 68-byte frames (a 4-byte length and 64
// bytes, as cmd/shmbench's stream does) through a Conn, one Write each,
// to a reader in another goroutine that reads them through a bufio.Reader.
func BenchmarkConnWrite64(b *testing.B) {
	l, err := shmring.Listen(ringName(b))
	if err != nil {
		b.Skip(err)
	}
	defer l.Close()
	client, server, err := pipe(b, l)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	defer server.Close()
	done := make(chan int64)
	go func() {
		r := bufio.NewReaderSize(server, 64<<10)
		n, _ := io.Copy(io.Discard, r)
		done <- n
	}()
	frame := make([]byte, 68)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := client.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	client.CloseWrite()
	if n := <-done; n != int64(b.N)*int64(len(frame)) {
		b.Fatalf("read %d bytes of %d", n, b.N*len(frame))
	}
}
