//go:build !unix

package shmring_test

import "os"

// stopProcess reports that p cannot be stopped here: Windows has no
// SIGSTOP (suspending every thread of another process is not the same
// thing, and Wine does not do it faithfully).
func stopProcess(p *os.Process) (resume func(), ok bool) { return nil, false }
