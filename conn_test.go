package shmring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/nettest"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/osthreads"
	"github.com/shmring/shmring/internal/testhook"
)

// listen returns a listener on a fresh name, closed at the end of the test.
func listen(t *testing.T, opts ...shmring.Option) *shmring.Listener {
	t.Helper()
	l, err := shmring.Listen(ringName(t), opts...)
	skipUnsupported(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// pipe returns both ends of a new connection through l.
func pipe(t testing.TB, l *shmring.Listener, opts ...shmring.Option) (client, server *shmring.Conn, err error) {
	type acc struct {
		c   *shmring.Conn
		err error
	}
	ch := make(chan acc, 1)
	go func() {
		c, err := l.AcceptConn(context.Background())
		ch <- acc{c, err}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err = shmring.Dial(ctx, l.Addr().String(), opts...)
	a := <-ch
	if err != nil || a.err != nil {
		if client != nil {
			client.Close()
		}
		if a.c != nil {
			a.c.Close()
		}
		return nil, nil, errors.Join(err, a.err)
	}
	return client, a.c, nil
}

// dialerChild dials SHMRING_TEST_NAME, writes "hello", says "connected",
// and idles.
func dialerChild() int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := shmring.Dial(ctx, os.Getenv("SHMRING_TEST_NAME"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("connected")
	time.Sleep(time.Minute)
	return 0
}

// listenerChild listens on SHMRING_TEST_NAME, says "listening", accepts one
// connection, says "accepted", and idles.
func listenerChild() int {
	l, err := shmring.Listen(os.Getenv("SHMRING_TEST_NAME"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer l.Close()
	fmt.Println("listening")
	if os.Getenv("SHMRING_TEST_NOACCEPT") != "" {
		time.Sleep(time.Minute) // a server that never gets to Accept
		return 0
	}
	c, err := l.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer c.Close()
	fmt.Println("accepted")
	time.Sleep(time.Minute)
	return 0
}

// TestConnNettest runs x/net/nettest's conformance suite for net.Conn.
func TestConnNettest(t *testing.T) {
	l := listen(t)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		client, server, err := pipe(t, l)
		if err != nil {
			return nil, nil, nil, err
		}
		return client, server, func() { client.Close(); server.Close() }, nil
	})
}

// TestConnLifecycle: bytes both ways, half-close, messages, addresses, and
// nothing left in the name space once the connection is set up.
func TestConnLifecycle(t *testing.T) {
	l := listen(t)
	client, server, err := pipe(t, l)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	defer server.Close()
	if a := client.RemoteAddr(); a.Network() != "shmring" || a.String() == "" {
		t.Errorf("RemoteAddr %v (%s)", a, a.Network())
	}
	if server.RemoteAddr().(shmring.Addr).PID != os.Getpid() || server.PeerUID() != os.Getuid() && server.PeerUID() != -1 {
		t.Errorf("server sees peer %v, uid %d", server.RemoteAddr(), server.PeerUID())
	}
	// Nothing but the listener is left under the listener's name.
	if names, err := shmring.List(); err == nil {
		for _, n := range names {
			if len(n.Name) > len(l.Addr().String()) && n.Name[:len(l.Addr().String())] == l.Addr().String() {
				t.Errorf("a connection's ring is still named: %s", n.Name)
			}
		}
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16*3) // three rings' worth
	go func() {
		client.Write(big)
		client.WriteMessage([]byte("one message"))
		client.CloseWrite()
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ReadFull: %v (equal %v)", err, bytes.Equal(got, big))
	}
	buf := make([]byte, 64)
	n, err := server.ReadMessage(buf)
	if err != nil || string(buf[:n]) != "one message" {
		t.Fatalf("ReadMessage: %q, %v", buf[:n], err)
	}
	if _, err := server.Read(buf); err != io.EOF {
		t.Fatalf("Read after the peer's CloseWrite: %v, want io.EOF", err)
	}
	// The other way still works after the half-close.
	if _, err := server.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	n, err = client.Read(buf)
	if err != nil || string(buf[:n]) != "reply" {
		t.Fatalf("client Read: %q, %v", buf[:n], err)
	}
	server.Close()
	if _, err := client.Read(buf); err != io.EOF {
		t.Fatalf("Read after the peer's Close: %v, want io.EOF", err)
	}
	if _, err := client.Write([]byte("x")); err == nil {
		t.Fatal("Write after CloseWrite succeeded")
	}
}

// TestListenerClose: Close unblocks Accept; Dial to a closed listener fails.
func TestListenerClose(t *testing.T) {
	l := listen(t)
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := shmring.Dial(ctx, l.Addr().String()); err == nil {
		t.Fatal("Dial to a closed listener succeeded")
	}
}

// TestDialBacklog: dials nobody accepts fill the backlog, then fail with
// ErrBacklogFull, at once.
func TestDialBacklog(t *testing.T) {
	l := listen(t, shmring.WithBacklog(4))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	full := 0
	for range 64 {
		_, err := shmring.Dial(ctx, l.Addr().String())
		if errors.Is(err, shmring.ErrBacklogFull) {
			full++
		}
	}
	if full == 0 {
		t.Fatal("64 dials into a backlog of 4 with nobody accepting: none got ErrBacklogFull")
	}
	t.Logf("%d of 64 dials refused with ErrBacklogFull", full)
}

// TestConnHTTP serves net/http over a shmring Listener, unchanged, and calls
// it through http.Transport.DialContext: 50 requests on kept-alive
// connections and 5 clients at once.
func TestConnHTTP(t *testing.T) {
	l := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(body))
	})}
	go srv.Serve(l)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return shmring.Dial(ctx, l.Addr().String())
		},
	}}
	defer client.CloseIdleConnections()
	errs := make(chan error, 5)
	for g := range 5 {
		go func() {
			for i := range 10 {
				body := bytes.Repeat([]byte{'x'}, g*1000+i)
				resp, err := client.Post("http://shmring/echo", "text/plain", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprintf("POST /echo %d", len(body)); err != nil || string(got) != want {
					errs <- fmt.Errorf("response %q, %v; want %q", got, err, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 5 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// manyDialerChild dials SHMRING_TEST_NAME SHMRING_TEST_COUNT times, says
// "dialed", and keeps the connections idle.
func manyDialerChild() int {
	n, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_COUNT"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range n {
		c, err := shmring.Dial(ctx, os.Getenv("SHMRING_TEST_NAME"), shmring.WithCapacity(4096))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer c.Close()
	}
	fmt.Println("dialed")
	time.Sleep(time.Minute)
	return 0
}

// wakeupRate sleeps for d and returns this process's context switches per
// second meanwhile, or -1 where the system does not count them.
func wakeupRate(d time.Duration) float64 {
	s0, t0 := osthreads.Switches(), time.Now()
	time.Sleep(d)
	if s0 < 0 {
		return -1
	}
	return float64(osthreads.Switches()-s0) / time.Since(t0).Seconds()
}

// TestManyIdleConns: one server with 1000 connections from another process,
// a goroutine blocked in Read on each, runs at most GOMAXPROCS + 16 threads
// on Linux (the waiting is shared; see TestManyRingsManyProducers for the
// Windows bound), wakes no more often than before it had any connection
// (give or take 200 a second; with sleeps on a 10 ms timer it made 13,400),
// and each connection still works.
func TestManyIdleConns(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 connections: not in -short")
	}
	if !freshProcess(t) {
		return
	}
	const n = 1000
	// Per connection: its two rings, and its two bells where they work.
	if lim := openFilesAllowed(); lim < 4*n+200 {
		t.Skipf("%d open files allowed, the test needs about %d", lim, 4*n+200)
	}
	l := listen(t, shmring.WithBacklog(n))
	// This process's wake-ups per second before any connection: the
	// runtime's own (its monitor thread, timers), the floor under the
	// figure with a thousand idle connections.
	base := wakeupRate(500 * time.Millisecond)
	_, lines, stderr := childLines(t, "manydialer", "SHMRING_TEST_NAME="+l.Addr().String(), fmt.Sprint("SHMRING_TEST_COUNT=", n))
	conns := make([]*shmring.Conn, n)
	for i := range conns {
		c, err := l.AcceptConn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	if l := nextLine(t, lines, stderr); l != "dialed" {
		t.Fatalf("child: %q", l)
	}
	got := make(chan error, n)
	for _, c := range conns {
		go func() {
			buf := make([]byte, 8)
			_, err := c.Read(buf) // idle until the peer dies
			got <- err
		}()
	}
	time.Sleep(200 * time.Millisecond) // all asleep
	peak := osthreads.Count()
	if futex.ManyPerThread() && runtime.GOOS == "linux" && peak > runtime.GOMAXPROCS(0)+16 {
		t.Errorf("%d threads with %d idle connections, want at most GOMAXPROCS + 16", peak, n)
	}
	t.Logf("%d idle connections: %d threads (GOMAXPROCS %d)", n, peak, runtime.GOMAXPROCS(0))
	// Idle means no periodic wake-ups: a look at the peers on a timer
	// (every 100 ms by default) would make 10,000 a second here.
	if idle := wakeupRate(time.Second); base >= 0 {
		t.Logf("wake-ups: %.0f/s with %d idle connections, %.0f/s before any", idle, n, base)
		if futex.ManyPerThread() && idle > base+200 {
			t.Errorf("%.0f wake-ups a second with %d idle connections, %.0f before any: something wakes periodically", idle, n, base)
		}
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now()) // wake every Read
	}
	for range n {
		if err := <-got; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read of an idle connection: %v, want a timeout", err)
		}
	}
}

// TestListenerCloseDuringDial: a dial waiting to be accepted when the
// listener closes is refused (ErrRefused), not left waiting for its
// context; its rings are gone with it. The Close comes at a range of
// instants around the dial's request: before it is posted (the listener
// just marked), and while it waits in the backlog.
func TestListenerCloseDuringDial(t *testing.T) {
	for i := range 20 {
		name := fmt.Sprintf("%s-%d", ringName(t), i)
		l, err := shmring.Listen(name)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		done := make(chan error, 1)
		go func() {
			c, err := shmring.Dial(ctx, name)
			if err == nil {
				c.Close()
			}
			done <- err
		}()
		// Wait until the dialer's two rings exist (where names can be
		// listed; elsewhere a moment), then a little more, up to about
		// the time the request takes to be posted.
		for i := 0; i < 1000 && len(named(t, name+".")) < 2; i++ {
			time.Sleep(time.Millisecond)
		}
		if i > 0 {
			time.Sleep(time.Duration(i) * 25 * time.Microsecond)
		}
		l.Close()
		err = <-done
		ctxErr := ctx.Err()
		cancel()
		if !errors.Is(err, shmring.ErrRefused) || ctxErr != nil {
			t.Fatalf("dial during Close (%d): %v (context: %v), want ErrRefused before the context ends", i, err, ctxErr)
		}
		for _, left := range named(t, name) {
			t.Errorf("left named: %s", left)
		}
	}
	// And exactly between the dial's look at the listener and its request.
	name := ringName(t)
	l, err := shmring.Listen(name)
	if err != nil {
		t.Fatal(err)
	}
	testhook.BeforeRequest = func() { l.Close() }
	defer func() { testhook.BeforeRequest = nil }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := shmring.Dial(ctx, name); !errors.Is(err, shmring.ErrRefused) || ctx.Err() != nil {
		if err == nil {
			c.Close()
		}
		t.Fatalf("dial closed under before its request: %v (context: %v), want ErrRefused at once", err, ctx.Err())
	}
	for _, left := range named(t, name) {
		t.Errorf("left named: %s", left)
	}
}

// TestWriteAfterPeerClose: a Write that needs room the peer will never make,
// because the peer closed, fails with ErrPeerClosed, both when the peer
// closed before the Write and while the Write waited, instead of waiting
// for its deadline (for ever without one).
func TestWriteAfterPeerClose(t *testing.T) {
	for _, during := range []bool{false, true} {
		t.Run(fmt.Sprintf("during=%v", during), func(t *testing.T) {
			l := listen(t)
			client, server, err := pipe(t, l)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if !during {
				server.Close()
			} else {
				go func() {
					time.Sleep(50 * time.Millisecond) // the Write fills the ring and waits
					server.Close()
				}()
			}
			client.SetWriteDeadline(time.Now().Add(30 * time.Second))
			n, err := client.Write(make([]byte, 1<<20)) // more than the ring holds
			if !errors.Is(err, shmring.ErrPeerClosed) {
				t.Fatalf("Write of 1 MiB to a closed peer: %d bytes, %v; want ErrPeerClosed", n, err)
			}
			if n >= 1<<20 {
				t.Fatalf("Write wrote all %d bytes with nobody to read them", n)
			}
		})
	}
}
