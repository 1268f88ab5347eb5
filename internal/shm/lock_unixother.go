//go:build unix && !linux

package shm

import "golang.org/x/sys/unix"

// POSIX record locks: owned by the process (see lock.go for the caveats).
const (
	fSetLk = unix.F_SETLK
	fGetLk = unix.F_GETLK
)

// LockKind names the kind of liveness lock this system provides.
const LockKind = "POSIX record lock (fcntl F_SETLK), one ring handle per process"
