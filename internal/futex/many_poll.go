package futex

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// watchPolling is Watch where no system call waits on many words: a
// goroutine looks at the word every pollEvery. It holds no thread while it
// sleeps between looks.
const pollEvery = 200 * time.Microsecond

type pollWatch struct {
	mu        sync.Mutex
	cancelled bool
	fired     bool
	stop      chan struct{}
}

func watchPolling(w *Watcher) {
	p := &pollWatch{stop: make(chan struct{})}
	w.poll = p
	go func() {
		debug.SetPanicOnFault(true) // see moved
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			p.mu.Lock()
			if p.cancelled {
				p.mu.Unlock()
				return
			}
			if moved(w) {
				p.fired = true
				w.fn()
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			select {
			case <-t.C:
			case <-p.stop:
			}
		}
	}()
}

func (p *pollWatch) cancel() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fired || p.cancelled {
		return false
	}
	p.cancelled = true
	close(p.stop)
	return true
}

// moved reports whether w's word no longer holds its value, or can no
// longer be read (its memory vanished: a truncated file, with
// debug.SetPanicOnFault set by the caller), which its owner must learn too.
func moved(w *Watcher) (yes bool) {
	defer func() {
		if recover() != nil {
			yes = true
		}
	}()
	return atomic.LoadUint32(w.addr) != w.val
}
