// Package osthreads counts the operating-system threads of this process,
// for tests and benchmarks that bound them.
package osthreads

// Count returns the number of OS threads of this process, or -1 where the
// system does not say. Go does not end its threads, so it is also the peak
// so far.
func Count() int { return count() }
