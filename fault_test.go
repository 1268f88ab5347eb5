package shmring_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/shmring/shmring"
	"github.com/shmring/shmring/internal/testdir"
)

// TestTruncatedUnderStats truncates a ring's file under an open Ring: Stats,
// Producer, Consumer, Close, and per-message calls under Guarded must report
// ErrTruncated, not die of SIGBUS.
func TestTruncatedUnderStats(t *testing.T) {
	path := filepath.Join(testdir.Make(t), "ring")
	r, err := shmring.CreateFile(path, shmring.WithCapacity(4096), shmring.WithMultiProducer())
	skipUnsupported(t, err)
	defer r.Close()
	p, err := r.Producer()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		if runtime.GOOS == "windows" {
			// ERROR_USER_MAPPED_FILE: there is no fault to catch.
			p.Close()
			t.Skipf("Windows refuses to shrink a mapped file: %v", err)
		}
		t.Fatal(err)
	}
	err = shmring.Guarded(func() error {
		buf, err := p.Reserve(context.Background(), 100)
		if err == nil {
			buf[0] = 1 // the caller's own write into the mapping, guarded too
		}
		return err
	})
	if !errors.Is(err, shmring.ErrTruncated) {
		t.Fatalf("Reserve under Guarded: got %v, want ErrTruncated", err)
	}
	if err := p.Close(); !errors.Is(err, shmring.ErrTruncated) {
		t.Fatalf("Close: got %v, want ErrTruncated", err)
	}
	if _, err := r.Stats(); !errors.Is(err, shmring.ErrTruncated) {
		t.Fatalf("Stats: got %v, want ErrTruncated", err)
	}
	if _, err := r.Producer(); !errors.Is(err, shmring.ErrTruncated) {
		t.Fatalf("Producer: got %v, want ErrTruncated", err)
	}
	if _, err := r.Consumer(); !errors.Is(err, shmring.ErrTruncated) {
		t.Fatalf("Consumer: got %v, want ErrTruncated", err)
	}
}
