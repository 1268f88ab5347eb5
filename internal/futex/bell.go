package futex

import "errors"

// ErrBellClosed is returned by a Sleep on a Bell that was closed.
var ErrBellClosed = errors.New("futex: bell closed")
