//go:build unix

package shm

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

func tryLock(s *Segment, off int64) (bool, error) { return tryLockType(s.file, off, unix.F_WRLCK) }

func tryLockShared(s *Segment, off int64) (bool, error) {
	return tryLockType(s.file, off, unix.F_RDLCK)
}

func tryLockType(f *os.File, off int64, typ int16) (bool, error) {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: off, Len: 1}
	err := unix.FcntlFlock(f.Fd(), fSetLk, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	return err == nil, err
}

func unlock(s *Segment, off int64) error {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: off, Len: 1}
	return unix.FcntlFlock(s.file.Fd(), fSetLk, &lk)
}

func locked(s *Segment, off int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(s.file.Fd(), fGetLk, &lk); err != nil {
		return false, err
	}
	return lk.Type != unix.F_UNLCK, nil
}
