//go:build !unix

package shmring_test

import (
	"fmt"
	"os"
)

// hostileDialerChild needs a connection's rings to be files it can keep
// open and write (TestConnHostileClient runs on Unix systems).
func hostileDialerChild() int {
	fmt.Fprintln(os.Stderr, "the hostile dialer runs where rings are files")
	return 2
}
