//go:build !unix

package osthreads

func switches() int64 { return -1 }
