//go:build !linux

package futex

import (
	"os"
	"time"
)

// A Bell is Linux's (see bell_linux.go); none can be made here.
type Bell struct{}

// BellsSupported reports whether this system has Bells: Linux only.
func BellsSupported() bool { return false }

// CreateBell fails with ErrNotSupported: Bells are Linux's.
func CreateBell(path string, perm os.FileMode) error { return ErrNotSupported }

// OpenBell fails with ErrNotSupported: Bells are Linux's.
func OpenBell(path string, uid int) (*Bell, error) { return nil, ErrNotSupported }

// Sleep fails with ErrNotSupported.
func (b *Bell) Sleep(addr *uint32, val uint32, timeout time.Duration, a *Alarm, av uint32) error {
	return ErrNotSupported
}

// Ring does nothing.
func (b *Bell) Ring() {}

// Interrupt does nothing.
func (b *Bell) Interrupt() {}

// Close does nothing.
func (b *Bell) Close() error { return nil }
