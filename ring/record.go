package ring

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// record is a committed record header, loaded once and checked.
type record struct {
	pos    uint64 // where its header is, after the gap rule
	length uint64 // payload bytes
	typ    uint32 // KindMessage, KindBatch or KindPadding
	after  uint64 // position of the next record
}

// recordAt looks at the position pos of the data area. It applies the gap
// rule, acquire-loads the stamp, and reports ok false when no record is
// committed there. A committed header that no correct producer could have
// written gives a wrapped ErrCorrupt.
func (r *Ring) recordAt(pos uint64) (rec record, ok bool, err error) {
	off := pos & r.mask
	rem := r.capacity - off
	if rem < RecordHeaderSize {
		pos += rem // the gap rule: too small for a header, skipped
		off, rem = 0, r.capacity
	}
	hdr := unsafe.Pointer(&r.data[off])
	if atomic.LoadUint64((*uint64)(unsafe.Add(hdr, recStamp))) != pos^r.key {
		return rec, false, nil
	}
	// The stamp was loaded with acquire semantics, so the header words
	// written before it are visible now. Load each once.
	length := uint64(*(*uint32)(hdr))
	kind := *(*uint32)(unsafe.Add(hdr, recKind))
	size := recordSize(length)
	switch kind & kindTypeMask {
	case KindMessage:
		if kind&KindSlack != 0 {
			size += RecordAlign
		}
		if length > uint64(r.maxMessage) || size > rem || kind&kindFlagMask&^KindSlack != 0 {
			return rec, false, fmt.Errorf("%w: message at position %d claims %d bytes, kind %#x (max %d, %d left before the end)", ErrCorrupt, pos, length, kind, r.maxMessage, rem-RecordHeaderSize)
		}
	case KindBatch:
		if length < EntryHeaderSize || length%RecordAlign != 0 || length > uint64(r.maxMessage) || size > rem || kind&kindFlagMask != 0 {
			return rec, false, fmt.Errorf("%w: batch at position %d claims %d bytes, kind %#x (max %d, %d left before the end)", ErrCorrupt, pos, length, kind, r.maxMessage, rem-RecordHeaderSize)
		}
	case KindPadding:
		if length%RecordAlign != 0 || size > rem || kind&kindFlagMask != 0 {
			return rec, false, fmt.Errorf("%w: padding at position %d claims %d bytes, kind %#x (%d left before the end)", ErrCorrupt, pos, length, kind, rem-RecordHeaderSize)
		}
	default:
		return rec, false, fmt.Errorf("%w: record at position %d has kind %#x", ErrCorrupt, pos, kind)
	}
	return record{pos: pos, length: length, typ: kind & kindTypeMask, after: pos + size}, true, nil
}

// writeHeader writes a record header at pos, the stamp last with release
// semantics: the record is committed when the stamp lands.
func (r *Ring) writeHeader(pos uint64, length, kind uint32) {
	hdr := unsafe.Pointer(&r.data[pos&r.mask])
	*(*uint32)(hdr) = length
	*(*uint32)(unsafe.Add(hdr, recKind)) = kind
	storeRelease64((*uint64)(unsafe.Add(hdr, recStamp)), pos^r.key)
}

// padTo commits a padding record that fills [pos, end), or nothing when the
// space is a gap too small for a header (which readers skip only at the end
// of the data area, by the gap rule).
func (r *Ring) padTo(pos, end uint64, slot uint32) {
	if end-pos >= RecordHeaderSize {
		r.writeHeader(pos, uint32(end-pos-RecordHeaderSize), KindPadding|slot<<kindSlotShift)
	}
}

// skipCommitted returns the position after the records committed from pos
// onwards: where a new single producer resumes when its predecessor died
// between committing a record and publishing the tail.
func (r *Ring) skipCommitted(pos, head uint64) (uint64, error) {
	for pos-head < r.capacity {
		rec, ok, err := r.recordAt(pos)
		if err != nil || !ok {
			return pos, err
		}
		pos = rec.after
	}
	return pos, nil
}
