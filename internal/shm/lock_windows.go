package shm

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// LockKind names the kind of liveness lock this system provides.
const LockKind = "named mutex (abandoned by the system when its owner dies)"

// A Windows mutex belongs to the thread that acquired it: only that thread
// may release it, the system abandons it when that thread ends, and the
// thread may acquire it again without blocking. Goroutines move between
// threads, so one goroutine locked to its OS thread (the keeper) takes,
// holds and releases every liveness mutex of the process, and keeps its own
// table of what it holds: a second TryLock in this process is then refused
// like one from another process (as with OFD locks on Linux).
var keeper struct {
	once sync.Once
	reqs chan func()
	held map[string]windows.Handle // touched by the keeper goroutine only
}

// onKeeper runs f on the keeper's thread and waits for it.
func onKeeper(f func()) {
	keeper.once.Do(func() {
		keeper.reqs = make(chan func())
		keeper.held = make(map[string]windows.Handle)
		go keep(keeper.reqs)
	})
	done := make(chan struct{})
	keeper.reqs <- func() { f(); close(done) }
	<-done
}

// keep is the keeper goroutine. It never returns: the thread's end would
// abandon the mutexes it holds.
func keep(reqs chan func()) {
	runtime.LockOSThread()
	for f := range reqs {
		f()
	}
}

var procNtQueryMutant = ntdll.NewProc("NtQueryMutant")

const (
	waitObject0   = 0x00000000
	waitAbandoned = 0x00000080
	waitTimeout   = 0x00000102
)

func mutexName(s *Segment, off int64) string {
	return s.sys.lockPrefix + "#lock-" + strconv.FormatInt(off, 10)
}

func tryLock(s *Segment, off int64) (ok bool, err error) {
	name := mutexName(s, off)
	onKeeper(func() {
		if _, mine := keeper.held[name]; mine {
			return
		}
		var n *uint16
		if n, err = windows.UTF16PtrFromString(name); err != nil {
			return
		}
		var h windows.Handle
		if h, err = windows.CreateMutex(nil, false, n); h == 0 {
			return
		}
		err = nil // ERROR_ALREADY_EXISTS: another process made it first
		ev, werr := windows.WaitForSingleObject(h, 0)
		switch {
		case werr != nil:
			err = werr
		case ev == waitObject0, ev == waitAbandoned: // abandoned: its owner died
			keeper.held[name] = h
			ok = true
			return
		case ev != waitTimeout:
			err = fmt.Errorf("WaitForSingleObject: unexpected %#x", ev)
		}
		windows.CloseHandle(h)
	})
	return ok, err
}

func unlock(s *Segment, off int64) (err error) {
	name := mutexName(s, off)
	onKeeper(func() {
		h, ok := keeper.held[name]
		if !ok {
			return
		}
		delete(keeper.held, name)
		err = errors.Join(windows.ReleaseMutex(h), windows.CloseHandle(h))
	})
	return err
}

// locked asks the system whether anyone owns the mutex, without taking it
// (NtQueryMutant): a mutex nobody has open does not exist, and one whose
// owner died is abandoned, not owned.
func locked(s *Segment, off int64) (held bool, err error) {
	name := mutexName(s, off)
	onKeeper(func() {
		if _, held = keeper.held[name]; held {
			return
		}
		var n *uint16
		if n, err = windows.UTF16PtrFromString(name); err != nil {
			return
		}
		h, oerr := windows.OpenMutex(windows.MUTANT_QUERY_STATE|windows.SYNCHRONIZE, false, n)
		if errors.Is(oerr, windows.ERROR_FILE_NOT_FOUND) {
			return
		} else if oerr != nil {
			err = oerr
			return
		}
		defer windows.CloseHandle(h)
		var info struct {
			currentCount int32 // 1 when free, 0 or less when owned
			ownedByCaller,
			abandoned byte
		}
		status, _, _ := procNtQueryMutant.Call(uintptr(h), 0, uintptr(unsafe.Pointer(&info)), unsafe.Sizeof(info), 0)
		if status != 0 {
			err = fmt.Errorf("NtQueryMutant: %w", windows.NTStatus(status))
			return
		}
		held = info.currentCount <= 0
	})
	return held, err
}

// tryLockShared takes nothing on Windows and reports true: the shared lock
// marks a ring as open for RemoveUnused, and a named segment on Windows
// lives exactly as long as some process has it open, so none is stale.
func tryLockShared(s *Segment, off int64) (bool, error) { return true, nil }
