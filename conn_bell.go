package shmring

import (
	"os"
	"strings"

	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/internal/testhook"
)

// Bells (FORMAT.md, "Connections", bells): a connection's reader may
// sleep in the Go runtime's poller on a FIFO beside its ring (futex.Bell)
// rather than on the ring's futex, and its writer then wakes it with a
// byte. A reader asleep on a bell holds no thread, as on a socket, and
// gives nothing up. A futex sleeper blocks a thread, and where it gives its
// P up (beyond the first sleeper of a process, or on one CPU when holding
// it does not pay) the runtime starts a thread to take the P: two
// connections busy in one process made a gRPC call three times slower
// than over a Unix socket. The first sleeper of a process still sleeps on
// the futex keeping its P: the quickest wake-up (a pipe's wake-up is a
// "sync" one, which draws the woken thread onto the waker's CPU, and costs
// a read more). Each sleeper says which way it sleeps in the waiter count,
// and a writer wakes accordingly. The dialer offers bells in its request;
// the server says in its answer that it took them.

// flagBells is bit 0 of the flags word (offset 12) of the connect request
// (the dialer created the two bells) and of the answer (the server opened
// them): from then on each side's reader may sleep on its ring's bell, and
// each writer rings the bell of a reader that does.
const flagBells = 1

// bellSuffix is appended to a connection ring's path to name its bell.
const bellSuffix = ".bell"

// offerBells creates the bells of a dialer's two rings, with the rings'
// permission bits, and opens them: sleep is in's (this side reads in), ring
// out's. Both are nil where bells are off, unsupported, or could not be
// made (the connection then uses the futex).
func offerBells(in, out *Ring, perm os.FileMode) (sleep, ring *futex.Bell) {
	if testhook.NoBells.Load() || !futex.BellsSupported() {
		return nil, nil
	}
	sp, rp := in.Path()+bellSuffix, out.Path()+bellSuffix
	if err := futex.CreateBell(sp, perm); err != nil {
		return nil, nil
	}
	if err := futex.CreateBell(rp, perm); err != nil {
		os.Remove(sp)
		return nil, nil
	}
	sleep, ring = openBells(sp, rp, os.Geteuid())
	if sleep == nil {
		os.Remove(sp)
		os.Remove(rp)
	}
	return sleep, ring
}

// takeBells opens the bells a dialer offered for a server's rings in and
// out: sleep is in's, ring out's, each a FIFO owned by uid (the rings'
// owner) or refused. Both are nil if either cannot be opened.
func takeBells(in, out *Ring, uid int) (sleep, ring *futex.Bell) {
	if testhook.NoBells.Load() || !futex.BellsSupported() || uid < 0 {
		return nil, nil
	}
	return openBells(in.Path()+bellSuffix, out.Path()+bellSuffix, uid)
}

// openBells opens both bells, or neither.
func openBells(sp, rp string, uid int) (sleep, ring *futex.Bell) {
	sleep, err := futex.OpenBell(sp, uid)
	if err != nil {
		return nil, nil
	}
	ring, err = futex.OpenBell(rp, uid)
	if err != nil {
		sleep.Close()
		return nil, nil
	}
	return sleep, ring
}

// removeBellNames removes the names of the bells of rings (there may be
// none), leaving the FIFOs to those who have them open.
func removeBellNames(rings ...*Ring) {
	for _, r := range rings {
		if p := r.Path(); p != "" {
			os.Remove(p + bellSuffix)
		}
	}
}

// useBells makes the connection's rings sleep and wake through bells:
// sleep is the incoming ring's, ring the outgoing one's (see
// Ring.SetDataBell in package ring).
func (c *Conn) useBells(sleep, ring *futex.Bell) {
	if sleep != nil {
		c.in.r.SetDataBell(sleep)
		c.bells[0] = sleep
	}
	if ring != nil {
		c.out.r.SetDataBell(ring)
		c.bells[1] = ring
	}
}

// closeBells closes the connection's bells, once nothing sleeps on them.
func (c *Conn) closeBells() {
	for i, b := range c.bells {
		if b != nil {
			b.Close()
			c.bells[i] = nil
		}
	}
}

// sweepBells removes the bells of listener name's connections whose ring
// is gone (a dialer died before being accepted, and sweep removed its
// ring). A bell is a FIFO, which List skips.
func sweepBells(name string) {
	dir := shm.Dir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		ringName, ok := strings.CutSuffix(e.Name(), bellSuffix)
		if !ok || e.Type() != os.ModeNamedPipe || !isConnName(name, ringName) {
			continue
		}
		if _, err := os.Lstat(dir + string(os.PathSeparator) + ringName); os.IsNotExist(err) {
			os.Remove(dir + string(os.PathSeparator) + e.Name())
		}
	}
}
