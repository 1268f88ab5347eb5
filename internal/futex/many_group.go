//go:build linux || windows

package futex

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// A group is one thread (a goroutine blocked in a system call that waits on
// many objects: futex_waitv on Linux, WaitForMultipleObjects on Windows)
// watching up to groupSize words. Adding a word kicks the group (its
// control object) so that it rebuilds what it waits on; cancelling does not
// (a cancelled word left in a pending wait can only cause a spurious
// wake-up, and the thread rebuilds after any), except the last: a group
// whose last word is cancelled is kicked so that its goroutine ends.
type group struct {
	mu    sync.Mutex
	ws    []*Watcher
	built [groupSize]*Watcher // the watchers the pending wait was built from
	sys   groupSys            // the platform's part: control object, vector
}

// watcherImpl is a Watcher's place in a group.
type watcherImpl struct {
	g    *group     // the thread watching it
	i    int        // its index in g.ws
	done bool       // fired or cancelled (guarded by g.mu)
	poll *pollWatch // where many objects cannot be waited on: the word is polled
	sys  watcherSys // the platform's part
}

var pool struct {
	mu     sync.Mutex
	groups []*group
}

func watch(w *Watcher) {
	if !manyAvailable || !w.prepare() {
		watchPolling(w)
		return
	}
	pool.mu.Lock()
	var g *group
	for _, h := range pool.groups {
		h.mu.Lock()
		if len(h.ws) < groupSize {
			g = h
			break
		}
		h.mu.Unlock()
	}
	if g == nil {
		g = &group{}
		if !g.sys.init() {
			pool.mu.Unlock()
			w.release()
			watchPolling(w)
			return
		}
		pool.groups = append(pool.groups, g)
		go g.loop()
		g.mu.Lock()
	}
	w.g, w.i = g, len(g.ws)
	g.ws = append(g.ws, w)
	g.mu.Unlock()
	pool.mu.Unlock()
	g.sys.kick()
}

func cancel(w *Watcher) bool {
	if w.poll != nil {
		return w.poll.cancel()
	}
	g := w.g
	g.mu.Lock()
	if w.done {
		g.mu.Unlock()
		return false
	}
	g.remove(w)
	empty := len(g.ws) == 0
	g.mu.Unlock()
	if empty {
		g.sys.kick()
	}
	return true
}

// remove takes w out of g.ws; g.mu is held.
func (g *group) remove(w *Watcher) {
	last := len(g.ws) - 1
	g.ws[w.i] = g.ws[last]
	g.ws[w.i].i = w.i
	g.ws[last] = nil
	g.ws = g.ws[:last]
	w.done = true
	g.sys.removed(w)
}

// fire removes w and calls its function; g.mu is held.
func (g *group) fire(w *Watcher) {
	g.remove(w)
	w.fn()
}

func (g *group) loop() {
	// A watched word may be in a file another process truncates: its
	// load must fault into a panic that moved reports, not kill us.
	debug.SetPanicOnFault(true)
	for {
		// Leave when empty, under both locks so that watch either
		// sees the group gone or adds to it before this look.
		pool.mu.Lock()
		g.mu.Lock()
		if len(g.ws) == 0 {
			for i, h := range pool.groups {
				if h == g {
					pool.groups = append(pool.groups[:i], pool.groups[i+1:]...)
					break
				}
			}
			g.sys.close()
			g.mu.Unlock()
			pool.mu.Unlock()
			return
		}
		pool.mu.Unlock()
		n := copy(g.built[:], g.ws)
		g.sys.build(g.built[:n])
		g.mu.Unlock()

		woken, scan := g.sys.wait(n)

		g.mu.Lock()
		g.sys.waited()
		fired := 0
		if woken >= 0 {
			// Woken on this word: fire it even if the word looks
			// unchanged (a wake-up is a reason to look).
			if w := g.built[woken]; !w.done {
				g.fire(w)
				fired++
			}
		}
		if scan {
			// Not woken on one word (a word had moved before the
			// wait, a kick, a fault): look at every word. A wake-up
			// on one word needs no such look where a word that moves
			// while the thread is away is seen by its next wait;
			// the look costs a cache miss or two per word, in other
			// processes' mappings, on the path of the wake-up.
			for i := 0; i < len(g.ws); {
				if w := g.ws[i]; moved(w) {
					g.fire(w) // moves the last watcher to i
					fired++
					continue
				}
				i++
			}
		}
		clear(g.built[:n])
		g.mu.Unlock()
		if fired > 0 {
			// The goroutines just readied wait in this P's run queue;
			// give them the P now rather than after this goroutine's
			// next wait.
			runtime.Gosched()
		}
	}
}
