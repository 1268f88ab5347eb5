package osthreads

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

func count() int {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return -1
	}
	defer windows.CloseHandle(snap)
	self := windows.GetCurrentProcessId()
	e := windows.ThreadEntry32{Size: uint32(unsafe.Sizeof(windows.ThreadEntry32{}))}
	n := 0
	for err = windows.Thread32First(snap, &e); err == nil; err = windows.Thread32Next(snap, &e) {
		if e.OwnerProcessID == self {
			n++
		}
	}
	return n
}
