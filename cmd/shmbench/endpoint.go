//go:build unix

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/google/uuid"

	"github.com/shmring/shmring"
)

// endpoint is the parent's side of one case's transport: a listening
// socket, pipes, or rings that the peers then join.
type endpoint struct {
	s     spec
	ctx   context.Context
	ln    net.Listener
	rc    *ringConn  // shmring: the parent's consumer (and producer for pingpong)
	pipes []*os.File // per peer: the parent's read end, write end
	child [][]*os.File
}

func newEndpoint(ctx context.Context, s spec, dir string) (_ *endpoint, err error) {
	e := &endpoint{s: s, ctx: ctx}
	switch s.Transport {
	case "uds", "uds-buffered":
		e.ln, err = net.Listen("unix", filepath.Join(dir, "sock"))
	case "conn":
		policy, perr := waitPolicy(e.s.Wait)
		if perr != nil {
			return nil, perr
		}
		e.ln, err = shmring.Listen("shmbench-"+uuid.NewString(), shmring.WithWaitPolicy(policy))
	case "tcp":
		e.ln, err = net.Listen("tcp", "127.0.0.1:0")
	case "pipe":
		for range s.Producers {
			up, err := pipePair()
			if err != nil {
				return nil, err
			}
			down, err := pipePair()
			if err != nil {
				return nil, err
			}
			// The peer writes to up[1] and reads from down[0].
			e.pipes = append(e.pipes, up[0], down[1])
			e.child = append(e.child, []*os.File{up[1], down[0]})
		}
	case "shmring", "shmring-batch":
		err = e.createRings()
	default:
		err = fmt.Errorf("unknown transport %q (shmring, shmring-batch, conn, uds, uds-buffered, pipe, tcp)", s.Transport)
	}
	if err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func pipePair() ([2]*os.File, error) {
	r, w, err := os.Pipe()
	return [2]*os.File{r, w}, err
}

// streamCapacity is the capacity of the rings the patterns stream through.
const streamCapacity = 4 << 20

// createRings makes the ring the peers send into (multi-producer for more
// than one peer) and, for pingpong, the ring of requests.
func (e *endpoint) createRings() error {
	policy, err := waitPolicy(e.s.Wait)
	if err != nil {
		return err
	}
	opts := []shmring.Option{shmring.WithCapacity(streamCapacity), shmring.WithWaitPolicy(policy), shmring.WithEOF(false)}
	if e.s.Producers > 1 {
		opts = append(opts, shmring.WithMultiProducer())
	}
	e.rc = &ringConn{ctx: e.ctx}
	e.s.Addr = "shmbench-" + uuid.NewString()
	up, err := shmring.Create(e.s.Addr, opts...)
	if err != nil {
		return err
	}
	e.rc.rings = append(e.rc.rings, up)
	if e.rc.c, err = up.Consumer(); err != nil {
		return err
	}
	if e.s.Pattern == "pingpong" {
		e.s.Addr2 = e.s.Addr + "-requests"
		down, err := shmring.Create(e.s.Addr2, opts[:3]...)
		if err != nil {
			return err
		}
		e.rc.rings = append(e.rc.rings, down)
		if e.rc.p, err = down.Producer(); err != nil {
			return err
		}
	}
	return nil
}

// peer fills in peer i's spec and command: its address, its pipes.
func (e *endpoint) peer(i int, s *spec, cmd *exec.Cmd) {
	s.ID = i
	switch {
	case e.ln != nil:
		s.Addr = e.ln.Addr().String()
	case e.child != nil:
		cmd.ExtraFiles = e.child[i] // fds 3 (write) and 4 (read) in the peer
	default:
		s.Addr, s.Addr2 = e.s.Addr, e.s.Addr2
	}
}

// conns returns the parent's connections once the peers have started: one
// per peer, or one ring connection for all.
func (e *endpoint) conns() ([]conn, error) {
	for _, f := range e.child {
		for _, c := range f {
			c.Close() // the peers hold them now
		}
	}
	e.child = nil
	var cs []conn
	switch {
	case e.ln != nil:
		for range e.s.Producers {
			c, err := e.ln.Accept()
			if err != nil {
				return nil, err
			}
			cs = append(cs, newStreamConn(c, c, e.s.Transport == "uds-buffered", c))
		}
	case e.pipes != nil:
		for i := 0; i < len(e.pipes); i += 2 {
			cs = append(cs, newStreamConn(e.pipes[i], e.pipes[i+1], false, e.pipes[i], e.pipes[i+1]))
		}
		e.pipes = nil
	default:
		cs = append(cs, e.rc)
	}
	return cs, nil
}

func (e *endpoint) close() {
	if e.ln != nil {
		e.ln.Close()
	}
	for _, f := range append(e.pipes, flat(e.child)...) {
		f.Close()
	}
	if e.rc != nil {
		e.rc.close()
		shmring.Remove(e.s.Addr)
		if e.s.Addr2 != "" {
			shmring.Remove(e.s.Addr2)
		}
	}
}

func flat(ff [][]*os.File) []*os.File {
	var all []*os.File
	for _, f := range ff {
		all = append(all, f...)
	}
	return all
}

// dial is the peer's side: it joins the transport the parent prepared.
func dial(ctx context.Context, s spec) (conn, error) {
	buffered := s.Transport == "uds-buffered"
	switch s.Transport {
	case "uds", "uds-buffered", "tcp":
		network := "unix"
		if s.Transport == "tcp" {
			network = "tcp"
		}
		c, err := net.Dial(network, s.Addr)
		if err != nil {
			return nil, err
		}
		return newStreamConn(c, c, buffered, c), nil
	case "conn":
		// shmring's net.Conn, framed by the same code as uds.
		policy, err := waitPolicy(s.Wait)
		if err != nil {
			return nil, err
		}
		c, err := shmring.Dial(ctx, s.Addr, shmring.WithWaitPolicy(policy))
		if err != nil {
			return nil, err
		}
		return newStreamConn(c, c, false, c), nil
	case "pipe":
		w, r := os.NewFile(3, "up"), os.NewFile(4, "down")
		return newStreamConn(r, w, false, r, w), nil
	case "shmring", "shmring-batch":
		policy, err := waitPolicy(s.Wait)
		if err != nil {
			return nil, err
		}
		rc := &ringConn{ctx: ctx, batched: s.Transport == "shmring-batch"}
		up, err := shmring.Open(s.Addr, shmring.WithWaitPolicy(policy))
		if err != nil {
			return nil, err
		}
		rc.rings = append(rc.rings, up)
		if rc.p, err = up.Producer(); err != nil {
			rc.close()
			return nil, err
		}
		if s.Addr2 != "" {
			down, err := shmring.Open(s.Addr2, shmring.WithWaitPolicy(policy), shmring.WithEOF(false))
			if err != nil {
				rc.close()
				return nil, err
			}
			rc.rings = append(rc.rings, down)
			if rc.c, err = down.Consumer(); err != nil {
				rc.close()
				return nil, err
			}
		}
		return rc, nil
	}
	return nil, fmt.Errorf("unknown transport %q", s.Transport)
}
