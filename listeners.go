package shmring

import (
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/shmring/shmring/internal/shm"
	"github.com/shmring/shmring/ring"
)

// ListenerStatus describes a listener and the connections made through
// it, as Listeners finds them.
type ListenerStatus struct {
	Name string `json:"name"`
	// Listening: the listener's ring is there and a live server is its
	// consumer. A listener that was closed while connections made
	// through it stay open is listed for those, not listening.
	Listening bool `json:"listening"`
	ServerPID int  `json:"server_pid,omitempty"`
	// Waiting counts the connect requests in the listener's ring that
	// the server has not taken yet, as of the position it last published
	// (it may publish lazily: one taken may still count).
	Waiting uint64 `json:"waiting"`
	// Conns are the connections whose rings some process holds open, in
	// id order. ConnsListed is false where the system does not let one
	// process see what others hold open (only Linux does, in /proc): then
	// Conns is empty whatever there is.
	Conns       []ConnStatus `json:"connections"`
	ConnsListed bool         `json:"connections_listed"`
}

// ConnStatus describes one connection.
type ConnStatus struct {
	ID string `json:"id"` // 32 hex digits, as in its rings' names
	// State is "pending" (dialed, not yet accepted: its rings still have
	// names), "open", "client closed" or "server closed" (that end closed
	// its writing half: Close or CloseWrite), "closed" (both did, and
	// some process still holds a ring), "client dead" or "server dead"
	// (that process died: its liveness lock is free).
	State  string        `json:"state"`
	Client ConnEndStatus `json:"client"`
	Server ConnEndStatus `json:"server"`
}

// ConnEndStatus describes one end of a connection.
type ConnEndStatus struct {
	PID int `json:"pid"`
	// UID is the user of the process, as the kernel reports it (-1 when
	// it cannot be seen: another user's process, unless running as root).
	UID   int  `json:"uid"`
	Alive bool `json:"alive"` // its liveness locks are held
	// Writing: its writing half is open.
	Writing bool `json:"writing"`
	// Messages and Bytes it wrote, and Unread the bytes of records the
	// other end has not read yet, as of the position the reader last
	// published (it may publish lazily).
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	Unread   uint64 `json:"unread_bytes"`
}

// Listeners describes the listeners (the named rings Listen makes, found
// by their shape: multi-producer, 64 slots, 32-byte messages) and, on
// Linux, the connections made through them, found in /proc among the files
// processes hold open, accepted ones included (their rings have no names).
// Only the processes this one may inspect are seen: the same user's, or
// every one for root. Like List, it returns ErrNotSupported on Windows.
func Listeners() ([]ListenerStatus, error) {
	rings, err := List()
	if err != nil {
		return nil, err
	}
	byName := map[string]*ListenerStatus{}
	get := func(name string) *ListenerStatus {
		l := byName[name]
		if l == nil {
			l = &ListenerStatus{Name: name, ConnsListed: shm.HeldSupported, Conns: []ConnStatus{}}
			byName[name] = l
		}
		return l
	}
	for _, r := range rings {
		if !r.listener || r.Stats == nil {
			continue
		}
		l, st := get(r.Name), r.Stats
		l.Listening = r.State == stateInUse && st.Consumer.Attached && st.Consumer.Alive
		if st.Consumer.Attached {
			l.ServerPID = int(st.Consumer.PID)
		}
		if st.Tail >= st.Head {
			l.Waiting = (st.Tail - st.Head) / requestRecord
		}
	}
	if shm.HeldSupported {
		conns, err := heldConns()
		if err != nil {
			return nil, err
		}
		for _, c := range conns {
			l := get(c.listener)
			l.Conns = append(l.Conns, c.ConnStatus)
		}
	}
	out := make([]ListenerStatus, 0, len(byName))
	for _, l := range byName {
		sort.Slice(l.Conns, func(i, j int) bool { return l.Conns[i].ID < l.Conns[j].ID })
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// requestRecord is the size of a connect request's record in the
// listener's ring (8 bytes of record header, 32 of request, rounded up).
const requestRecord = 48

// isListenerShape reports whether a ring has the shape Listen gives it.
func isListenerShape(i ring.Info) bool {
	return i.MultiProducer && i.Slots == dialSlots && i.MaxMessage == handshakeSize
}

// parseConnName splits the name of a connection's ring,
// <listener>.<32 hex digits>.<c|s>.
func parseConnName(name string) (listener, id string, up, ok bool) {
	base, dir, found := cutLast(name, ".")
	if !found || (dir != "c" && dir != "s") {
		return "", "", false, false
	}
	listener, id, found = cutLast(base, ".")
	if !found || listener == "" || len(id) != 32 || strings.ToLower(id) != id {
		return "", "", false, false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false, false
	}
	return listener, id, dir == "c", true
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// listedConn is a connection and the listener it was made through.
type listedConn struct {
	listener string
	ConnStatus
}

// heldConns finds the connections whose rings processes hold open.
func heldConns() ([]listedConn, error) {
	held, err := shm.Holders(func(name string) bool {
		_, _, _, ok := parseConnName(name)
		return ok
	})
	if err != nil {
		return nil, fmt.Errorf("listing connections on %s: %w", runtime.GOOS, err)
	}
	type key struct{ listener, id string }
	type found struct {
		up, down   *shm.Held // one holder of each ring
		pending    bool      // a ring still has its name
		owner      int       // the up ring's owner: the client's user
		processUID map[int]int
	}
	conns := map[key]*found{}
	for i := range held {
		h := &held[i]
		listener, id, up, _ := parseConnName(h.Name)
		k := key{listener, id}
		f := conns[k]
		if f == nil {
			f = &found{owner: -1, processUID: map[int]int{}}
			conns[k] = f
		}
		if up {
			f.up, f.owner = h, h.Owner
		} else {
			f.down = h
		}
		f.pending = f.pending || !h.Deleted
		f.processUID[h.PID] = h.UID
	}
	var out []listedConn
	for k, f := range conns {
		c := ConnStatus{ID: k.id, Client: ConnEndStatus{UID: -1}, Server: ConnEndStatus{UID: -1}}
		upStats, upErr := heldStats(f.up)
		downStats, downErr := heldStats(f.down)
		if upErr != nil && downErr != nil {
			continue // both gone since the scan, or not rings
		}
		// The up ring: the client writes, the server reads; the down
		// ring the other way. An end is alive when it is attached to
		// something and every lock of it that is marked attached is held.
		roles := map[*ConnEndStatus][2]int{} // attached, alive
		role := func(e *ConnEndStatus, pid uint32, alive bool) {
			e.PID = int(pid)
			r := roles[e]
			r[0]++
			if alive {
				r[1]++
			}
			roles[e] = r
		}
		fill := func(writer, reader *ConnEndStatus, st *ring.Stats) {
			if st == nil || len(st.Slots) == 0 {
				return
			}
			w := st.Slots[0]
			if w.Attached {
				writer.Writing = true
				role(writer, w.PID, w.Alive)
			}
			writer.Messages, writer.Bytes = w.Messages, w.Bytes
			if st.Tail >= st.Head {
				writer.Unread = st.Tail - st.Head
			}
			if st.Consumer.Attached {
				role(reader, st.Consumer.PID, st.Consumer.Alive)
			}
		}
		fill(&c.Client, &c.Server, upStats)
		fill(&c.Server, &c.Client, downStats)
		for e, r := range roles {
			e.Alive = r[0] > 0 && r[0] == r[1]
		}
		for _, e := range []*ConnEndStatus{&c.Client, &c.Server} {
			if uid, ok := f.processUID[e.PID]; ok {
				e.UID = uid
			}
		}
		if c.Client.UID < 0 {
			c.Client.UID = f.owner // the kernel made the client the owner
		}
		c.State = connState(f.pending, upStats, downStats)
		out = append(out, listedConn{listener: k.listener, ConnStatus: c})
	}
	return out, nil
}

// heldStats reads the stats of the ring h's process holds, or nil.
func heldStats(h *shm.Held) (*ring.Stats, error) {
	if h == nil {
		return nil, errors.New("no process holds it")
	}
	seg, err := shm.OpenHeld(*h, ring.HeaderSize)
	if err != nil {
		return nil, err
	}
	defer seg.Close()
	r, err := attach(seg)
	if err != nil {
		return nil, err
	}
	st, err := stats(r)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// connState names a connection's state from its two rings' stats (either
// may be nil: not found).
func connState(pending bool, up, down *ring.Stats) string {
	// Death first: an end marked attached to either ring with its lock
	// free.
	dead := func(writer *ring.Stats, reader *ring.Stats) bool {
		return writer != nil && len(writer.Slots) > 0 && writer.Slots[0].Attached && !writer.Slots[0].Alive ||
			reader != nil && reader.Consumer.Attached && !reader.Consumer.Alive
	}
	switch {
	case dead(up, down):
		return "client dead"
	case dead(down, up):
		return "server dead"
	case pending:
		return "pending"
	}
	writing := func(st *ring.Stats) bool { return st != nil && len(st.Slots) > 0 && st.Slots[0].Attached }
	switch cw, sw := writing(up), writing(down); {
	case cw && sw:
		return "open"
	case sw:
		return "client closed"
	case cw:
		return "server closed"
	}
	return "closed"
}
