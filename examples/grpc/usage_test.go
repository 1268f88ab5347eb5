package echo_test

import (
	"fmt"
	"runtime/metrics"
	"testing"
	"time"
)

// usage is what one process has spent so far: the processor time the
// kernel charged it, its thread switches, and the goroutines it started.
// (Where a call's time goes between the processes: package callpath.)
type usage struct {
	cpu        time.Duration // user + system
	switches   int64         // voluntary + involuntary
	goroutines uint64        // started
}

func usageNow() (u usage) {
	u.cpu, u.switches = osUsage()
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		u.goroutines = s[0].Value.Uint64()
	}
	return u
}

func (u usage) String() string {
	return fmt.Sprintf("%d %d %d", u.cpu, u.switches, u.goroutines)
}

func parseUsage(line string) (u usage, err error) {
	_, err = fmt.Sscanf(line, "%d %d %d", &u.cpu, &u.switches, &u.goroutines)
	return u, err
}

func (u usage) sub(v usage) usage {
	return usage{u.cpu - v.cpu, u.switches - v.switches, u.goroutines - v.goroutines}
}

// report adds u per op to b's results under the given prefix.
func (u usage) report(b *testing.B, prefix string) {
	n := float64(b.N)
	b.ReportMetric(float64(u.cpu.Nanoseconds())/n, prefix+"-cpu-ns/op")
	b.ReportMetric(float64(u.switches)/n, prefix+"-switches/op")
	b.ReportMetric(float64(u.goroutines)/n, prefix+"-goroutines/op")
}
