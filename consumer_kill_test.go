package shmring_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/testhook"
)

// stoppedAtHead is what headStopChild prints once it is stopped right after
// a head store.
const stoppedAtHead = "stopped after a head store"

// headStopChild is the consumer of TestConsumerKilledAfterHeadStore. It reads
// messages with the call SHMRING_TEST_READ names (recv, tryrecv or peek) and
// prints each one's sequence number on stdout as soon as the call has
// returned it. Right after its SHMRING_TEST_STOP-th store of the head in
// shared memory it says so and stops for good, to be killed there.
func headStopChild() int {
	stopAt, _ := strconv.Atoi(os.Getenv("SHMRING_TEST_STOP"))
	stores := 0
	testhook.HeadStored = func() {
		if stores++; stores == stopAt {
			os.Stdout.WriteString(stoppedAtHead + "\n")
			time.Sleep(time.Hour)
		}
	}
	c, done := childConsumer(shmring.Open(os.Getenv("SHMRING_TEST_NAME")))
	if c == nil {
		return 2
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	buf := make([]byte, c.MaxMessage())
	line := make([]byte, 0, 32)
	for {
		var msg []byte
		var err error
		switch os.Getenv("SHMRING_TEST_READ") {
		case "recv":
			var n int
			n, err = c.Recv(ctx, buf)
			msg = buf[:n]
		case "tryrecv":
			var n int
			for n, err = c.TryRecv(buf); errors.Is(err, shmring.ErrEmpty) && ctx.Err() == nil; n, err = c.TryRecv(buf) {
				time.Sleep(time.Millisecond)
			}
			msg = buf[:n]
		case "peek":
			msg, err = c.Peek(ctx)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		line = strconv.AppendUint(line[:0], binary.LittleEndian.Uint64(msg), 10)
		os.Stdout.Write(append(line, '\n'))
		c.Release() // after Peek; nothing after Recv
	}
}

// TestConsumerKilledAfterHeadStore kills a consumer process at the instant
// after it stores its head in shared memory, for each read call, with plain
// messages and with messages inside batches. Every message must be returned
// at least once: by the dead consumer before that store, or by its
// successor, which resumes at the stored head.
func TestConsumerKilledAfterHeadStore(t *testing.T) {
	const count, size = 1000, 32
	for _, read := range []string{"recv", "tryrecv", "peek"} {
		for _, batch := range []int{1, 10} {
			for _, stop := range []int{1, 2, 4} {
				t.Run(fmt.Sprintf("%s/batch%d/store%d", read, batch, stop), func(t *testing.T) {
					headStopRun(t, read, batch, stop, count, size)
				})
			}
		}
	}
}

func headStopRun(t *testing.T, read string, batch, stop, count, size int) {
	name := ringName(t)
	// 64 KiB holds every message; the consumer stores its head every
	// 8 KiB, a few times in the stream.
	r, err := shmring.Create(name, shmring.WithCapacity(64<<10))
	skipUnsupported(t, err)
	defer r.Close()
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msgs := make([][]byte, count)
	for i := range msgs {
		msgs[i] = make([]byte, size)
		binary.LittleEndian.PutUint64(msgs[i], uint64(i))
	}
	for sent := 0; sent < count; {
		n, err := p.TrySendBatch(msgs[sent:min(sent+batch, count)])
		if err != nil {
			t.Fatal(err)
		}
		sent += n
	}

	cmd, lines, stderr := childLines(t, "headstop", "SHMRING_TEST_NAME="+name, "SHMRING_TEST_READ="+read, fmt.Sprint("SHMRING_TEST_STOP=", stop))
	// The child prints every message it returned, then the stop: on one
	// stream, in that order.
	var first []uint64
	for l := nextLine(t, lines, stderr); l != stoppedAtHead; l = nextLine(t, lines, stderr) {
		seq, err := strconv.ParseUint(l, 10, 64)
		if err != nil {
			t.Fatalf("child said %q\n%s", l, stderr)
		}
		first = append(first, seq)
	}
	cmd.Process.Kill()
	for range lines { // to its end: the pipe closes when the process is gone
	}
	cmd.Wait() // and with it, its consumer lock

	// The successor, in this process, resumes at the head the dead one
	// stored and reads what is left.
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var second []uint64
	buf := make([]byte, c.MaxMessage())
	for {
		n, err := c.TryRecv(buf)
		if errors.Is(err, shmring.ErrEmpty) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		second = append(second, binary.LittleEndian.Uint64(buf[:n]))
	}

	for i, seq := range first {
		if seq != uint64(i) {
			t.Fatalf("the first consumer's message %d was %d", i, seq)
		}
	}
	if len(second) == 0 || len(second) == count {
		t.Fatalf("the successor read %d messages of %d: the head store did not fall in the stream", len(second), count)
	}
	if second[0] > uint64(len(first)) {
		t.Fatalf("lost messages %d to %d: the first consumer returned %d, its successor started at %d",
			len(first), second[0]-1, len(first), second[0])
	}
	for i, seq := range second {
		if seq != second[0]+uint64(i) {
			t.Fatalf("the successor's message %d was %d, want %d", i, seq, second[0]+uint64(i))
		}
	}
	if last := second[len(second)-1]; last != uint64(count-1) {
		t.Fatalf("the successor ended at message %d, want %d", last, count-1)
	}
	t.Logf("the first consumer returned %d messages, the successor resumed at %d (%d again)", len(first), second[0], uint64(len(first))-second[0])
}
