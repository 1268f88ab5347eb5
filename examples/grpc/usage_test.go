package echo_test

import (
	"fmt"
	"math"
	"runtime/metrics"
	"testing"
	"time"
)

// usage is what one process has spent so far: the processor time the
// kernel charged it, its thread switches, and from Go's runtime the
// goroutines it started and how long goroutines waited, ready to run,
// for a thread to run them (each such wait is one hand-off: a goroutine
// made runnable by another, or by the poller, and then scheduled).
type usage struct {
	cpu        time.Duration // user + system
	switches   int64         // voluntary + involuntary
	goroutines uint64        // started
	handoffs   uint64        // scheduler latencies recorded
	schedWait  time.Duration // their sum (from the histogram's buckets)
}

func usageNow() (u usage) {
	u.cpu, u.switches = osUsage()
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}, {Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		u.goroutines = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindFloat64Histogram {
		h := s[1].Value.Float64Histogram()
		var sum float64
		for i, n := range h.Counts {
			lo, hi := h.Buckets[i], h.Buckets[i+1]
			if math.IsInf(lo, -1) {
				lo = 0
			}
			if math.IsInf(hi, 1) {
				hi = lo
			}
			u.handoffs += n
			sum += float64(n) * (lo + hi) / 2
		}
		u.schedWait = time.Duration(sum * 1e9)
	}
	return u
}

func (u usage) String() string {
	return fmt.Sprintf("%d %d %d %d %d", u.cpu, u.switches, u.goroutines, u.handoffs, u.schedWait)
}

func parseUsage(line string) (u usage, err error) {
	_, err = fmt.Sscanf(line, "%d %d %d %d %d", &u.cpu, &u.switches, &u.goroutines, &u.handoffs, &u.schedWait)
	return u, err
}

func (u usage) sub(v usage) usage {
	return usage{u.cpu - v.cpu, u.switches - v.switches, u.goroutines - v.goroutines, u.handoffs - v.handoffs, u.schedWait - v.schedWait}
}

// report adds u per op to b's results under the given prefix.
func (u usage) report(b *testing.B, prefix string) {
	n := float64(b.N)
	b.ReportMetric(float64(u.cpu.Nanoseconds())/n, prefix+"-cpu-ns/op")
	b.ReportMetric(float64(u.switches)/n, prefix+"-switches/op")
	b.ReportMetric(float64(u.goroutines)/n, prefix+"-goroutines/op")
	b.ReportMetric(float64(u.handoffs)/n, prefix+"-handoffs/op")
	b.ReportMetric(float64(u.schedWait.Nanoseconds())/n, prefix+"-schedwait-ns/op")
}
