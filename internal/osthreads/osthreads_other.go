//go:build !linux && !windows

package osthreads

func count() int { return -1 }
