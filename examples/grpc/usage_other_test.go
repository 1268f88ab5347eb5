//go:build !unix

package echo_test

import "time"

// osUsage reports nothing where there is no getrusage.
func osUsage() (time.Duration, int64) { return 0, 0 }
