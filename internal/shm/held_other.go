//go:build !linux

package shm

import (
	"fmt"
	"runtime"
)

// HeldSupported reports whether Holders can look: only on Linux, which
// lists every process's descriptors in /proc.
const HeldSupported = false

// Holders is not supported here.
func Holders(match func(name string) bool) ([]Held, error) {
	return nil, fmt.Errorf("listing the segments processes hold open: not supported on %s", runtime.GOOS)
}

// OpenHeld is not supported here.
func OpenHeld(h Held, minSize int64) (*Segment, error) {
	return nil, fmt.Errorf("open held segment %s: not supported on %s", h.Name, runtime.GOOS)
}
