//go:build unix && !linux

package main

import (
	"fmt"
	"runtime"
)

func setAffinity(n int) ([]int, func(), error) {
	return nil, nil, fmt.Errorf("confining processes to CPUs is not implemented on %s", runtime.GOOS)
}
