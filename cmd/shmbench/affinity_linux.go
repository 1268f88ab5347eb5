package main

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// setAffinity confines every thread of the process to the first n CPUs of
// its current set. A thread made later is a clone of a confined one and
// inherits the set; so does every process started later.
func setAffinity(n int) (cpus []int, undo func(), err error) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, nil, err
	}
	var set unix.CPUSet
	for cpu := 0; cpu < len(old)*64 && len(cpus) < n; cpu++ {
		if old.IsSet(cpu) {
			set.Set(cpu)
			cpus = append(cpus, cpu)
		}
	}
	if len(cpus) < n {
		return nil, nil, fmt.Errorf("this process may use %d CPUs", old.Count())
	}
	if err := setAll(&set); err != nil {
		setAll(&old)
		return nil, nil, err
	}
	return cpus, func() { setAll(&old) }, nil
}

// setAll sets the CPU set of every thread of the process (sched_setaffinity
// sets one thread's).
func setAll(set *unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}
