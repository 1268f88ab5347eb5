package shmring_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/shmring/shmring"
)

// A consumer creates a ring and a producer opens it. They would normally be
// two processes; here they are one, to keep the example runnable.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ring") // or shmring.Create("orders") for /dev/shm/orders

	server, err := shmring.CreateFile(path, shmring.WithCapacity(64<<10))
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	c, err := server.Consumer()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	client, err := shmring.OpenFile(path)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	p, err := client.Producer()
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, msg := range []string{"buy 100 ACME", "sell 50 INITECH"} {
		if err := p.Send(ctx, []byte(msg)); err != nil {
			log.Fatal(err)
		}
	}
	p.Close() // the consumer sees io.EOF once the ring is drained

	buf := make([]byte, c.MaxMessage())
	for {
		n, err := c.Recv(ctx, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", buf[:n])
	}
	// Output:
	// buy 100 ACME
	// sell 50 INITECH
}

// Reserve and Commit write a message in place; Peek and Release read it in
// place. Neither side copies the payload.
func Example_zeroCopy() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	r, err := shmring.CreateFile(filepath.Join(dir, "ring"))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	p, _ := r.Producer()
	defer p.Close()
	c, _ := r.Consumer()
	defer c.Close()
	ctx := context.Background()

	buf, err := p.Reserve(ctx, 64) // room for up to 64 bytes
	if err != nil {
		log.Fatal(err)
	}
	n := copy(buf, "quote ACME 101.25")
	p.Commit(n) // publish the first n bytes

	msg, err := c.Peek(ctx) // valid until Release
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%d bytes)\n", msg, len(msg))
	c.Release()
	// Output: quote ACME 101.25 (17 bytes)
}

// TrySend and TryRecv never wait: they report ErrFull and ErrEmpty.
func Example_nonBlocking() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	r, err := shmring.CreateFile(filepath.Join(dir, "ring"), shmring.WithCapacity(256), shmring.WithMaxMessage(100))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	p, _ := r.Producer()
	defer p.Close()
	c, _ := r.Consumer()
	defer c.Close()

	sent := 0
	for p.TrySend(make([]byte, 100)) == nil {
		sent++
	}
	fmt.Println("sent before full:", sent, errors.Is(p.TrySend(make([]byte, 100)), shmring.ErrFull))
	fmt.Println("too large:", errors.Is(p.TrySend(make([]byte, 101)), shmring.ErrTooLarge))
	got := 0
	for {
		if _, err := c.TryRecv(make([]byte, 100)); errors.Is(err, shmring.ErrEmpty) {
			break
		}
		got++
	}
	fmt.Println("received:", got)
	// Output:
	// sent before full: 2 true
	// too large: true
	// received: 2
}

// A multi-producer ring takes producers in any number of processes (here
// goroutines, each with its own Producer). Each producer's messages arrive in
// its order; the producers' streams interleave. With WithEOFAfter the
// consumer's io.EOF waits for all of them to have come and gone.
func Example_multiProducer() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ring")
	r, err := shmring.CreateFile(path, shmring.WithCapacity(64<<10), shmring.WithMultiProducer(), shmring.WithEOFAfter(3))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	c, err := r.Consumer()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, name := range []string{"gateway", "risk", "audit"} {
		p, err := r.Producer() // one slot each, one goroutine each
		if err != nil {
			log.Fatal(err)
		}
		wg.Go(func() {
			defer p.Close()
			for i := range 2 {
				p.Send(ctx, fmt.Appendf(nil, "%s %d", name, i))
			}
		})
	}
	perProducer := map[string][]string{}
	buf := make([]byte, c.MaxMessage())
	for {
		n, err := c.Recv(ctx, buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		var name string
		var i int
		fmt.Sscan(string(buf[:n]), &name, &i)
		perProducer[name] = append(perProducer[name], string(buf[:n]))
	}
	wg.Wait()
	fmt.Println(perProducer["gateway"], perProducer["risk"], perProducer["audit"])
	st, _ := r.Stats()
	fmt.Println("attaches:", st.Attaches, "attached now:", st.Attached)
	// Output:
	// [gateway 0 gateway 1] [risk 0 risk 1] [audit 0 audit 1]
	// attaches: 3 attached now: 0
}

// SendBatch sends many small messages with one claim and one commit (one
// compare-and-swap on a multi-producer ring); the consumer receives them one
// by one. A batch holds as many messages as fit in MaxMessage bytes, 8 bytes
// of overhead and padding to 8 each: here four, then the last goes alone.
func Example_batch() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	r, err := shmring.CreateFile(filepath.Join(dir, "ring"), shmring.WithCapacity(4096), shmring.WithMaxMessage(64))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	p, _ := r.Producer()
	defer p.Close()
	c, _ := r.Consumer()
	defer c.Close()

	ctx := context.Background()
	msgs := [][]byte{[]byte("alpha"), []byte("beta"), []byte("gamma"), []byte("delta"), []byte("epsilon")}
	for rest := msgs; len(rest) > 0; {
		k, err := p.SendBatch(ctx, rest)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("sent", k)
		rest = rest[k:]
	}
	var got []string
	buf := make([]byte, 64)
	for range msgs {
		n, err := c.Recv(ctx, buf)
		if err != nil {
			log.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	fmt.Println(strings.Join(got, " "))
	// Output:
	// sent 4
	// sent 1
	// alpha beta gamma delta epsilon
}

// A server restarts. It creates its ring WithReplaceUnused, so that a ring
// left by a predecessor killed before it could remove it is replaced, but
// never one still in use. When it exits cleanly it removes its ring, and a
// client still attached learns it from its next call: ErrRingRemoved, its
// cue to close the ring and open the new one.
func Example_restart() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "ring") // shmring.Create(name, ...) for a named ring

	server, err := shmring.CreateFile(path, shmring.WithReplaceUnused())
	if err != nil {
		log.Fatal(err)
	}
	client, err := shmring.OpenFile(path)
	if err != nil {
		log.Fatal(err)
	}
	p, err := client.Producer()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("send:", p.TrySend([]byte("hello")))

	// The server goes away cleanly.
	server.Remove()
	server.Close()

	err = p.TrySend([]byte("anyone?"))
	fmt.Println("send after the server left:", errors.Is(err, shmring.ErrRingRemoved))
	p.Close()
	client.Close()

	// Its successor creates a ring at the same place, and the client
	// opens that one.
	next, err := shmring.CreateFile(path, shmring.WithReplaceUnused())
	if err != nil {
		log.Fatal(err)
	}
	defer next.Close()
	client, err = shmring.OpenFile(path)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	fmt.Println("reopened:", client.Info().UUID == next.Info().UUID)
	// Output:
	// send: <nil>
	// send after the server left: true
	// reopened: true
}
