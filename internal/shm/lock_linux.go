package shm

import "golang.org/x/sys/unix"

// Open-file-description locks: owned by the Segment's descriptor, not by the
// process (see lock.go).
const (
	fSetLk = unix.F_OFD_SETLK
	fGetLk = unix.F_OFD_GETLK
)

// LockKind names the kind of liveness lock this system provides.
const LockKind = "OFD byte-range lock (fcntl F_OFD_SETLK)"
