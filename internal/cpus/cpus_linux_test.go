package cpus

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestMain lets the test binary run as a child that prints what it finds.
func TestMain(m *testing.M) {
	if os.Getenv("CPUS_TEST_CHILD") != "" {
		fmt.Println(Limit(), One())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestLimitInCgroup puts a child process in a real control group with a
// CPU limit (cgroup v1's cpu controller, or v2's cpu.max) and checks what
// it reads: 0.5 and 1 CPU are one CPU, 1.5 is not.
func TestLimitInCgroup(t *testing.T) {
	dir, v2 := makeGroup(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		quota int
		limit string
		one   string
	}{{50000, "0.5", "true"}, {100000, "1", "true"}, {150000, "1.5", "false"}} {
		if v2 {
			err = os.WriteFile(filepath.Join(dir, "cpu.max"), fmt.Appendf(nil, "%d 100000", tc.quota), 0)
		} else {
			err = os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("100000"), 0)
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(tc.quota)), 0)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$1"`, dir, exe)
		cmd.Env = append(os.Environ(), "CPUS_TEST_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		if got, want := strings.TrimSpace(string(out)), tc.limit+" "+tc.one; got != want {
			t.Errorf("quota %d/100000: child read %q, want %q", tc.quota, got, want)
		}
	}
}

// makeGroup makes a control group with the cpu controller under this
// process's mounts, removed at the end, or skips when the machine does not
// let this process make one.
func makeGroup(t *testing.T) (dir string, v2 bool) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no /proc/self/mountinfo: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, _ := strings.Cut(sc.Text(), " - ")
		fs, g := strings.Fields(pre), strings.Fields(post)
		if len(fs) < 5 || len(g) < 3 {
			continue
		}
		switch {
		case g[0] == "cgroup" && hasOption(g[2], "cpu"):
		case g[0] == "cgroup2":
			// Only where the root already hands the cpu controller to
			// its children: the test changes no system setting.
			if b, err := os.ReadFile(filepath.Join(fs[4], "cgroup.subtree_control")); err != nil || !hasOption(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", ","), "cpu") {
				continue
			}
			v2 = true
		default:
			continue
		}
		dir = filepath.Join(fs[4], fmt.Sprintf("shmring-cpus-test-%d", os.Getpid()))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("cannot make a control group here (%v): needs root and a writable cgroup file system", err)
		}
		t.Cleanup(func() { os.Remove(dir) })
		return dir, v2
	}
	t.Skip("no cgroup file system with the cpu controller is mounted")
	return "", false
}
