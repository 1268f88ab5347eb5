package shmring_test

import (
	"context"
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
