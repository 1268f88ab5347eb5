// Package osthreads counts the operating-system threads of this process,
// for tests and benchmarks that bound them.
package osthreads

// Count returns the number of OS threads of this process, or -1 where the
// system does not say. Go does not end its threads, so it is also the peak
// so far.
func Count() int { return count() }

// Switches returns this process's context switches so far, voluntary and
// involuntary (each is one of its threads going to sleep or being
// preempted), or -1 where the system does not say. Over an idle period it
// counts the process's wake-ups.
func Switches() int64 { return switches() }
