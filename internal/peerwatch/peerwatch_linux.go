package peerwatch

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one watched process: its pidfd and its watchers.
type proc struct {
	f    *os.File
	subs map[uint64]func()
}

var (
	mu     sync.Mutex
	procs  = map[int]*proc{}
	nextID uint64
)

// supported: pidfd_open works here and its descriptor is pollable (a
// seccomp filter or an old kernel may say no).
var supported = func() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), unix.PIDFD_NONBLOCK)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	return f.SetReadDeadline(time.Time{}) == nil // only pollable files take deadlines
}()

func watch(pid int, fn func()) (func(), error) {
	if !supported {
		return nil, ErrNotSupported
	}
	if pid <= 0 {
		return nil, fmt.Errorf("peerwatch: PID %d", pid)
	}
	mu.Lock()
	defer mu.Unlock()
	p := procs[pid]
	if p == nil {
		fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
		if errors.Is(err, unix.ESRCH) {
			fn()
			return func() {}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("peerwatch: pidfd_open %d: %w", pid, err)
		}
		p = &proc{f: os.NewFile(uintptr(fd), "pidfd"), subs: map[uint64]func(){}}
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
			p.f.Close() // ends p.wait without a call
		}
	}, nil
}

// wait parks in the network poller until the pidfd is readable (the process
// ended) or closed (the last watch stopped).
func (p *proc) wait(pid int) {
	if rc, err := p.f.SyscallConn(); err == nil {
		rc.Read(func(fd uintptr) bool {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, 0)
			return err != nil || n > 0
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if procs[pid] != p {
		return // stopped: p.f is closed
	}
	// The process ended. (Should the poller have failed instead, the
	// watchers look at their peers for nothing, and watch anew.)
	delete(procs, pid)
	for _, fn := range p.subs {
		fn()
	}
	clear(p.subs)
	p.f.Close()
}
