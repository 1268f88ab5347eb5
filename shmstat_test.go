package shmring_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/testdir"
	"github.com/shmring/shmring/ring"
)

// TestShmstat looks at a ring with a live consumer and a live producer
// through cmd/shmstat -json, and checks what it reports against what this
// process did. Then the bad inputs.
func TestShmstat(t *testing.T) {
	shmstat := command(t, "shmstat")
	name := ringName(t)
	r, err := shmring.Create(name, shmring.WithCapacity(64<<10), shmring.WithMultiProducer())
	skipUnsupported(t, err)
	defer r.Close()
	c, err := r.Consumer()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for range 10 {
		p.TrySend(make([]byte, 100))
	}
	for range 4 {
		c.TryRecv(make([]byte, 100))
	}
	st := start(t, shmstat, "-name", name, "-json")
	if code := st.wait(t, time.Minute); code != 0 {
		t.Fatalf("shmstat exited %d\n%s", code, st)
	}
	// The name alone, as users type it, and the text form.
	txt := start(t, shmstat, name)
	if code := txt.wait(t, time.Minute); code != 0 || !strings.Contains(txt.stdout.String(), "consumer  alive") {
		t.Fatalf("shmstat NAME exited %d\n%s", code, txt)
	}
	var snap struct {
		Header struct {
			Capacity      uint64 `json:"capacity"`
			MultiProducer bool   `json:"multi_producer"`
		} `json:"header"`
		Stats ring.Stats `json:"stats"`
		Lag   uint64     `json:"lag_bytes"`
	}
	if err := json.Unmarshal(st.stdout.Bytes(), &snap); err != nil {
		t.Fatalf("%v\n%s", err, st)
	}
	s := snap.Stats
	if snap.Header.Capacity != 64<<10 || !snap.Header.MultiProducer || s.Tail != 10*120 || snap.Lag != s.Tail-s.Head {
		t.Fatalf("header %+v, head %d, tail %d, lag %d", snap.Header, s.Head, s.Tail, snap.Lag)
	}
	if !s.Consumer.Attached || !s.Consumer.Alive || s.Consumer.PID != uint32(os.Getpid()) {
		t.Fatalf("consumer %+v", s.Consumer)
	}
	if len(s.Slots) != 1 || !s.Slots[0].Alive || s.Slots[0].Messages != 10 || s.Slots[0].Bytes != 1000 {
		t.Fatalf("slots %+v", s.Slots)
	}

	ls := start(t, shmstat, "-list", "-json")
	if runtime.GOOS == "windows" {
		// Named rings there are kernel objects that live while open.
		if code := ls.wait(t, time.Minute); code != 1 || !strings.Contains(ls.stderr.String(), "not supported") {
			t.Fatalf("shmstat -list on Windows exited %d, want 1 and the reason\n%s", code, ls)
		}
		return
	}
	if code := ls.wait(t, time.Minute); code != 0 {
		t.Fatalf("shmstat -list exited %d\n%s", code, ls)
	}
	var rings []shmring.RingStatus
	if err := json.Unmarshal(ls.stdout.Bytes(), &rings); err != nil {
		t.Fatalf("%v\n%s", err, ls)
	}
	found := false
	for _, rs := range rings {
		if rs.Name == name {
			found = rs.State == "in use" && rs.Stats != nil && rs.Stats.Consumer.Alive
		}
	}
	if !found {
		t.Fatalf("shmstat -list does not show %s in use with its consumer alive:\n%s", name, ls)
	}

	dir := testdir.Make(t)
	notRing := filepath.Join(dir, "not-a-ring")
	os.WriteFile(notRing, []byte(strings.Repeat("x", 8192)), 0o600)
	good := filepath.Join(dir, "good")
	g, err := shmring.CreateFile(good, shmring.WithCapacity(4096))
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	image, _ := os.ReadFile(good)
	version2 := filepath.Join(dir, "version2")
	img := append([]byte(nil), image...)
	img[8] = 2
	os.WriteFile(version2, img, 0o600)
	truncated := filepath.Join(dir, "truncated")
	os.WriteFile(truncated, image[:len(image)/2], 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(good, link)
	for _, tc := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"-name", "shmring-no-such-ring"}, 1, "no such file"},
		{[]string{"-path", notRing}, 1, "bad magic"},
		{[]string{"-name", "a/b"}, 1, "invalid"},
		{[]string{"-path", version2}, 1, "version"},
		{[]string{"-path", truncated}, 1, "wrong size"},
		{[]string{"-path", link}, 1, "symbolic link"},
		{[]string{"-watch", "-1s"}, 2, "-watch"},
		{[]string{"-bogus"}, 2, "flag provided but not defined"},
		{[]string{"shmring-no-such-ring"}, 1, "no such file"},
		{[]string{"a/b"}, 1, "invalid"},
		{[]string{"one", "two"}, 2, "one ring at most"},
		{[]string{"-name", "one", "two"}, 2, "name the ring once"},
		{[]string{"shmring-no-such-ring", "-bogus"}, 2, "flag provided but not defined"},
	} {
		st := start(t, shmstat, tc.args...)
		if code := st.wait(t, time.Minute); code != tc.code || !strings.Contains(st.stderr.String(), tc.says) {
			t.Errorf("%v: exit %d, want %d and %q\n%s", tc.args, code, tc.code, tc.says, st)
		}
	}
}
