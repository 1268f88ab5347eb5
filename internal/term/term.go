// Package term tells the commands whether they write to a terminal, where a
// progress line may be redrawn in place with escape sequences; anywhere else
// (a pipe, a file, a CI log) those sequences are noise.
package term

import (
	"io"
	"os"
)

// IsTerminal reports whether w is a character device: a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
