// Package testdir gives tests a temporary directory, like testing.T.TempDir,
// that is emptied by removing each entry itself.
//
// Why not TempDir: under Wine 8, Go 1.26's os.RemoveAll (which TempDir's
// cleanup calls) fails with "Invalid function": it deletes through
// NtSetInformationFile(FileDispositionInformationEx), which Wine does not
// implement, and Wine's status for it is not one Go's fallback expects.
// os.Remove of a file and of an empty directory work there.
package testdir

import (
	"os"
	"path/filepath"
	"testing"
)

// Make returns a new directory that is removed, with what it holds, when the
// test ends. A failure to remove it fails the test.
func Make(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "shmring-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := removeAll(dir); err != nil {
			tb.Errorf("removing the test directory: %v", err)
		}
	})
	return dir
}

// removeAll removes dir and everything under it, deepest first.
func removeAll(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if e.IsDir() {
			err = removeAll(path)
		} else {
			err = os.Remove(path)
		}
		if err != nil {
			return err
		}
	}
	return os.Remove(dir)
}
