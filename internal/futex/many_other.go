//go:build !linux && !windows

package futex

import "time"

// manyAvailable is false: Sleep waits on a thread of its own (Windows) or
// polls (other systems, where Wait holds no thread), and Watch polls.
const manyAvailable = false

// watcherImpl: without futex_waitv every watch polls its word.
type watcherImpl struct {
	poll *pollWatch
}

func watch(w *Watcher) { watchPolling(w) }

func cancel(w *Watcher) bool { return w.poll.cancel() }

func waitAlarm(addr *uint32, val uint32, timeout time.Duration, a *Alarm, av uint32, give bool) error {
	return wait(addr, val, timeout)
}

func wakePrivate(addr *uint32) {}

const directLimit = 0

// groupSize: no shared threads here; each watch polls on its own.
const groupSize = 1
