//go:build amd64 && !race

package ring

import (
	"sync/atomic"
	"unsafe"
)

// storeRelease64 stores v at addr with release semantics: every store before
// it in program order is visible to another CPU before this one is. Unlike
// atomic.StoreUint64 (XCHG on amd64) it does not drain the store buffer,
// which roughly doubles small-message throughput (a 64-byte stream between
// two processes went from 18-19 to 31-34 M msg/s in a prototype). It is not a full
// fence: a load after it may be satisfied before it is visible, which the
// wake-up protocol covers with futex.Barrier on the waiting side.
//
//go:noescape
func storeRelease64(addr *uint64, v uint64)

// releaseIsFence reports whether storeRelease64 is also a full fence.
const releaseIsFence = false

// storePlain64 stores v at addr with no ordering beyond program order on
// this CPU: for counters and positions that readers use as hints or stats,
// never as a commit. x86-64 makes it a release store anyway.
func storePlain64(addr *uint64, v uint64) { *addr = v }

// spinPause tells the CPU that this is a spin-wait loop (PAUSE), which
// eases the pressure of repeated loads on a line another core is writing.
//
//go:noescape
func spinPause()

// loadFence orders the loads before it before the loads after it. x86-64
// keeps loads in order, and the compiler does not move a load past an
// atomic one.
func loadFence(*atomic.Uint64) {}

// prefetchWrite asks for the cache line at addr in a state this CPU may
// write (PREFETCHW), ahead of the stores to it: the request for ownership,
// which takes the line from the core that read it last (the consumer's),
// then runs while this CPU does other work, instead of in the drain of
// the store buffer that the next locked instruction waits for. Call it
// only where hasPrefetchWrite.
//
//go:noescape
func prefetchWrite(addr unsafe.Pointer)

// hasPrefetchWrite reports whether the CPU has PREFETCHW (CPUID
// 0x80000001, ECX bit 8).
var hasPrefetchWrite = func() bool {
	if top, _, _, _ := cpuid(0x80000000, 0); top < 0x80000001 {
		return false
	}
	_, _, ecx, _ := cpuid(0x80000001, 0)
	return ecx&(1<<8) != 0
}()

// cpuid executes CPUID with the given EAX and ECX.
//
//go:noescape
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// prefetchRead asks for the cache line at addr to be read (PREFETCHT0,
// which every amd64 CPU has).
//
//go:noescape
func prefetchRead(addr unsafe.Pointer)
