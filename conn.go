package shmring

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/shmring/shmring/internal/futex"
	"github.com/shmring/shmring/internal/peerwatch"
	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/internal/testhook"
	"github.com/shmring/shmring/ring"
)

// Connections: Listen and Dial make a net.Conn out of two rings, one each
// way, set up through a listener ring (FORMAT.md, "Connections"). The
// listener is a multi-producer ring named after the listener; a client
// creates the connection's two rings itself (so the server learns its user
// from the files' owner, which the kernel sets), sends a connect request
// into the listener ring, and waits for the server's answer on its own ring.
// The server opens the two rings, removes their names (from then on they
// live as long as one side has them open) and answers.

// ErrPeerDead is returned by a Conn's Read and Write when the process at
// the other end died (its liveness lock proves it), as opposed to io.EOF
// after it closed its side.
var ErrPeerDead = errors.New("shmring: the peer process of the connection died")

// ErrBacklogFull is returned by Dial when the listener has as many
// connections waiting to be accepted as its backlog allows, or as many
// processes dialing at once as it has slots.
var ErrBacklogFull = errors.New("shmring: the listener's backlog is full")

// ErrRefused is returned by Dial when the server refused the connection.
var ErrRefused = errors.New("shmring: connection refused")

// ErrPeerClosed is returned by a Conn's Write that waited for room while
// the peer closed the connection: nothing written from then on would be
// read. (A Write that finds room succeeds, as a socket's first write after
// its peer closed does.)
var ErrPeerClosed = errors.New("shmring: the peer closed the connection")

// endWithConsumer makes a connection ring's producer end a wait for room
// when the consumer, the peer, closes.
var endWithConsumer Option = func(o *options) { o.endConsumer = true }

// givingP makes a ring's consumer sleep giving up its P
// (ring.ConsumerOptions.GiveP): a listener's, for a server waits long in
// Accept, and its connections' readers need the few sleepers that keep a P
// for a quick wake-up; and that of a connection to this same process,
// whose other end needs the Ps (a gRPC call between the two ends of one
// process: 1.6-1.9x a Unix socket's when the first reader kept its P,
// about 1.0x when both sleep on bells).
var givingP Option = func(o *options) { o.giveP = true }

// Network is the network name of shmring addresses.
const Network = "shmring"

// Addr is the address of a listener or of one end of a connection: the
// listener's name, and for a connection's end the process at it.
type Addr struct {
	Name string
	PID  int // 0 for a listener
}

// Network returns "shmring".
func (a Addr) Network() string { return Network }

func (a Addr) String() string {
	if a.PID == 0 {
		return a.Name
	}
	return fmt.Sprintf("%s#%d", a.Name, a.PID)
}

// The connect request and the answer, fixed-size messages (FORMAT.md).
const (
	connectMagic  = "SHMCONN1"
	acceptMagic   = "SHMACPT1"
	handshakeSize = 32
	// DefaultBacklog is the listener's backlog when WithBacklog is not
	// given: connections waiting to be accepted.
	DefaultBacklog = 128
	// DefaultConnCapacity is the capacity of each of a connection's two
	// rings when WithCapacity is not given: 512 KiB of shared memory a
	// connection. Smaller rings save memory (a server with many idle
	// connections) but make large writes wait for the reader: with 64 KiB
	// rings, messages of 64 KiB and more went slower than through a Unix
	// socket (BENCHMARKS.md, "Connection rings of 256 KiB").
	DefaultConnCapacity = 256 << 10
	// dialSlots is how many processes may be dialing one listener at once.
	dialSlots = 64
)

// Listener accepts shmring connections; it implements net.Listener.
type Listener struct {
	name   string
	opts   options
	r      *Ring
	c      *Consumer
	mu     sync.Mutex // serializes Accept
	ctx    context.Context
	cancel context.CancelFunc
	closed atomic.Bool

	ringOpts []Option // to create the ring again (renew)
}

// WithBacklog sets how many connections may wait to be accepted by a
// Listener (default DefaultBacklog); Dial returns ErrBacklogFull beyond.
func WithBacklog(n int) Option { return func(o *options) { o.backlog = n } }

// Listen creates the listener ring name and returns a Listener. Who may
// connect is who may open the ring (WithPerm; 0600 by default: the same
// user). A listener ring left behind by a process that died (no process has
// it open) is replaced, as a Unix socket server removes a stale socket
// file; one in use is an error wrapping os.ErrExist. So are connection
// rings of dialers that died before being accepted: Listen and Close
// remove them. WithBacklog bounds the connections waiting to be accepted;
// WithWaitPolicy and WithLiveness apply to the connections accepted. The
// dialer chooses the capacity of a connection's rings.
func Listen(name string, opts ...Option) (*Listener, error) {
	o := apply(opts)
	backlog := o.backlog
	if backlog <= 0 {
		backlog = DefaultBacklog
	}
	// A request is a record of 8 + 32 bytes, rounded to 48.
	capacity := uint64(256)
	for capacity < uint64(backlog)*48 {
		capacity *= 2
	}
	lopts := append(append([]Option(nil), opts...), WithCapacity(capacity), WithMultiProducer(),
		WithSlots(dialSlots), WithEOF(false), WithMaxMessage(handshakeSize), WithReplaceUnused(), givingP)
	r, err := Create(name, lopts...)
	if err != nil {
		return nil, err
	}
	sweep(name)
	c, err := r.Consumer()
	if err != nil {
		r.Close()
		r.Remove()
		return nil, err
	}
	l := &Listener{name: name, opts: o, r: r, c: c, ringOpts: lopts}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l, nil
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return Addr{Name: l.name} }

// Close stops the listener: a blocked Accept returns an error wrapping
// net.ErrClosed, dials waiting to be accepted and later ones are refused,
// and the listener's ring is removed.
// Connections already accepted stay open.
func (l *Listener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refuseBacklog()
	l.c.Close()
	err := l.r.Remove()
	sweep(l.name)
	return errors.Join(err, l.r.Close())
}

// refuseBacklog refuses the dials waiting to be accepted: removing a
// dialer's rings marks them, which ends its wait at once with ErrRefused.
// l.mu is held.
func (l *Listener) refuseBacklog() {
	var req [handshakeSize]byte
	for {
		var n int
		err := Guarded(func() error {
			var rerr error
			n, rerr = l.c.TryRecv(req[:])
			return rerr
		})
		if err != nil {
			return // empty, or a ring a dialer broke: its dialers wait for the look at the server
		}
		if id, _, _, ok := parseConnect(req[:n]); ok {
			up, down := connNames(l.name, id)
			Remove(up)
			Remove(down)
		}
	}
}

// sweep removes the rings of connections to the listener name that no
// process has open: those of dialers that died before the server opened
// them (an accepted connection's rings have no name left).
func sweep(name string) {
	rings, err := List()
	if err != nil {
		return
	}
	for _, r := range rings {
		if isConnName(name, r.Name) {
			RemoveIfUnused(r.Name)
		}
	}
	sweepBells(name)
}

// isConnName reports whether ring is the name of a connection's ring of
// the listener name.
func isConnName(listener, ring string) bool {
	rest, ok := strings.CutPrefix(ring, listener+".")
	if !ok || len(rest) != 32+2 || (!strings.HasSuffix(rest, ".c") && !strings.HasSuffix(rest, ".s")) {
		return false
	}
	_, err := hex.DecodeString(rest[:32])
	return err == nil
}

// Accept waits for the next connection; it implements net.Listener.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptConn(context.Background()) }

// AcceptConn waits for the next connection until ctx ends.
func (l *Listener) AcceptConn(ctx context.Context) (*Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, stop := mergeCancel(ctx, l.ctx)
	defer stop()
	var req [handshakeSize]byte
	for {
		if l.closed.Load() {
			return nil, &net.OpError{Op: "accept", Net: Network, Addr: l.Addr(), Err: net.ErrClosed}
		}
		n, err := guardedRecv(l.c, ctx, req[:])
		if err != nil && !l.closed.Load() && ctx.Err() == nil && (errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated)) {
			// Anyone who may dial may write the listener ring: a
			// hostile or broken dialer must not stop the server.
			// Start over with a new ring at the name; dials in
			// flight into the old one fail (it is marked removed).
			if err = l.renew(); err == nil {
				continue
			}
		}
		if err != nil {
			if l.closed.Load() {
				err = net.ErrClosed
			}
			return nil, &net.OpError{Op: "accept", Net: Network, Addr: l.Addr(), Err: err}
		}
		id, pid, flags, ok := parseConnect(req[:n])
		if !ok {
			continue // not a request: a hostile or broken dialer
		}
		c, err := l.accept(id, pid, flags)
		if err != nil {
			continue // the dialer went away, or its rings are not what they must be
		}
		return c, nil
	}
}

// guardedRecv is Recv with a fault of the mapping (a dialer truncated the
// listener's file) turned into ErrTruncated.
func guardedRecv(c *Consumer, ctx context.Context, buf []byte) (n int, err error) {
	err = Guarded(func() error {
		var rerr error
		n, rerr = c.Recv(ctx, buf)
		return rerr
	})
	return n, err
}

// renew replaces the listener's ring with a new one at the same name; l.mu
// is held.
func (l *Listener) renew() error {
	l.c.Close()
	l.r.Remove()
	l.r.Close()
	r, err := Create(l.name, l.ringOpts...)
	if err != nil {
		return err
	}
	c, err := r.Consumer()
	if err != nil {
		r.Close()
		return err
	}
	l.r, l.c = r, c
	return nil
}

// accept opens the connection id's rings, removes their names, and
// answers. If it fails, the rings are removed (marked so in shared memory:
// the dialer learns it); if it succeeds, only their names are, so that
// they vanish with the last process that has them open.
func (l *Listener) accept(id uuid.UUID, pid int, flags uint32) (c *Conn, err error) {
	up, down := connNames(l.name, id)
	defer func() {
		if err != nil {
			Remove(up)
			Remove(down)
		} else {
			shm.Remove(up)
			shm.Remove(down)
		}
	}()
	// No waiting for a creator to finish: the dialer finished both rings
	// before it sent the request, and a hostile one must not hold Accept
	// up for the other dialers.
	ropts := []Option{WithWaitPolicy(l.opts.wait), WithEOF(true), WithEOFAfter(1), WithInitWait(0), endWithConsumer}
	if l.opts.liveness > 0 {
		ropts = append(ropts, WithLiveness(l.opts.liveness))
	}
	if pid == os.Getpid() {
		ropts = append(ropts, givingP)
	}
	in, err := Open(up, ropts...)
	if err != nil {
		return nil, err
	}
	out, err := Open(down, ropts...)
	if err != nil {
		in.Close()
		return nil, err
	}
	c, err = newConn(in, out, l.name, os.Getpid(), pid, true)
	if err != nil {
		return nil, err
	}
	c.peerUID = fileOwner(in.Path())
	var ans [handshakeSize]byte
	copy(ans[:], acceptMagic)
	binary.LittleEndian.PutUint32(ans[8:], uint32(os.Getpid()))
	var sleep, ring *futex.Bell
	if flags&flagBells != 0 {
		sleep, ring = takeBells(in, out, c.peerUID)
		removeBellNames(in, out)
	}
	if sleep != nil {
		// Sleep on the bell from now on: the dialer rings it once it
		// has the answer.
		c.useBells(sleep, nil)
		binary.LittleEndian.PutUint32(ans[12:], flagBells)
	}
	if err := c.p.TrySend(ans[:]); err != nil {
		ring.Close()
		c.Close()
		return nil, err
	}
	// Ring the dialer's bell only after the answer, which it waits for
	// on the futex.
	c.useBells(nil, ring)
	return c, nil
}

// Dial connects to the listener name, waiting for the server to accept
// until ctx ends. A listener whose server process has ended refuses at
// once (ErrRefused), also when the server dies while Dial waits (its ring
// stays until the next Listen at name replaces it), or when the listener
// closes; so does a ring at name that Listen did not make. WithCapacity sets
// the capacity of each of the connection's rings (default
// DefaultConnCapacity); the rings get the listener's permission bits, so
// that the server can open them.
func Dial(ctx context.Context, name string, opts ...Option) (*Conn, error) {
	c, err := dial(ctx, name, opts)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: Network, Addr: Addr{Name: name}, Err: err}
	}
	return c, nil
}

func dial(ctx context.Context, name string, opts []Option) (*Conn, error) {
	o := apply(opts)
	lr, err := Open(name, WithOpenWait(0))
	if err != nil {
		return nil, err
	}
	defer lr.Close()
	server, err := listening(lr)
	if err != nil {
		return nil, err
	}
	perm := o.perm
	if fi, err := os.Stat(lr.Path()); err == nil {
		perm = fi.Mode().Perm() // where names are files: the listener's bits
	}
	capacity := uint64(DefaultConnCapacity)
	if o.capacitySet {
		capacity = o.capacity
	}

	id := uuid.New()
	up, down := connNames(name, id)
	copts := append(append([]Option(nil), opts...), WithCapacity(capacity), WithPerm(perm), WithEOF(true), WithEOFAfter(1), endWithConsumer)
	inOpts := copts
	if server == os.Getpid() {
		inOpts = append(inOpts[:len(inOpts):len(inOpts)], givingP)
	}
	in, err := Create(down, inOpts...)
	if err != nil {
		return nil, err
	}
	out, err := Create(up, copts...)
	if err != nil {
		in.Close()
		Remove(down)
		return nil, err
	}
	c, err := newConn(in, out, name, 0, os.Getpid(), false)
	if err != nil {
		Remove(up)
		Remove(down)
		return nil, err
	}
	sleep, ring := offerBells(in, out, perm)
	fail := func(err error) (*Conn, error) {
		c.Close()
		sleep.Close()
		ring.Close()
		removeBellNames(in, out)
		Remove(up)
		Remove(down)
		return nil, err
	}
	var req [handshakeSize]byte
	copy(req[:], connectMagic)
	binary.LittleEndian.PutUint32(req[8:], uint32(os.Getpid()))
	if sleep != nil {
		binary.LittleEndian.PutUint32(req[12:], flagBells)
	}
	copy(req[16:], id[:])
	if testhook.BeforeRequest != nil {
		testhook.BeforeRequest()
	}
	lp, err := lr.Producer()
	if err == nil {
		err = lp.TrySend(req[:])
		lp.Close()
	}
	switch {
	case errors.Is(err, ErrProducerBusy) || errors.Is(err, ErrFull):
		return fail(ErrBacklogFull)
	case errors.Is(err, ErrRingRemoved):
		return fail(errServerGone) // closed since it was looked at
	case err != nil:
		return fail(err)
	}
	// Watch the server's process from now on: a server that dies before
	// it answers never will. The watch stays the connection's.
	wctx, stopWait := context.WithCancel(ctx)
	defer stopWait()
	c.remote.PID = server
	c.watchPeerThen(stopWait)
	var ans [handshakeSize]byte
	n, err := awaitAnswer(ctx, wctx, c.c, lr, ans[:])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, ErrRingRemoved) {
			err = ErrRefused
		}
		return fail(err)
	}
	if n != handshakeSize || string(ans[:8]) != acceptMagic {
		return fail(fmt.Errorf("%w: the server's answer is not one", ErrRefused))
	}
	removeBellNames(in, out)
	// An older server answers no flags, as does one that could not open
	// the bells: then both sides use the futex.
	if binary.LittleEndian.Uint32(ans[12:])&flagBells != 0 {
		c.useBells(sleep, ring)
	} else {
		sleep.Close()
		ring.Close()
	}
	if pid := int(binary.LittleEndian.Uint32(ans[8:])); pid != server || c.peerDead.Load() {
		// The listener's PID was not the answering process's: watch
		// the one that answered.
		if c.stopPeer != nil {
			c.stopPeer()
			c.stopPeer = nil
		}
		c.peerDead.Store(false)
		c.remote.PID = pid
		c.watchPeer()
	}
	return c, nil
}

// errServerGone is why a dial is refused whose listener has no live
// server.
var errServerGone = fmt.Errorf("%w: no server is listening", ErrRefused)

// listening returns the PID of the process serving the listener ring lr,
// or errServerGone if none is: its consumer line is not attached, its
// liveness lock is free (the server died), or the ring is marked removed
// (closed, or replaced). A request sent to it would never be answered.
func listening(lr *Ring) (pid int, err error) {
	if info := lr.Info(); !info.MultiProducer || info.MaxMessage != handshakeSize {
		// Not made by Listen: whoever reads it would not answer.
		return 0, fmt.Errorf("%w: %s is a ring, not a listener", ErrRefused, lr.name)
	}
	alive, server, removed, err := lr.consumerAlive()
	if err != nil {
		return 0, err
	}
	if !alive || removed {
		return 0, errServerGone
	}
	return int(server), nil
}

// awaitAnswer receives the server's answer into buf, until ctx ends or the
// server is gone. wctx is ctx, also cancelled where the server's process
// was watched and ended; the PID is only a hint, so the listener's liveness
// lock confirms the end, and is looked at every liveness interval
// regardless.
func awaitAnswer(ctx, wctx context.Context, c *Consumer, lr *Ring, buf []byte) (int, error) {
	for {
		sctx, cancel := context.WithTimeout(wctx, ring.DefaultLiveness)
		n, err := c.Recv(sctx, buf)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			return n, err // answered, given up by the caller, or failed
		}
		if _, err := listening(lr); err != nil {
			return 0, err
		}
		if wctx.Err() != nil {
			// The watched process ended, yet the listener's lock is
			// held: the PID was not the server's. Look on the timer.
			wctx = ctx
		}
	}
}

// connNames returns the names of connection id's rings: client to server,
// server to client.
func connNames(listener string, id uuid.UUID) (up, down string) {
	base := fmt.Sprintf("%s.%x", listener, id[:])
	return base + ".c", base + ".s"
}

// parseConnect checks a connect request: size, magic, a PID.
func parseConnect(b []byte) (id uuid.UUID, pid int, flags uint32, ok bool) {
	if len(b) != handshakeSize || string(b[:8]) != connectMagic {
		return id, 0, 0, false
	}
	pid = int(binary.LittleEndian.Uint32(b[8:]))
	flags = binary.LittleEndian.Uint32(b[12:])
	copy(id[:], b[16:])
	return id, pid, flags, pid > 0
}

// mergeCancel returns a context that ends when a or b ends.
func mergeCancel(a, b context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(a)
	stop := context.AfterFunc(b, cancel)
	return ctx, func() { stop(); cancel() }
}

// Conn is one end of a shmring connection: a byte stream with net.Conn's
// semantics, over two rings, one each way. Read and Write may run in
// different goroutines at once (each is serialized with itself); Close,
// CloseWrite and the deadline setters may be called from any goroutine and
// unblock what they must.
//
// A clean close by the peer is io.EOF after everything it wrote; its death
// (its liveness lock released without a close) is ErrPeerDead for Read and
// Write, noticed within the liveness interval, or at once where the peer's
// process can be watched (Linux, Windows). A stopped peer is alive.
//
// ReadMessage and WriteMessage keep message boundaries for those who want
// messages rather than bytes; each Write of up to MaxMessage bytes is one
// message too.
type Conn struct {
	in, out       *Ring
	c             *Consumer
	p             *Producer
	local, remote Addr

	rmu      sync.Mutex // serializes reads
	view     []byte     // the rest of the message Read is in the middle of
	rdl      deadline
	wmu      sync.Mutex // serializes writes
	wdl      deadline
	wshut    bool      // CloseWrite done (guarded by wmu)
	lastLook time.Time // the last look at the peer's lock from a Write (wmu)
	selfPeer bool      // the peer is this process (set before first use)
	peerUID  int       // the peer's user, from the kernel (-1: unknown)

	bells     [2]*futex.Bell // the incoming ring's, the outgoing ring's (conn_bell.go)
	closed    atomic.Bool
	peerDead  atomic.Bool
	truncated atomic.Bool // a fault of a mapping: the connection is broken
	stopPeer  func()
	cmu       sync.Mutex // serializes Close
}

func newConn(in, out *Ring, name string, localPID, remotePID int, server bool) (*Conn, error) {
	c, err := in.Consumer()
	if err != nil {
		in.Close()
		out.Close()
		return nil, err
	}
	p, err := out.Producer()
	if err != nil {
		c.Close()
		in.Close()
		out.Close()
		return nil, err
	}
	if localPID == 0 {
		localPID = os.Getpid()
	}
	conn := &Conn{in: in, out: out, c: c, p: p, peerUID: -1,
		local: Addr{Name: name, PID: localPID}, remote: Addr{Name: name, PID: remotePID}}
	conn.rdl.init()
	conn.wdl.init()
	if server {
		conn.watchPeer()
	}
	return conn, nil
}

// watchPeer watches the peer's process, where that can be done, so that a
// Write to a dead peer fails at once (Read learns it from its ring).
func (c *Conn) watchPeer() { c.watchPeerThen(nil) }

// watchPeerThen is watchPeer, also calling then (if not nil) when the
// peer's process ends.
func (c *Conn) watchPeerThen(then func()) {
	if c.remote.PID == os.Getpid() {
		c.selfPeer = true // it dies with this process: nothing to look for
		return
	}
	if c.remote.PID <= 0 {
		return
	}
	stop, err := peerwatch.Watch(c.remote.PID, func() {
		c.peerDead.Store(true)
		if then != nil {
			then()
		}
	})
	if err == nil {
		c.stopPeer = stop
	}
}

// PeerUID returns the user id of the process at the other end, as the
// kernel attests it (the owner of the rings the dialer created), or -1
// where it is not known (the dialing end; Windows).
func (c *Conn) PeerUID() int { return c.peerUID }

// LocalAddr returns this end's address.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// MaxMessage returns the largest message WriteMessage accepts.
func (c *Conn) MaxMessage() int { return c.p.MaxMessage() }

// Read reads bytes the peer wrote, waiting for some until the read deadline.
// It returns io.EOF once the peer closed (or CloseWrite'd) and everything
// was read, ErrPeerDead if the peer died.
func (c *Conn) Read(b []byte) (n int, err error) {
	defer c.guard("read", debug.SetPanicOnFault(true), &n, &err)
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.view) == 0 {
		if len(b) == 0 && !c.closed.Load() {
			return 0, nil
		}
		msg, err := c.next()
		if err != nil {
			return 0, c.opErr("read", err)
		}
		if len(msg) == 0 {
			c.c.Release() // an empty message carries no bytes
			continue
		}
		c.view = msg
	}
	n = copy(b, c.view)
	c.view = c.view[n:]
	if len(c.view) == 0 {
		c.view = nil
		c.c.Release()
	}
	// Fill b with what is there already: a reader with a large buffer
	// (bufio) then makes one call for many small messages.
	for c.view == nil && n < len(b) {
		msg, err := c.c.TryPeek()
		if err != nil {
			break // nothing more now; an error comes back at the next Read
		}
		k := copy(b[n:], msg)
		n += k
		if k < len(msg) {
			c.view = msg[k:]
			break
		}
		c.c.Release()
	}
	return n, nil
}

// ReadMessage reads the next whole message into b and returns its length;
// after a Read that stopped inside a message, the rest of that one. A
// message longer than b is an error wrapping ErrShortBuffer, and stays.
func (c *Conn) ReadMessage(b []byte) (n int, err error) {
	defer c.guard("read", debug.SetPanicOnFault(true), &n, &err)
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.view == nil {
		msg, err := c.next()
		if err != nil {
			return 0, c.opErr("read", err)
		}
		c.view = msg
	}
	if len(b) < len(c.view) {
		return 0, c.opErr("read", fmt.Errorf("%w: message of %d bytes, buffer of %d", ErrShortBuffer, len(c.view), len(b)))
	}
	n = copy(b, c.view)
	c.view = nil
	c.c.Release()
	return n, nil
}

// next waits for the next message (in the ring, until Release); rmu is
// held.
func (c *Conn) next() ([]byte, error) {
	if c.closed.Load() {
		return nil, net.ErrClosed
	}
	if c.truncated.Load() {
		return nil, ErrTruncated
	}
	ctx := c.rdl.context()
	msg, err := c.c.Peek(ctx)
	switch {
	case err == nil:
		return msg, nil
	case c.closed.Load():
		return nil, net.ErrClosed
	case ctx.Err() != nil:
		return nil, os.ErrDeadlineExceeded
	case errors.Is(err, io.EOF):
		if c.reaped() {
			return nil, ErrPeerDead
		}
		return nil, io.EOF
	case errors.Is(err, ErrRingRemoved):
		return nil, io.EOF
	}
	return nil, err
}

// reaped reports whether the producer of the incoming ring died rather
// than closed: the consumer reaped its slot.
func (c *Conn) reaped() bool {
	st, err := c.in.Stats()
	return err == nil && st.Consumer.Reaped > 0
}

// Write writes b, as messages of at most MaxMessage bytes, waiting for room
// until the write deadline. It returns ErrPeerDead if the peer died, and
// ErrPeerClosed if it waited for room while the peer closed.
func (c *Conn) Write(b []byte) (n int, err error) {
	defer c.guard("write", debug.SetPanicOnFault(true), &n, &err)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(b) == 0 {
		if err := c.writable(); err != nil {
			return 0, c.opErr("write", err)
		}
		return 0, nil
	}
	max := c.p.MaxMessage()
	for {
		chunk := b[n:min(len(b), n+max)]
		if err := c.send(chunk); err != nil {
			return n, c.opErr("write", err)
		}
		n += len(chunk)
		if n == len(b) {
			return n, nil
		}
	}
}

// WriteMessage writes b as one message (at most MaxMessage bytes, else an
// error wrapping ErrTooLarge and nothing is written).
func (c *Conn) WriteMessage(b []byte) (err error) {
	defer c.guard("write", debug.SetPanicOnFault(true), nil, &err)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.send(b); err != nil {
		return c.opErr("write", err)
	}
	return nil
}

// writable says why nothing can be written, if so; wmu is held.
func (c *Conn) writable() error {
	switch {
	case c.closed.Load():
		return net.ErrClosed
	case c.wshut:
		return errWriteShut
	case c.wdl.expired.Load():
		return os.ErrDeadlineExceeded
	case c.truncated.Load():
		return ErrTruncated
	}
	// The peer's death: reported by the watch of its process, or looked
	// for every liveness interval where it cannot be watched.
	look := c.peerDead.Load()
	if c.stopPeer == nil && !c.selfPeer {
		if now := time.Now(); now.Sub(c.lastLook) >= ring.DefaultLiveness {
			c.lastLook, look = now, true
		}
	}
	if look && c.peerGone() {
		return ErrPeerDead
	}
	return nil
}

// send sends one message; wmu is held.
func (c *Conn) send(msg []byte) error {
	if err := c.writable(); err != nil {
		return err
	}
	ctx := c.wdl.context()
	err := c.p.Send(ctx, msg)
	switch {
	case err == nil:
		return nil
	case c.closed.Load():
		return net.ErrClosed
	case ctx.Err() != nil:
		return os.ErrDeadlineExceeded
	case errors.Is(err, ErrConsumerDead), errors.Is(err, ErrRingRemoved):
		return ErrPeerDead
	case errors.Is(err, ring.ErrConsumerClosed):
		return ErrPeerClosed
	}
	return err
}

var errWriteShut = errors.New("shmring: write after CloseWrite")

// peerGone confirms a death the process watch reported: the consumer of
// the outgoing ring is marked attached with its lock free.
func (c *Conn) peerGone() bool {
	st, err := c.out.Stats()
	return err == nil && st.Consumer.Attached && !st.Consumer.Alive
}

// CloseWrite closes the writing side: the peer reads io.EOF after what was
// written. Reading goes on.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return c.opErr("close", net.ErrClosed)
	}
	if !c.wshut {
		c.wshut = true
		return c.p.Close()
	}
	return nil
}

// Close closes the connection: blocked Reads and Writes return errors
// wrapping net.ErrClosed, the peer reads io.EOF after what was written.
func (c *Conn) Close() error {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.closed.Swap(true) {
		return c.opErr("close", net.ErrClosed)
	}
	c.rdl.close()
	c.wdl.close()
	c.rmu.Lock()
	c.wmu.Lock()
	defer c.rmu.Unlock()
	defer c.wmu.Unlock()
	if c.stopPeer != nil {
		c.stopPeer()
	}
	c.view = nil
	err := errors.Join(c.p.Close(), c.c.Close())
	err = errors.Join(err, c.in.Close(), c.out.Close())
	c.closeBells()
	return err
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

// SetReadDeadline sets the deadline of Read and ReadMessage, also for one
// already blocked; the zero time means none.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rdl.set(t); return nil }

// SetWriteDeadline sets the deadline of Write and WriteMessage.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wdl.set(t); return nil }

// guard is deferred first by Read, Write and the message methods, with the
// goroutine's previous SetPanicOnFault setting: a fault of a mapping (the
// peer truncated a ring's file, and the pages are gone) becomes an error
// wrapping ErrTruncated instead of killing the process, and the connection
// is broken for good (Close it). The cost is a few nanoseconds per call.
// Under -race the guard does not hold (see Guarded).
func (c *Conn) guard(op string, old bool, n *int, err *error) {
	debug.SetPanicOnFault(old)
	r := recover()
	if r == nil {
		return
	}
	f, ok := r.(interface{ Addr() uintptr })
	if !ok {
		panic(r)
	}
	c.truncated.Store(true)
	if n != nil {
		*n = 0
	}
	*err = c.opErr(op, fmt.Errorf("%w: fault at %#x", ErrTruncated, f.Addr()))
}

func (c *Conn) opErr(op string, err error) error {
	if err == io.EOF {
		return io.EOF // callers compare it
	}
	return &net.OpError{Op: op, Net: Network, Source: c.local, Addr: c.remote, Err: err}
}

// deadline is one direction's deadline: a context cancelled when the
// deadline passes or the connection closes, renewed when a deadline is set
// after it was cancelled.
type deadline struct {
	mu      sync.Mutex
	cur     atomic.Pointer[context.Context] // read without mu, per message
	expired atomic.Bool                     // cur is cancelled (a cheaper look than its Err)
	ctx     context.Context
	cancel  context.CancelFunc
	timer   *time.Timer
	closed  bool
}

func (d *deadline) init() {
	ctx, cancel := context.WithCancel(context.Background())
	d.ctx, d.cancel = ctx, cancel
	d.cur.Store(&ctx) // a copy: d.ctx changes under mu
}

func (d *deadline) context() context.Context { return *d.cur.Load() }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.ctx.Err() != nil {
		ctx, cancel := context.WithCancel(context.Background())
		d.ctx, d.cancel = ctx, cancel
		d.cur.Store(&ctx)
		d.expired.Store(false)
	}
	if t.IsZero() {
		return
	}
	if left := time.Until(t); left > 0 {
		cur, cancel := d.cur.Load(), d.cancel
		d.timer = time.AfterFunc(left, func() {
			// A timer stopped too late must not expire a context
			// that replaced its own.
			d.mu.Lock()
			if d.cur.Load() == cur {
				d.expired.Store(true)
			}
			d.mu.Unlock()
			cancel()
		})
	} else {
		d.expired.Store(true)
		d.cancel()
	}
}

func (d *deadline) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.expired.Store(true)
	d.cancel()
}
