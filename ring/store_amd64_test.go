//go:build amd64 && !race && linux

package ring

import (
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// hasPrefetchWrite agrees with the flags the kernel reports for the CPU
// (3dnowprefetch is CPUID 0x80000001 ECX bit 8, PREFETCHW), and the
// prefetches run (PREFETCHW where it says so).
func TestPrefetchWriteDetected(t *testing.T) {
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skipf("no /proc/cpuinfo to compare with: %v", err)
	}
	var flags []string
	for line := range strings.Lines(string(info)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags = strings.Fields(v)
			break
		}
	}
	if flags == nil {
		t.Skip("/proc/cpuinfo lists no flags")
	}
	if want := slices.Contains(flags, "3dnowprefetch"); hasPrefetchWrite != want {
		t.Fatalf("hasPrefetchWrite is %v, the kernel's flags say %v", hasPrefetchWrite, want)
	}
	var line [LineSize]byte
	prefetchRead(unsafe.Pointer(&line[0])) // hints: they must simply return
	if hasPrefetchWrite {
		prefetchWrite(unsafe.Pointer(&line[0]))
	}
}
