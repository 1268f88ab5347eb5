// Package cpus tells how much CPU this process may use: a waiter that spins
// while the peer it waits for needs the same CPU only delays it.
package cpus

import "sync"

// One reports whether this process may use one CPU at most: its CPU
// affinity allows one CPU, or the CPU bandwidth limit of its control group
// (a container's CPU limit) is one CPU or less. Go's GOMAXPROCS is no
// guide: it is at least 2 under a cgroup limit, and a program may set it to
// 1 on a machine of many idle cores. The answer is computed at the first
// call, and kept.
func One() bool {
	once.Do(func() {
		l := Limit()
		one = affinity() == 1 || (l > 0 && l <= 1)
	})
	return one
}

var (
	once sync.Once
	one  bool
)

// Limit returns the CPU bandwidth limit of this process's control group and
// its ancestors, in CPUs (quota over period, the smallest on the way up), or
// 0 when none is set or it cannot be read. Only Linux has one.
func Limit() float64 { return limit() }
