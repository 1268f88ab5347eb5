package cpus

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// affinity is the number of CPUs the calling thread may run on now (a
// process confined after it started counts as confined; runtime.NumCPU
// keeps the count at start-up).
func affinity() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return runtime.NumCPU()
	}
	return set.Count()
}

// limit reads the CPU bandwidth limits of the process's cgroup and of its
// ancestors: cpu.max (cgroup v2: "QUOTA PERIOD", or "max PERIOD" for none)
// or cpu.cfs_quota_us and cpu.cfs_period_us (v1, quota -1 for none).
func limit() float64 {
	groups, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	mounts, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return 0
	}
	defer mounts.Close()
	best := 0.0
	sc := bufio.NewScanner(mounts)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		root, mnt := f[3], f[4]
		var path string
		switch {
		case g[0] == "cgroup2":
			path = groupPath(string(groups), func(controllers string) bool { return controllers == "" })
		case g[0] == "cgroup" && hasOption(g[2], "cpu"):
			path = groupPath(string(groups), func(controllers string) bool { return hasOption(controllers, "cpu") })
		default:
			continue
		}
		rel, ok := strings.CutPrefix(path, root)
		if path == "" || !ok {
			continue // the group is not under this mount
		}
		for dir := filepath.Join(mnt, rel); strings.HasPrefix(dir, mnt); dir = filepath.Dir(dir) {
			if l := dirLimit(dir, g[0] == "cgroup2"); l > 0 && (best == 0 || l < best) {
				best = l
			}
			if dir == mnt {
				break
			}
		}
	}
	return best
}

// groupPath finds, in /proc/self/cgroup ("ID:CONTROLLERS:PATH" lines), the
// path of the hierarchy whose controllers match.
func groupPath(groups string, match func(controllers string) bool) string {
	for line := range strings.Lines(groups) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) == 3 && match(parts[1]) {
			return parts[2]
		}
	}
	return ""
}

func hasOption(list, opt string) bool {
	for o := range strings.SplitSeq(list, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// dirLimit is the limit set in one cgroup directory, in CPUs, or 0.
func dirLimit(dir string, v2 bool) float64 {
	if v2 {
		b, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
		if err != nil {
			return 0
		}
		q, p, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
		return ratio(q, p, ok)
	}
	q, err1 := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	p, err2 := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
	return ratio(strings.TrimSpace(string(q)), strings.TrimSpace(string(p)), err1 == nil && err2 == nil)
}

func ratio(quota, period string, ok bool) float64 {
	q, err1 := strconv.ParseFloat(quota, 64)
	p, err2 := strconv.ParseFloat(period, 64)
	if !ok || err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0 // "max", -1, or unreadable: no limit
	}
	return q / p
}
