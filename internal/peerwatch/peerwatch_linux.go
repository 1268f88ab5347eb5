package peerwatch

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// procSys is a pidfd, which Go's network poller waits on.
type procSys struct{ f *os.File }

// supported: pidfd_open works here and its descriptor is pollable (a
// seccomp filter or an old kernel may say no).
var supported = func() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), unix.PIDFD_NONBLOCK)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	return f.SetReadDeadline(time.Time{}) == nil // only pollable files take deadlines
}()

// open opens a pidfd for pid; gone reports that no such process exists.
func open(pid int) (s procSys, gone bool, err error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return s, true, nil
	}
	if err != nil {
		return s, false, err
	}
	return procSys{f: os.NewFile(uintptr(fd), "pidfd")}, false, nil
}

// wait parks in the network poller until the pidfd is readable (the process
// ended) or closed (stop).
func (s procSys) wait() {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err != nil || n > 0
	})
}

func (s procSys) stop()  { s.f.Close() }
func (s procSys) close() { s.f.Close() }
