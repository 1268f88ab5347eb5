//go:build linux || windows

package peerwatch

import (
	"fmt"
	"sync"
)

// The watched processes: one handle (a pidfd, a process handle) and one
// goroutine per process, shared by all its watches.

type proc struct {
	sys  procSys // the system's handle on the process
	subs map[uint64]func()
}

var (
	mu     sync.Mutex
	procs  = map[int]*proc{}
	nextID uint64
)

func watch(pid int, fn func()) (func(), error) {
	if !supported {
		return nil, ErrNotSupported
	}
	if pid <= 0 || pid > 1<<31-1 {
		return nil, fmt.Errorf("peerwatch: PID %d", pid)
	}
	mu.Lock()
	defer mu.Unlock()
	p := procs[pid]
	if p == nil {
		sys, gone, err := open(pid)
		if gone {
			fn()
			return func() {}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("peerwatch: %d: %w", pid, err)
		}
		p = &proc{sys: sys, subs: map[uint64]func(){}}
		procs[pid] = p
		go p.wait(pid)
	}
	nextID++
	id := nextID
	p.subs[id] = fn
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := p.subs[id]; !ok {
			return
		}
		delete(p.subs, id)
		if len(p.subs) == 0 && procs[pid] == p {
			delete(procs, pid)
			p.sys.stop() // ends p.wait, which fires nothing
		}
	}, nil
}

// wait waits for the process to end or the watch to stop, and calls the
// watchers' functions in the first case.
func (p *proc) wait(pid int) {
	p.sys.wait()
	defer p.sys.close()
	mu.Lock()
	defer mu.Unlock()
	if procs[pid] != p {
		return // stopped
	}
	// The process ended. (Should the wait have failed instead, the
	// watchers look at their peers for nothing, and watch anew.)
	delete(procs, pid)
	for _, fn := range p.subs {
		fn()
	}
	clear(p.subs)
}
