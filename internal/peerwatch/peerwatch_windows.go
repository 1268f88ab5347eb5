package peerwatch

import (
	"errors"

	"golang.org/x/sys/windows"
)

// procSys is a process handle (opened with SYNCHRONIZE), which the system
// signals when the process has ended, and an event that stops the wait: a
// Windows wait holds its thread, so each watched peer process costs one.
type procSys struct{ h, stopped windows.Handle }

var supported = func() bool {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, windows.GetCurrentProcessId())
	if err != nil {
		return false
	}
	windows.CloseHandle(h)
	return true
}()

// open opens pid's handle; gone reports that no such process exists.
func open(pid int) (s procSys, gone bool, err error) {
	h, err := windows.OpenProcess(windows.SYNCHRONIZE, false, uint32(pid))
	if errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
		return s, true, nil
	}
	if err != nil {
		return s, false, err
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		windows.CloseHandle(h)
		return s, false, err
	}
	return procSys{h: h, stopped: ev}, false, nil
}

func (s procSys) wait() {
	windows.WaitForMultipleObjects([]windows.Handle{s.h, s.stopped}, false, windows.INFINITE)
}

func (s procSys) stop() { windows.SetEvent(s.stopped) }

func (s procSys) close() {
	windows.CloseHandle(s.h)
	windows.CloseHandle(s.stopped)
}
