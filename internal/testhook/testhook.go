// Package testhook holds the points where tests stop a process at an exact
// instant, to kill it there. Nothing outside tests sets them; unset, each
// costs a load and a branch on a path that is not per message.
package testhook

import "sync/atomic"

// HeadStored, if set, is called by a consumer right after it stores its
// head in shared memory: the instant at which a consumer killed must not
// have consumed a message it has not handed to its caller.
var HeadStored func()

// BeforeEndLook, if set, is called by a consumer that found nothing at its
// head, before it looks whether the producers are gone (the end of the
// stream): the instant at which a subscriber stalled may be evicted and
// passed by producers that then leave.
var BeforeEndLook func()

// BeforeRequest, if set, is called by Dial after it found a server
// listening and made its rings, before it posts its request: the instant at
// which the listener may close under it.
var BeforeRequest func()

// NoBells, if set, makes connections neither offer nor take bells: the
// process plays a peer that has none (an older version, or a system
// without them).
var NoBells atomic.Bool
