// Package callpath finds where the time of calls between two Go processes
// goes, from an execution trace of each (runtime/trace) taken over the
// same calls: a gRPC client and its server, say.
//
// It walks the calls' critical path backwards from the client's calling
// goroutine's last event. Each step of the path is one of:
//
//   - running: a goroutine on the path runs;
//   - ready: it is ready to run and waits for a thread (queued behind
//     other goroutines, or for a thread to be woken for it);
//   - syscall: it is in a system call that is not a sleep ended by the
//     other process (a read, a write, a wake-up call);
//   - handed over: from the other process's write to the reader's return
//     to running: the transport's wake-up (a futex wake, a bell's or a
//     socket's write, to the sleeper's or the poller's return);
//   - asleep: a sleep no write of the other process ended (a timeout).
//
// The walk follows what made each goroutine ready: another goroutine (a
// channel send, a new goroutine), its own yield, the end of its system
// call, or the poller; a sleep or a poller wake-up is traced to the other
// process's last waking system call before it (a futex wake, a bell's
// write or a socket write by the calls' writer: see Analyze). A reader
// that finds a message while spinning, without a system call, has no such
// edge: its spinning counts as its own running and ready time. Both
// traces' clocks must be the same (the monotonic clock, as on Linux).
package callpath

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"golang.org/x/exp/trace"
)

// The root and writer of unary gRPC calls (see Analyze).
const (
	GRPCRoot   = "grpc.(*ClientConn).Invoke"
	GRPCWriter = "google.golang.org/grpc/internal/transport"
)

// Step kinds.
const (
	Running    = "running"
	Ready      = "ready"
	Syscall    = "syscall"
	HandedOver = "handed over"
	Asleep     = "asleep"
)

// A Report says where the path's time went.
type Report struct {
	Span  int64            // nanoseconds the path covers
	Spent map[string]int64 // nanoseconds per "client KIND" and "server KIND"
	// Handovers counts the path's hand-overs into each process ("client"
	// or "server"): one each way per call at least.
	Handovers map[string]int
	// ReadyBy is the ready time per process and per what made the
	// goroutine ready (its first frames outside the runtime).
	ReadyBy map[string]int64
}

// transition is one goroutine state change.
type transition struct {
	t        int64
	g        trace.GoID // the goroutine whose state changed
	from, to trace.GoState
	by       trace.GoID // the goroutine running where it happened
	stack    string     // function names, innermost first, each followed by " < "
}

type process struct {
	name  string
	all   []transition
	byG   map[trace.GoID][]transition // each goroutine's, in time order
	wakes []transition                // system calls that can wake the other process
}

func load(r io.Reader, name, writer string) (*process, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%s trace: %w", name, err)
	}
	p := &process{name: name, byG: map[trace.GoID][]transition{}}
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s trace: %w", name, err)
		}
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		from, to := st.Goroutine()
		var sb strings.Builder
		for f := range ev.Stack().Frames() {
			sb.WriteString(f.Func + " < ")
		}
		x := transition{int64(ev.Time()), st.Resource.Goroutine(), from, to, ev.Goroutine(), sb.String()}
		p.all = append(p.all, x)
		p.byG[x.g] = append(p.byG[x.g], x)
		if to == trace.GoSyscall && wakes(x.stack, writer) {
			p.wakes = append(p.wakes, x)
		}
	}
	if len(p.all) == 0 {
		return nil, fmt.Errorf("%s trace: no goroutine events", name)
	}
	return p, nil
}

// wakes reports whether a system call with this stack can wake a reader
// in the other process: the calls' writer (a function named by writer on
// the stack) writing through a futex wake, a bell's write or a socket's
// write.
func wakes(stack, writer string) bool {
	if !strings.Contains(stack, writer) {
		return false // not the calls' writer (the benchmark's own pipes, say)
	}
	for _, s := range []string{"futex.wake", "(*Bell).Ring", "poll.(*FD).Write", "poll.(*FD).Writev"} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}

// at returns the last of g's transitions at or before t.
func (p *process) at(g trace.GoID, t int64) (transition, bool) {
	l := p.byG[g]
	i := sort.Search(len(l), func(i int) bool { return l[i].t > t }) - 1
	if i < 0 {
		return transition{}, false
	}
	return l[i], true
}

// lastWake returns the process's last waking system call in (lo, hi].
func (p *process) lastWake(lo, hi int64) (transition, bool) {
	i := sort.Search(len(p.wakes), func(i int) bool { return p.wakes[i].t > hi }) - 1
	if i < 0 || p.wakes[i].t <= lo {
		return transition{}, false
	}
	return p.wakes[i], true
}

// maxHandover bounds how long before a poller's wake-up the other process's
// write may be, to be taken as its cause. Generous: on a virtual machine a
// wake-up can take milliseconds (2.3 ms seen, both processes idle
// meanwhile), and in calls made one after another the last write before a
// wake-up is the one it answers.
const maxHandover = 50_000_000 // 50 ms

// Analyze walks the critical path of the calls traced in client and
// server. root names a function on the stack of the client's calling
// goroutine (GRPCRoot for unary gRPC calls), writer a function (or
// package) on the stack of every write that carries the calls (GRPCWriter
// for gRPC; "net/http" for net/http's client and server).
func Analyze(client, server io.Reader, root, writer string) (*Report, error) {
	c, err := load(client, "client", writer)
	if err != nil {
		return nil, err
	}
	s, err := load(server, "server", writer)
	if err != nil {
		return nil, err
	}
	other := map[*process]*process{c: s, s: c}

	// The calling goroutine: the one that most often blocked with root
	// on its stack.
	var g trace.GoID = trace.NoGoroutine
	seen := map[trace.GoID]int{}
	for _, x := range c.all {
		if x.by == x.g && strings.Contains(x.stack, root) {
			if seen[x.g]++; g == trace.NoGoroutine || seen[x.g] > seen[g] {
				g = x.g
			}
		}
	}
	if g == trace.NoGoroutine {
		return nil, fmt.Errorf("no goroutine of the client trace blocks with %s on its stack", root)
	}
	// The end of the last call: when the goroutine next runs after its
	// last block with root on its stack (what it does after the calls,
	// such as stopping the trace, is not theirs).
	calls := c.byG[g]
	end := calls[len(calls)-1].t
	for i := len(calls) - 1; i >= 0; i-- {
		if x := calls[i]; x.by == g && x.from == trace.GoRunning && strings.Contains(x.stack, root) {
			for _, y := range calls[i+1:] {
				if y.to == trace.GoRunning {
					end = y.t
					break
				}
			}
			break
		}
	}

	r := &Report{Spent: map[string]int64{}, Handovers: map[string]int{}, ReadyBy: map[string]int64{}}
	add := func(p *process, kind string, lo, hi int64) {
		r.Spent[p.name+" "+kind] += hi - lo
		r.Span += hi - lo
	}
	// syscall steps back over a system call that ended at x: a sleep that
	// a write of the other process ended is a hand-over from there; any
	// other is the goroutine's own time in the kernel.
	syscall := func(p *process, x transition) (*process, trace.GoID, int64) {
		in, ok := p.at(x.g, x.t-1)
		if !ok || in.to != trace.GoSyscall {
			return p, x.g, x.t - 1
		}
		if strings.Contains(in.stack, "futex.Sleep") || strings.Contains(in.stack, "futex.wait") {
			if w, ok := other[p].lastWake(in.t, x.t); ok {
				add(p, HandedOver, w.t, x.t)
				r.Handovers[p.name]++
				return other[p], w.g, w.t
			}
			add(p, Asleep, in.t, x.t)
			return p, x.g, in.t
		}
		add(p, Syscall, in.t, x.t)
		return p, x.g, in.t
	}

	start := max(c.all[0].t, s.all[0].t)
	p, t := c, end
	for t > start {
		x, ok := p.at(g, t)
		if !ok {
			break
		}
		switch {
		case x.to == trace.GoRunning && x.from == trace.GoSyscall:
			add(p, Running, x.t, t)
			p, g, t = syscall(p, x)
		case x.to == trace.GoRunning:
			add(p, Running, x.t, t)
			y, ok := p.at(g, x.t-1) // ready since when, and by whom?
			if !ok || y.to != trace.GoRunnable {
				t = start
				break
			}
			add(p, Ready, y.t, x.t)
			r.ReadyBy[p.name+": "+short(y.stack)] += x.t - y.t
			t = y.t
			switch {
			case y.from == trace.GoRunning: // it yielded or was preempted
			case y.from == trace.GoSyscall: // its system call ended without a P
				p, g, t = syscall(p, y)
			case y.by != trace.NoGoroutine && y.by != g: // another goroutine readied it
				g = y.by
			default: // the poller (or a timer): a write of the other process?
				if w, ok := other[p].lastWake(y.t-maxHandover, y.t); ok {
					add(p, HandedOver, w.t, y.t)
					r.Handovers[p.name]++
					p, g, t = other[p], w.g, w.t
				} else {
					t = start // nothing to follow
				}
			}
		default:
			t = x.t - 1 // not running at t: step to its previous state
		}
	}
	if r.Span == 0 {
		return nil, errors.New("the traces share no calls (taken at the same time, with the same clock?)")
	}
	return r, nil
}

// AnalyzeFiles is Analyze of the traces in the files client and server.
func AnalyzeFiles(client, server, root, writer string) (*Report, error) {
	c, err := os.Open(client)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	s, err := os.Open(server)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return Analyze(c, s, root, writer)
}

// short names a stack by its first frames outside the runtime.
func short(stack string) string {
	var out []string
	for f := range strings.SplitSeq(stack, " < ") {
		if f == "" || strings.HasPrefix(f, "runtime.") {
			continue
		}
		if i := strings.LastIndex(f, "/"); i >= 0 {
			f = f[i+1:]
		}
		if out = append(out, f); len(out) == 3 {
			break
		}
	}
	if len(out) == 0 {
		return "(the scheduler or the poller)"
	}
	return strings.Join(out, " < ")
}

// Print writes r per call, for calls calls: the time per kind of step in
// each process, then the largest ready times by what made the goroutine
// ready.
func (r *Report) Print(w io.Writer, calls int) {
	per := func(ns int64) float64 { return float64(ns) / float64(calls) / 1000 }
	fmt.Fprintf(w, "critical path: %.1f ms over %d calls, %.1f µs a call\n", float64(r.Span)/1e6, calls, per(r.Span))
	keys := slices.Sorted(maps.Keys(r.Spent))
	for _, k := range keys {
		fmt.Fprintf(w, "  %-22s %8.1f µs  %5.1f%%\n", k, per(r.Spent[k]), 100*float64(r.Spent[k])/float64(r.Span))
	}
	fmt.Fprintf(w, "  hand-overs a call: to the server %.2f, to the client %.2f\n",
		float64(r.Handovers["server"])/float64(calls), float64(r.Handovers["client"])/float64(calls))
	keys = slices.SortedFunc(maps.Keys(r.ReadyBy), func(a, b string) int { return cmp.Compare(r.ReadyBy[b], r.ReadyBy[a]) })
	fmt.Fprintln(w, "ready time by what made the goroutine ready:")
	for _, k := range keys[:min(len(keys), 8)] {
		fmt.Fprintf(w, "  %8.1f µs  %s\n", per(r.ReadyBy[k]), k)
	}
}
