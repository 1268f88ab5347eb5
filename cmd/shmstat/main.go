// Command shmstat shows what is inside a live ring without disturbing it:
// its header, its positions, the consumer and every producer slot that was
// used, with whether each peer is alive (its liveness lock is held) and its
// counters. It takes no lock and writes nothing to the ring.
//
//	shmstat orders                  # once (the same as -name orders)
//	shmstat orders -watch 1s        # again every second, with rates
//	shmstat -path /var/run/ring -json
//	shmstat -list                   # the named rings: in use, unused, unfinished;
//	                                # the listeners and their connections
//	shmstat -clean                  # remove those no process has open
//
// Exit status: 0 on success, 1 when the ring cannot be read (missing, not a
// ring, corrupt header), 2 for usage errors.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/ringflag"
	"github.com/shmring/shmring/ring"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shmstat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var loc ringflag.Location
	loc.Register(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per look")
	watch := fs.Duration("watch", 0, "look again every `INTERVAL` until interrupted")
	list := fs.Bool("list", false, "list the named rings and their state, and the listeners with their connections, instead")
	clean := fs.Bool("clean", false, "remove the named rings that no process has open, and list them")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: shmstat [NAME | -name NAME | -path FILE] [-json] [-watch INTERVAL]\n       shmstat -list | -clean [-json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// A ring named without -name, before or among the flags: "shmstat
	// orders -watch 1s".
	if fs.NArg() > 0 {
		named := false
		fs.Visit(func(f *flag.Flag) { named = named || f.Name == "name" || f.Name == "path" })
		if named {
			fmt.Fprintf(stderr, "shmstat: %q: name the ring once, by -name, -path or alone\n", fs.Arg(0))
			return 2
		}
		loc.Name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
	}
	if fs.NArg() > 0 || *watch < 0 {
		fmt.Fprintln(stderr, "shmstat: -watch must be positive, and one ring at most is named")
		return 2
	}
	if *list || *clean {
		return listRings(*clean, *asJSON, stdout, stderr)
	}
	r, err := loc.Open(shmring.WithInitWait(100 * time.Millisecond))
	if err != nil {
		fmt.Fprintf(stderr, "shmstat: %v\n", err)
		return 1
	}
	defer r.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var prev *snapshot
	for {
		st, err := r.Stats()
		if err != nil {
			fmt.Fprintf(stderr, "shmstat: %v\n", err)
			return 1
		}
		snap := &snapshot{Ring: loc.String(), Time: time.Now(), Info: info(r.Info()), Stats: st}
		snap.rates(prev)
		if *asJSON {
			json.NewEncoder(stdout).Encode(snap)
		} else {
			snap.print(stdout)
		}
		if *watch == 0 {
			return 0
		}
		prev = snap
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(*watch):
		}
	}
}

// listRings prints the named rings (-list), with the listeners and their
// connections, or removes the unused ones and prints those (-clean).
func listRings(clean, asJSON bool, stdout, stderr io.Writer) int {
	what, f := "named rings", shmring.List
	if clean {
		what, f = "removed", shmring.RemoveUnused
	}
	rings, err := f()
	if err != nil {
		fmt.Fprintf(stderr, "shmstat: %v\n", err)
		return 1
	}
	var listeners []shmring.ListenerStatus
	if !clean {
		if listeners, err = shmring.Listeners(); err != nil {
			fmt.Fprintf(stderr, "shmstat: %v\n", err)
			return 1
		}
	}
	if asJSON {
		json.NewEncoder(stdout).Encode(withListeners(rings, listeners))
		return 0
	}
	fmt.Fprintf(stdout, "%d %s\n", len(rings), what)
	for _, r := range rings {
		peers := ""
		if s := r.Stats; s != nil {
			alive := 0
			for _, sl := range s.Slots {
				if sl.Alive {
					alive++
				}
			}
			peers = fmt.Sprintf("consumer %s, %d of %d producers alive", peerState(s.Consumer.Attached, s.Consumer.Alive), alive, s.Attached)
			if s.Fanout != nil {
				subs := 0
				for _, sb := range s.Subscribers {
					if sb.Alive {
						subs++
					}
				}
				peers = fmt.Sprintf("fan-out, %d subscribers alive, %d of %d producers alive", subs, alive, s.Attached)
			}
		}
		fmt.Fprintf(stdout, "  %-40s %10d bytes  %-10s  modified %s  %s\n", r.Name, r.Size, r.State, r.Modified.Format(time.RFC3339), peers)
	}
	if clean {
		return 0
	}
	fmt.Fprintf(stdout, "%d listeners\n", len(listeners))
	for _, l := range listeners {
		state := "not listening (closed, or its server died)"
		if l.Listening {
			state = fmt.Sprintf("listening, server pid %d, %d requests waiting", l.ServerPID, l.Waiting)
		}
		conns := fmt.Sprintf("%d connections", len(l.Conns))
		if !l.ConnsListed {
			conns = "connections not listed on this system (Linux lists them from /proc)"
		}
		fmt.Fprintf(stdout, "  %s  %s, %s\n", l.Name, state, conns)
		for _, c := range l.Conns {
			fmt.Fprintf(stdout, "    %s  %-13s  client %s  server %s\n", c.ID, c.State, connEnd(c.Client), connEnd(c.Server))
		}
	}
	return 0
}

// connEnd describes one end of a connection on one line.
func connEnd(e shmring.ConnEndStatus) string {
	uid := "?"
	if e.UID >= 0 {
		uid = fmt.Sprint(e.UID)
	}
	state := "dead"
	switch {
	case e.PID == 0:
		state = "gone"
	case e.Alive:
		state = "alive"
	}
	return fmt.Sprintf("pid %d uid %s %s, wrote %d msgs %d bytes (%d unread)", e.PID, uid, state, e.Messages, e.Bytes, e.Unread)
}

// listed is one element of -list -json: a named ring, and for a
// listener, its connections. A listener closed while connections made
// through it stay open has no ring: its element has the state "closed".
type listed struct {
	shmring.RingStatus
	Listener *shmring.ListenerStatus `json:"listener,omitempty"`
}

func withListeners(rings []shmring.RingStatus, listeners []shmring.ListenerStatus) []listed {
	out := make([]listed, 0, len(rings))
	byName := map[string]*shmring.ListenerStatus{}
	for i := range listeners {
		byName[listeners[i].Name] = &listeners[i]
	}
	for _, r := range rings {
		l := byName[r.Name]
		delete(byName, r.Name)
		out = append(out, listed{RingStatus: r, Listener: l})
	}
	for _, l := range listeners {
		if byName[l.Name] != nil {
			out = append(out, listed{RingStatus: shmring.RingStatus{Name: l.Name, State: "closed"}, Listener: byName[l.Name]})
		}
	}
	return out
}

// snapshot is one look at a ring, as printed and as JSON.
type snapshot struct {
	Ring  string     `json:"ring"`
	Time  time.Time  `json:"time"`
	Info  header     `json:"header"`
	Stats ring.Stats `json:"stats"`
	Lag   uint64     `json:"lag_bytes"` // tail - head: bytes claimed and not yet consumed
	// Rates since the previous look (with -watch), per second.
	MsgsPerSec  float64 `json:"consumed_msgs_per_sec,omitempty"`
	BytesPerSec float64 `json:"consumed_bytes_per_sec,omitempty"`
}

type header struct {
	Capacity      uint64    `json:"capacity"`
	MaxMessage    uint32    `json:"max_message"`
	Slots         uint32    `json:"slots"`
	MultiProducer bool      `json:"multi_producer"`
	Subscribers   uint32    `json:"subscribers,omitempty"` // subscriber lines of a fan-out ring
	UUID          string    `json:"uuid"`
	CreatorPID    uint32    `json:"creator_pid"`
	Created       time.Time `json:"created"`
	Size          uint64    `json:"size"`
}

func info(i ring.Info) header {
	return header{Capacity: i.Capacity, MaxMessage: i.MaxMessage, Slots: i.Slots, MultiProducer: i.MultiProducer, Subscribers: i.Subscribers,
		UUID:       fmt.Sprintf("%x-%x-%x-%x-%x", i.UUID[0:4], i.UUID[4:6], i.UUID[6:8], i.UUID[8:10], i.UUID[10:16]),
		CreatorPID: i.CreatorPID, Created: time.Unix(0, i.CreatedUnixNano), Size: i.Size}
}

func (s *snapshot) rates(prev *snapshot) {
	if s.Stats.Tail >= s.Stats.Head {
		s.Lag = s.Stats.Tail - s.Stats.Head
	}
	if prev == nil {
		return
	}
	dt := s.Time.Sub(prev.Time).Seconds()
	c, p := s.Stats.Consumer, prev.Stats.Consumer
	if dt > 0 && c.Messages >= p.Messages && c.Bytes >= p.Bytes {
		s.MsgsPerSec = float64(c.Messages-p.Messages) / dt
		s.BytesPerSec = float64(c.Bytes-p.Bytes) / dt
	}
}

func (s *snapshot) print(w io.Writer) {
	h, st := s.Info, s.Stats
	kind := "single-producer"
	if h.MultiProducer {
		kind = "multi-producer"
	}
	if h.Subscribers > 0 {
		kind += " fan-out"
	}
	removed := ""
	if st.Removed {
		removed = "  REMOVED (its peers' calls fail with ErrRingRemoved)"
	}
	fmt.Fprintf(w, "%s  %s%s\n", s.Ring, s.Time.Format(time.RFC3339Nano), removed)
	fmt.Fprintf(w, "  %s ring, capacity %d, max message %d, %d slots, uuid %s, created %s by pid %d\n",
		kind, h.Capacity, h.MaxMessage, h.Slots, h.UUID, h.Created.Format(time.RFC3339), h.CreatorPID)
	if st.Fanout != nil {
		fmt.Fprintf(w, "  frontier (head) %d  tail %d  %d bytes readable (%.1f%% of the capacity)\n", st.Head, st.Tail, s.Lag, 100*float64(s.Lag)/float64(h.Capacity))
	} else {
		fmt.Fprintf(w, "  head %d  tail %d  lag %d bytes (%.1f%% full)\n", st.Head, st.Tail, s.Lag, 100*float64(s.Lag)/float64(h.Capacity))
	}
	fmt.Fprintf(w, "  producers attached %d (%d fencing every commit), attaches %d\n", st.Attached, st.Fenced, st.Attaches)
	if f := st.Fanout; f != nil {
		bound := "never"
		if f.EvictAfterNs > 0 {
			bound = time.Duration(f.EvictAfterNs).String()
		}
		fmt.Fprintf(w, "  fan-out: %d subscriber lines, frontier %d (%d messages, %d bytes before it), moved %d times, lag bound %s, evictions %d, subscriber attaches %d\n",
			f.Lines, f.Frontier, f.Messages, f.Bytes, f.Raises, bound, f.Evictions, f.Attaches)
		for _, sb := range st.Subscribers {
			state := "detached"
			if sb.Kind != "free" {
				state = "DEAD    "
				if sb.Alive {
					state = "alive   "
				}
			}
			fmt.Fprintf(w, "  sub %-4d  %-8s %s pid %d  position %d  lag %d bytes  messages %d  bytes %d  lost %d (%d bytes, %d laps)  sleeps %d  wake calls %d  recovered %d  corrupt %d  attaches %d\n",
				sb.Line, sb.Kind, state, sb.PID, sb.Position, sb.Lag, sb.Messages, sb.Bytes, sb.Lost, sb.LostBytes, sb.Laps, sb.Parks, sb.Wakes, sb.Recovered, sb.Corrupt, sb.Generation)
		}
	}
	c := st.Consumer
	if st.Fanout == nil {
		fmt.Fprintf(w, "  consumer  %s pid %d  messages %d  bytes %d  sleeps %d  wake calls %d  recovered %d  dead producers freed %d  corrupt %d\n",
			peerState(c.Attached, c.Alive), c.PID, c.Messages, c.Bytes, c.Parks, c.Wakes, c.Recovered, c.Reaped, c.Corrupt)
	}
	if s.MsgsPerSec > 0 {
		fmt.Fprintf(w, "            %.0f msg/s, %.1f MB/s since the last look\n", s.MsgsPerSec, s.BytesPerSec/1e6)
	}
	for _, sl := range st.Slots {
		claim := "-"
		if sl.ClaimLen > 0 {
			claim = fmt.Sprintf("%d+%d", sl.ClaimPos, sl.ClaimLen)
		}
		fenced := ""
		if sl.Fenced {
			fenced = "  fenced"
		}
		fmt.Fprintf(w, "  slot %-3d  %s pid %d  messages %d  bytes %d  full %d  sleeps %d  wake calls %d  attaches %d  claim %s%s\n",
			sl.Slot, peerState(sl.Attached, sl.Alive), sl.PID, sl.Messages, sl.Bytes, sl.FullWaits, sl.Parks, sl.Wakes, sl.Generation, claim, fenced)
	}
}

func peerState(attached, alive bool) string {
	switch {
	case attached && alive:
		return "alive   "
	case attached:
		return "DEAD    "
	}
	return "detached"
}
