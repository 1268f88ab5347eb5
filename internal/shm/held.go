package shm

// Held is a named segment's file as one process holds it open: found in
// /proc/<pid>/fd, so also after its name was removed.
type Held struct {
	Name    string // the segment's name (the file's base name in Dir)
	Deleted bool   // the name was removed: the file lives while held open
	PID     int
	UID     int    // the process's user (the owner of /proc/<pid>)
	Path    string // /proc/<pid>/fd/<n>: OpenHeld maps the file through it
	Inode   uint64 // the file: the same inode is the same segment
	Owner   int    // the file's owner
}
