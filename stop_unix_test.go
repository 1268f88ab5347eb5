//go:build unix

package shmring_test

import (
	"os"
	"syscall"
)

// stopProcess stops p (SIGSTOP) and returns a function that resumes it;
// ok is false where a process cannot be stopped from outside.
func stopProcess(p *os.Process) (resume func(), ok bool) {
	if p.Signal(syscall.SIGSTOP) != nil {
		return nil, false
	}
	return func() { p.Signal(syscall.SIGCONT) }, true
}
