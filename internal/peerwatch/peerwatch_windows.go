package peerwatch

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/windows"
)

// On Windows a process handle (opened with SYNCHRONIZE) is signalled when
// the process ends. Each watched process has a goroutine that waits on its
// handle and on an event that stops the watch: one thread per watched peer
// process (not per ring), since a Windows wait holds its thread.

type proc struct {
	h, stop windows.Handle
	subs    map[uint64]func()
}

var (
	mu     sync.Mutex
	procs  = map[int]*proc{}
	nextID uint64
)

var supported = func() bool {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, windows.GetCurrentProcessId())
	if err != nil {
		return false
	}
	windows.CloseHandle(h)
	return true
}()

func watch(pid int, fn func()) (func(), error) {
	if !supported {
		return nil, ErrNotSupported
	}
	if pid <= 0 || pid > 1<<32-1 {
		return nil, fmt.Errorf("peerwatch: PID %d", pid)
	}
	mu.Lock()
	defer mu.Unlock()
	p := procs[pid]
	if p == nil {
		h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(pid))
		if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
			fn() // no such process (any more)
			return func() {}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("peerwatch: OpenProcess %d: %w", pid, err)
		}
		stop, err := windows.CreateEvent(nil, 1, 0, nil)
		if err != nil {
			windows.CloseHandle(h)
			return nil, fmt.Errorf("peerwatch: CreateEvent: %w", err)
		}
		p = &proc{h: h, stop: stop, subs: map[uint64]func(){}}
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
			windows.SetEvent(p.stop) // ends p.wait, which closes the handles
		}
	}, nil
}

func (p *proc) wait(pid int) {
	ev, err := windows.WaitForMultipleObjects([]windows.Handle{p.h, p.stop}, false, windows.INFINITE)
	defer func() {
		windows.CloseHandle(p.h)
		windows.CloseHandle(p.stop)
	}()
	mu.Lock()
	defer mu.Unlock()
	if procs[pid] != p {
		return // stopped
	}
	delete(procs, pid)
	if err == nil && ev != windows.WAIT_OBJECT_0 {
		return // should not happen: only the stop event is left
	}
	// The process ended (or the wait failed: the watchers look for
	// nothing, and watch anew).
	for _, fn := range p.subs {
		fn()
	}
	clear(p.subs)
}
