//go:build linux && amd64

package shmring_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// build386Producer builds cmd/producer as a 32-bit (linux/386) program,
// which an amd64 Linux kernel runs natively.
func build386Producer(t *testing.T) string {
	t.Helper()
	buildCommands(t)
	bin := filepath.Join(build.dir, "producer-386")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/producer")
	cmd.Env = append(cmd.Environ(), "GOARCH=386", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build for 386: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "-h").CombinedOutput(); len(out) == 0 {
		t.Skipf("this kernel cannot run 32-bit programs: %v", err)
	}
	return bin
}

// TestMixedArchExchange passes verified messages from 32-bit producers to a
// 64-bit consumer: alone on a single-producer ring, and next to a 64-bit
// producer on a multi-producer ring, where both claim with a 64-bit
// compare-and-swap on the same tail. The layout has no word whose size or
// alignment depends on the process (FORMAT.md).
func TestMixedArchExchange(t *testing.T) {
	p386 := build386Producer(t)
	p64, consumer := buildCommands(t)
	count := 200_000
	if testing.Short() {
		count = 50_000
	}
	t.Run("single producer", func(t *testing.T) {
		name := demoName(t)
		c := start(t, consumer, "-name", name, "-capacity", "64KiB", "-json")
		p := start(t, p386, "-name", name, "-count", fmt.Sprint(count), "-size", "32", "-max-size", "2048")
		if code := p.wait(t, 5*time.Minute); code != 0 {
			t.Fatalf("386 producer exited %d\n%s\nconsumer: %s", code, p, c)
		}
		res := summary(t, c, time.Minute)
		if !res.OK() || res.Messages != uint64(count) || res.Producers != 1 {
			t.Fatalf("summary %+v, want %d messages, nothing lost, duplicated, reordered or corrupt", res, count)
		}
	})
	t.Run("with a 64-bit producer", func(t *testing.T) {
		name := demoName(t)
		c := start(t, consumer, "-name", name, "-producers", "2", "-capacity", "64KiB", "-json")
		ps := []*run{
			start(t, p386, "-name", name, "-id", "1", "-count", fmt.Sprint(count), "-size", "32", "-max-size", "2048"),
			start(t, p64, "-name", name, "-id", "2", "-count", fmt.Sprint(count), "-size", "32", "-max-size", "2048"),
		}
		for _, p := range ps {
			if code := p.wait(t, 5*time.Minute); code != 0 {
				t.Fatalf("producer exited %d\n%s\nconsumer: %s", code, p, c)
			}
		}
		res := summary(t, c, time.Minute)
		if !res.OK() || res.Messages != uint64(2*count) || res.Producers != 2 || res.Recovered != 0 {
			t.Fatalf("summary %+v", res)
		}
		for id, p := range perProducer(res) {
			if !p.Finished || p.Received != uint64(count) {
				t.Fatalf("producer %d: %+v", id, p)
			}
		}
	})
}
