//go:build !linux && !windows

package peerwatch

const supported = false

func watch(pid int, fn func()) (func(), error) { return nil, ErrNotSupported }
