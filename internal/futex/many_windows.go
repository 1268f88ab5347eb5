package futex

import (
	"time"

	"golang.org/x/sys/windows"
)

// On Windows a group waits with WaitForMultipleObjects on at most 64
// handles: its control event and the semaphores of 63 words (package
// comment, futex_windows.go). Each watcher holds a duplicate of its word's
// semaphore handle, so that a ring closing its semaphores never closes a
// handle a pending wait holds (which Windows leaves undefined); the group
// closes the duplicate once no wait holds it.
//
// Every Sleep goes through a group here: the alarm that ends a sleep early
// is a channel, which only a sleep in Go can select on.

const groupSize = 63

var manyAvailable = true

// directLimit: no sleeper waits on a thread of its own on Windows.
const directLimit = 0

type groupSys struct {
	ctl  windows.Handle // auto-reset event
	hs   [groupSize + 1]windows.Handle
	dead []windows.Handle // duplicates of removed watchers', closed after the wait
	look time.Duration    // the next wait's bound, then a look at every word
}

type watcherSys struct {
	h windows.Handle // a duplicate of the word's semaphore
}

func (w *Watcher) prepare() bool {
	sem, err := semaphore(w.addr)
	if err != nil {
		return false
	}
	cur := windows.CurrentProcess()
	return windows.DuplicateHandle(cur, sem, cur, &w.sys.h, 0, false, windows.DUPLICATE_SAME_ACCESS) == nil
}

func (w *Watcher) release() { windows.CloseHandle(w.sys.h) }

func (s *groupSys) init() bool {
	h, err := windows.CreateEvent(nil, 0, 0, nil)
	s.ctl = h
	return err == nil
}

func (s *groupSys) close() {
	s.waited()
	windows.CloseHandle(s.ctl)
}

func (s *groupSys) removed(w *Watcher) { s.dead = append(s.dead, w.sys.h) }

func (s *groupSys) waited() {
	for _, h := range s.dead {
		windows.CloseHandle(h)
	}
	clear(s.dead)
	s.dead = s.dead[:0]
}

func (s *groupSys) kick() { windows.SetEvent(s.ctl) }

func (s *groupSys) build(ws []*Watcher) {
	s.hs[0] = s.ctl
	for i, w := range ws {
		s.hs[1+i] = w.sys.h
	}
}

// wait returns the index of the word whose semaphore let it through, or -1
// and scan true. A word that moves while the thread is away leaves a count
// in its semaphore, which the next wait takes, unless a sleeper elsewhere on
// the same word takes it first (futex_windows.go): so a wait that sees no
// count ends after look, and the group looks at every word (63 at most);
// look starts at firstLook after each wake-up and doubles while nothing
// comes, up to lastLook. The look at every word after a kick is cheap
// insurance too.
func (s *groupSys) wait(n int) (woken int, scan bool) {
	if s.look == 0 {
		s.look = firstLook
	}
	ev, err := windows.WaitForMultipleObjects(s.hs[:1+n], false, uint32(s.look/time.Millisecond))
	if err != nil {
		time.Sleep(time.Millisecond) // should not happen: do not spin on it
		return -1, true
	}
	if ev == uint32(windows.WAIT_TIMEOUT) {
		s.look = nextLook(s.look)
		return -1, true
	}
	s.look = firstLook
	if i := int(ev) - windows.WAIT_OBJECT_0; i >= 1 && i <= n {
		return i - 1, false
	}
	return -1, true
}

// waitAlarm is not used on Windows (directLimit is 0); alarms are channels.
func waitAlarm(addr *uint32, val uint32, timeout time.Duration, a *Alarm, av uint32, give bool) error {
	return wait(addr, val, timeout)
}

func wakePrivate(addr *uint32) {}
