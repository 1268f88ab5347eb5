package shmring_test

// endStream cannot end a producer running with -count 0 cleanly on Windows,
// where no signal reaches another process: it kills it and reports false.
func endStream(p *run) bool {
	p.cmd.Process.Kill()
	return false
}

// openFilesAllowed: Windows sets no small limit on open handles.
func openFilesAllowed() uint64 { return 1 << 24 }
