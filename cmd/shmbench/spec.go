//go:build unix

package main

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/shmring/shmring/internal/stream"
)

// spec describes one case. The parent passes it to each peer process in the
// environment variable peerEnv, with the peer's own ID and address filled in.
type spec struct {
	Pattern   string        `json:"pattern"`
	Transport string        `json:"transport"`
	Wait      string        `json:"wait,omitempty"`
	Size      int           `json:"size"`
	Producers int           `json:"producers"`
	Duration  time.Duration `json:"duration"`
	Rate      float64       `json:"rate"`
	Addr      string        `json:"addr"`  // socket path, TCP address, or ring name
	Addr2     string        `json:"addr2"` // the ring of requests, for pingpong over shmring
	ID        int           `json:"id"`
	Rings     int           `json:"rings,omitempty"` // manyrings
	// Subscribers is the number of subscribers of a fanout case.
	Subscribers int `json:"subscribers,omitempty"`
}

const peerEnv = "SHMBENCH_PEER"

func (s spec) String() string {
	w := ""
	if s.Wait != "" {
		w = "/" + s.Wait
	}
	return fmt.Sprintf("%s %s%s %dB x%d", s.Pattern, s.Transport, w, s.Size, s.Producers)
}

// result is one row of the output.
type result struct {
	Transport  string         `json:"transport"`
	Wait       string         `json:"wait"`
	Pattern    string         `json:"pattern"`
	Size       int            `json:"size"`
	Producers  int            `json:"producers"`
	Messages   uint64         `json:"messages"`
	Seconds    float64        `json:"seconds"`
	MsgsPerSec float64        `json:"msgs_per_sec"`
	MBPerSec   float64        `json:"mb_per_sec"`
	CPUSeconds float64        `json:"cpu_seconds"`
	LatencyNs  stream.Latency `json:"latency_ns"`
	// manyrings only: the rings waited on, the waiting process's peak OS
	// threads, its context switches per second while idle, and the same
	// before it had any ring or socket (the Go runtime's own).
	Rings                 int      `json:"rings,omitempty"`
	Threads               int      `json:"threads,omitempty"`
	IdleWakeupsPerSec     *float64 `json:"idle_wakeups_per_sec,omitempty"`
	BaselineWakeupsPerSec *float64 `json:"baseline_wakeups_per_sec,omitempty"`
	// fanout only: the subscribers, the slowest one's delivered rate
	// (msgs_per_sec is their mean), the publisher's sending rate, and the
	// messages lossy subscribers reported lost.
	Subscribers         int     `json:"subscribers,omitempty"`
	MinMsgsPerSec       float64 `json:"min_msgs_per_sec,omitempty"`
	PublisherMsgsPerSec float64 `json:"publisher_msgs_per_sec,omitempty"`
	Lost                uint64  `json:"lost"`
}

// Messages: word 0 and the last word hold the sequence number, word 1 the
// producer's id (stream, mpsc) or its send time (lowrate, pingpong). The
// sequence number endSeq ends a stream.
const (
	minSize = 32
	endSeq  = ^uint64(0)
)

var le = binary.LittleEndian

func stamp(msg []byte, seq, word1 uint64) {
	le.PutUint64(msg, seq)
	le.PutUint64(msg[8:], word1)
	le.PutUint64(msg[len(msg)-8:], seq)
}

// check reads a received message's sequence number and word 1, and fails
// unless it has the expected size and its two copies of the sequence agree.
func check(msg []byte, size int) (seq, word1 uint64, err error) {
	if len(msg) != size {
		return 0, 0, fmt.Errorf("message of %d bytes, want %d", len(msg), size)
	}
	seq, word1 = le.Uint64(msg), le.Uint64(msg[8:])
	if last := le.Uint64(msg[size-8:]); last != seq {
		return 0, 0, fmt.Errorf("message %d ends with %d: torn or corrupt", seq, last)
	}
	return seq, word1, nil
}
