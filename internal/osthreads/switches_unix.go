//go:build unix

package osthreads

import "syscall"

func switches() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return int64(ru.Nvcsw) + int64(ru.Nivcsw)
}
