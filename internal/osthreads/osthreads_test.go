package osthreads_test

import (
	"runtime"
	"sync"
	"testing"

	"github.com/shmring/shmring/internal/osthreads"
)

// TestCountSeesNewThreads locks goroutines to threads of their own and
// checks that the count covers them and the goroutine that counts. (Not
// that it grows by as many: locked goroutines may take threads the runtime
// had idle.)
func TestCountSeesNewThreads(t *testing.T) {
	before := osthreads.Count()
	if before < 0 {
		t.Skipf("%s does not say how many threads a process runs", runtime.GOOS)
	}
	const n = 8
	var ready, release sync.WaitGroup
	ready.Add(n)
	release.Add(1)
	for range n {
		go func() {
			runtime.LockOSThread() // the thread ends with the goroutine
			ready.Done()
			release.Wait()
		}()
	}
	ready.Wait()
	if after := osthreads.Count(); after < n+1 {
		t.Errorf("%d threads with %d goroutines locked to threads of their own (%d before)", after, n, before)
	}
	release.Done()
}
