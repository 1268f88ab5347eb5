//go:build !unix

// Command shmbench measures shmring against sockets, pipes and TCP; it runs
// on Unix systems.
package main

import (
	"fmt"
	"os"
	"runtime"
)

func main() {
	fmt.Fprintf(os.Stderr, "shmbench: not supported on %s yet\n", runtime.GOOS)
	os.Exit(2)
}
