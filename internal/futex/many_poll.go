package futex

import (
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
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			p.mu.Lock()
			if p.cancelled {
				p.mu.Unlock()
				return
			}
			if atomic.LoadUint32(w.addr) != w.val {
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
