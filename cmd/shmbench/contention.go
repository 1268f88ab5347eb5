//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

// Contention as a condition of a run: -cpus N confines every process of the
// run to N CPUs, -load N runs N busy threads beside each case.

// loadEnv makes the process a load process of that many busy threads.
const loadEnv = "SHMBENCH_LOAD"

// spins keeps the busy loops' work observable, so no compiler drops it.
var spins atomic.Uint64

// loadMain spins n threads at normal priority until killed.
func loadMain(n int) int {
	runtime.GOMAXPROCS(n)
	for range n - 1 {
		go busy()
	}
	busy()
	return 0
}

func busy() {
	for i := uint64(0); ; i++ {
		if i%(1<<20) == 0 {
			spins.Add(1)
		}
	}
}

// startLoad starts a process of n busy threads (none when n is 0), which
// inherits this process's CPUs; stop kills it. Its CPU time is not counted
// in any case's figures.
func startLoad(n int) (stop func(), err error) {
	if n == 0 {
		return func() {}, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), loadEnv+"="+strconv.Itoa(n))
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, err
	}
	// Let its threads start spinning before the case begins.
	time.Sleep(20 * time.Millisecond)
	return func() { cancel(); cmd.Wait() }, nil
}

// confine restricts every thread of this process, and so every process it
// starts afterwards, to the first n CPUs it may use now, and sets GOMAXPROCS
// to n; undo puts both back. n of 0 changes nothing.
func confine(n int) (cpus []int, undo func(), err error) {
	if n == 0 {
		return nil, func() {}, nil
	}
	if n < 0 {
		return nil, nil, fmt.Errorf("-cpus %d: want a number of CPUs", n)
	}
	cpus, undoAffinity, err := setAffinity(n)
	if err != nil {
		return nil, nil, fmt.Errorf("-cpus %d: %w", n, err)
	}
	procs := runtime.GOMAXPROCS(n)
	return cpus, func() {
		undoAffinity()
		runtime.GOMAXPROCS(procs)
	}, nil
}
