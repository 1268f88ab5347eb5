//go:build unix

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// machine describes where the figures were measured.
type machine struct {
	CPUModel string `json:"cpu_model"`
	CPUs     int    `json:"cpus"`
	OS       string `json:"os"`
	Kernel   string `json:"kernel"`
	Arch     string `json:"arch"`
	Go       string `json:"go"`
	Date     string `json:"date"`
	// CPUsLimit is -cpus: every process of every case ran on these
	// CPUSet CPUs only (0: no limit). Load is -load: busy threads that ran
	// beside each case.
	CPUsLimit int   `json:"cpus_limit"`
	CPUSet    []int `json:"cpu_set,omitempty"`
	Load      int   `json:"load"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version(),
		Date: time.Now().UTC().Format(time.RFC3339)}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func printTable(w io.Writer, m machine, rs []result) {
	cond := "free cores"
	if m.CPUsLimit > 0 {
		cond = fmt.Sprintf("every process on CPUs %v", m.CPUSet)
	}
	if m.Load > 0 {
		cond += fmt.Sprintf(", %d busy threads beside each case", m.Load)
	}
	fmt.Fprintf(w, "%s, %d CPUs, %s %s/%s, %s, %s; %s\n\n", m.CPUModel, m.CPUs, m.OS, m.Kernel, m.Arch, m.Go, m.Date, cond)
	fmt.Fprintf(w, "%-9s %-15s %-11s %7s %3s %14s %10s %10s %10s %10s %10s %7s\n",
		"pattern", "transport", "wait", "size", "n", "msgs/s", "MB/s", "p50", "p99", "p99.9", "max", "cpu-s")
	for _, r := range rs {
		lat := func(ns int64) string {
			if r.LatencyNs.Max == 0 {
				return "-"
			}
			return time.Duration(ns).String()
		}
		extra := ""
		if r.Rings > 0 && r.IdleWakeupsPerSec != nil {
			extra = fmt.Sprintf("  rings %d, threads %d, idle wake-ups %.1f/s", r.Rings, r.Threads, *r.IdleWakeupsPerSec)
			if r.BaselineWakeupsPerSec != nil {
				extra += fmt.Sprintf(" (%.1f/s before any ring)", *r.BaselineWakeupsPerSec)
			}
		}
		if r.Subscribers > 0 {
			extra = fmt.Sprintf("  %d subscribers: slowest %.0f msgs/s, publisher %.0f msgs/s, lost %d", r.Subscribers, r.MinMsgsPerSec, r.PublisherMsgsPerSec, r.Lost)
		}
		fmt.Fprintf(w, "%-9s %-15s %-11s %7d %3d %14.0f %10.1f %10s %10s %10s %10s %7.2f%s\n",
			r.Pattern, r.Transport, r.Wait, r.Size, r.Producers, r.MsgsPerSec, r.MBPerSec,
			lat(r.LatencyNs.P50), lat(r.LatencyNs.P99), lat(r.LatencyNs.P999), lat(r.LatencyNs.Max), r.CPUSeconds, extra)
	}
}
