// Package peerwatch tells a waiter that another process has ended, as an
// event rather than by looking every so often.
//
// A ring's sleeper must notice a peer's death (a producer that died inside a
// claim, a consumer that will never make room), and it must not wake on a
// timer to find out: a process waiting on a thousand idle rings would then
// wake thousands of times a second. On Linux (5.3 and later) Watch opens a
// pidfd for the process, which Go's network poller waits on with no thread
// of its own; the pidfd turns readable when the process has exited, after
// the kernel has closed its files and so released its locks. On Windows it
// waits on a process handle, which the system signals when the process has
// ended (one thread per watched process). Elsewhere Watch returns
// ErrNotSupported and callers keep looking on a timer.
//
// A PID is only a hint: it may name a process that has ended and been
// replaced. Callers take the event as a reason to look at their peers'
// locks (the proof of death), and look once after they start watching, so a
// death before the watch began is not missed.
package peerwatch

import "errors"

// ErrNotSupported is returned by Watch where processes cannot be watched.
var ErrNotSupported = errors.New("peerwatch: watching a process is not supported here")

// Watch calls fn once, from another goroutine, when the process pid has
// ended; if no process pid exists now it calls fn before it returns (or,
// for a process that has ended but whose object the system still keeps, as
// Windows may, at once from another goroutine). The
// returned stop ends the watch: once it returns fn is neither running nor
// called later. fn must not call Watch or stop.
//
// Watches of one process share one pidfd and one goroutine (parked in the
// network poller), closed when the last watch of it stops.
func Watch(pid int, fn func()) (stop func(), err error) {
	return watch(pid, fn)
}

// Supported reports whether Watch works here.
func Supported() bool { return supported }
