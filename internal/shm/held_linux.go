package shm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// HeldSupported reports whether Holders can look (Linux: /proc).
const HeldSupported = true

// Holders lists the named segments, with or without their names, that
// processes hold open, one entry per process and descriptor, for the
// segments whose name match accepts. Only the processes whose descriptors
// this process may read are seen (the same user's, or all for root).
func Holders(match func(name string) bool) ([]Held, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	prefix := namedDir() + "/"
	var out []Held
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // gone, or not ours to read
		}
		uid := -1
		if fi, err := os.Stat(filepath.Join("/proc", p.Name())); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				uid = int(st.Uid)
			}
		}
		for _, fd := range fds {
			path := filepath.Join(dir, fd.Name())
			target, err := os.Readlink(path)
			if err != nil {
				continue
			}
			rest, ok := strings.CutPrefix(target, prefix)
			if !ok {
				continue
			}
			name, deleted := strings.CutSuffix(rest, " (deleted)")
			if ValidateName(name) != nil || !match(name) {
				continue
			}
			var st unix.Stat_t
			if unix.Stat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
				continue
			}
			out = append(out, Held{Name: name, Deleted: deleted, PID: pid, UID: uid, Path: path, Inode: st.Ino, Owner: int(st.Uid)})
		}
	}
	return out, nil
}

// OpenHeld maps the file that h's process holds open, through its
// descriptor's entry in /proc (which is a link: it is followed, but only
// there). The file must still be the one h found.
func OpenHeld(h Held, minSize int64) (*Segment, error) {
	if !strings.HasPrefix(h.Path, "/proc/") {
		return nil, fmt.Errorf("open held segment %s: not a descriptor's path", h.Path)
	}
	fd, err := unix.Open(h.Path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open held segment %s: %w", h.Name, pathErr("open", h.Path, err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != h.Inode {
		unix.Close(fd)
		return nil, fmt.Errorf("open held segment %s: the descriptor now holds another file", h.Name)
	}
	s, err := mapFD(fd, h.Path, minSize)
	if err != nil {
		return nil, fmt.Errorf("open held segment %s: %w", h.Name, err)
	}
	return s, nil
}
