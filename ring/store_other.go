//go:build !amd64 || race

package ring

import (
	"sync/atomic"
	"unsafe"
)

// storeRelease64 falls back to a sequentially consistent store where there
// is no assembly release store, and under the race detector, which sees
// sync/atomic but not assembly.
func storeRelease64(addr *uint64, v uint64) { atomic.StoreUint64(addr, v) }

// releaseIsFence reports whether storeRelease64 is also a full fence.
const releaseIsFence = true

// storePlain64 falls back to a sequentially consistent store.
func storePlain64(addr *uint64, v uint64) { atomic.StoreUint64(addr, v) }

// spinPause does nothing where there is no PAUSE instruction to call.
func spinPause() {}

// loadFence orders the loads before it before the loads after it, with a
// read-modify-write of a word of the caller's, a full fence on every
// processor Go supports.
func loadFence(w *atomic.Uint64) { w.Add(0) }

// prefetchWrite does nothing where there is no assembly prefetch to call.
func prefetchWrite(addr unsafe.Pointer) {}

// hasPrefetchWrite is false: prefetchWrite does nothing.
const hasPrefetchWrite = false

// prefetchRead does nothing where there is no assembly prefetch to call.
func prefetchRead(addr unsafe.Pointer) {}
