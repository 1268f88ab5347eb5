//go:build !linux

package cpus

import "runtime"

func limit() float64 { return 0 }

// affinity is the number of CPUs the process may run on: where it cannot
// be asked again, the count at start-up.
func affinity() int { return runtime.NumCPU() }
