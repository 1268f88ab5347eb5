//go:build !linux

package futex

import "os"

// BellsSupported reports whether this system has Bells: Linux only.
func BellsSupported() bool { return false }

// CreateBell fails with ErrNotSupported: Bells are Linux's.
func CreateBell(path string, perm os.FileMode) error { return ErrNotSupported }

// OpenBell fails with ErrNotSupported: Bells are Linux's.
func OpenBell(path string, uid int) (*Bell, error) { return nil, ErrNotSupported }

// look and put are never called: no Bell is made here.
func (b *Bell) look(fd uintptr) bool { return true }
func (b *Bell) put(fd uintptr) bool  { return true }
