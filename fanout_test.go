package shmring_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/ring"
)

// A fan-out ring through the root API: reliable and lossy subscribers, the
// wrong reader refused, and a subscriber served from a WaitSet.
func TestFanoutAPI(t *testing.T) {
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithSubscribers(4), shmring.WithCapacity(4096), shmring.WithLagBound(-1))
	skipUnsupported(t, err)
	defer r.Close()
	if _, err := r.Consumer(); !errors.Is(err, shmring.ErrFanout) {
		t.Fatalf("Consumer on a fan-out ring: %v", err)
	}
	if r.Info().Subscribers != 4 {
		t.Fatalf("Info().Subscribers = %d", r.Info().Subscribers)
	}
	rel, err := r.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Close()
	lossy, err := r.Subscribe(shmring.WithLossy())
	if err != nil {
		t.Fatal(err)
	}
	defer lossy.Close()
	if rel.Lossy() || !lossy.Lossy() {
		t.Fatal("Lossy() does not say which is which")
	}
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ws := shmring.NewWaitSet()
	defer ws.Close()
	if err := ws.AddConsumer(rel); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sent := make(chan error, 1)
	go func() {
		time.Sleep(10 * time.Millisecond)
		sent <- p.Send(ctx, []byte("tick"))
	}()
	ready, err := ws.Wait(ctx, nil)
	if serr := <-sent; serr != nil { // and the producer is ours again
		t.Fatal(serr)
	}
	if err != nil || len(ready) != 1 || ready[0].Consumer != rel {
		t.Fatalf("WaitSet: %v, %v", ready, err)
	}
	buf := make([]byte, 100)
	for _, s := range []*shmring.Consumer{rel, lossy} {
		n, err := s.TryRecv(buf)
		if err != nil || string(buf[:n]) != "tick" {
			t.Fatalf("%q, %v", buf[:n], err)
		}
	}
	// The reliable subscriber reads on; the lossy one is lapped.
	ws.Remove(rel)
	for i := range 200 {
		msg := []byte{byte(i), 1, 2, 3, 4, 5, 6, 7}
		if err := p.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if n, err := rel.Recv(ctx, buf); err != nil || buf[0] != byte(i) || n != len(msg) {
			t.Fatalf("reliable subscriber, message %d: %v", i, err)
		}
	}
	_, err = lossy.TryRecv(buf)
	var lost *shmring.LostError
	if !errors.As(err, &lost) || !errors.Is(err, shmring.ErrLost) || lost.Messages == 0 {
		t.Fatalf("lossy subscriber after 200 messages through 4 KiB: %v", err)
	}
	view, err := lossy.TryPeek()
	if err != nil || view[0] != byte(lost.Messages) {
		t.Fatalf("after losing %d, the next message: %v, %v", lost.Messages, view, err)
	}
	if err := lossy.ReleaseChecked(); err != nil {
		t.Fatal(err)
	}
}

// shmstat shows a fan-out ring's subscribers, in text and JSON.
func TestShmstatFanout(t *testing.T) {
	shmstat := command(t, "shmstat")
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithSubscribers(3), shmring.WithCapacity(4096))
	skipUnsupported(t, err)
	defer r.Close()
	rel, err := r.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Close()
	lossy, err := r.Subscribe(shmring.WithLossy())
	if err != nil {
		t.Fatal(err)
	}
	defer lossy.Close()
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	buf := make([]byte, 64)
	for range 100 {
		if err := p.TrySend(buf); err != nil {
			t.Fatal(err)
		}
		rel.TryRecv(buf)
	}
	rel.TryRecv(buf)   // empty: stores its position and counts
	lossy.TryRecv(buf) // lapped: counts its losses
	js := start(t, shmstat, "-name", name, "-json")
	if code := js.wait(t, time.Minute); code != 0 {
		t.Fatalf("shmstat exited %d\n%s", code, js)
	}
	var snap struct {
		Stats ring.Stats `json:"stats"`
	}
	if err := json.Unmarshal(js.stdout.Bytes(), &snap); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	st := snap.Stats
	if st.Fanout == nil || st.Fanout.Lines != 3 || len(st.Subscribers) != 2 {
		t.Fatalf("fan-out %+v, subscribers %+v", st.Fanout, st.Subscribers)
	}
	for _, s := range st.Subscribers {
		switch {
		case !s.Alive:
			t.Fatalf("subscriber %+v not alive", s)
		case s.Kind == "reliable" && s.Messages != 100:
			t.Fatalf("reliable subscriber %+v: want 100 messages", s)
		case s.Kind == "lossy" && (s.Lost == 0 || s.Laps != 1):
			t.Fatalf("lossy subscriber %+v: want its losses", s)
		}
	}
	txt := start(t, shmstat, "-name", name)
	if code := txt.wait(t, time.Minute); code != 0 || !strings.Contains(txt.stdout.String(), "lossy    alive") || !strings.Contains(txt.stdout.String(), "fan-out: 3 subscriber lines") {
		t.Fatalf("shmstat exited %d\n%s", code, txt)
	}
}
