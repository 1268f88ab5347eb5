// Package stream is the verifiable message stream that cmd/producer writes
// and cmd/consumer checks: every message names its producer and sequence
// number, carries a send timestamp and a checksum over all its other bytes,
// so that the consumer can count what was lost, duplicated, reordered or
// corrupted, and measure latency.
//
// A message is little-endian:
//
//	offset size field
//	0      4    producer id
//	4      4    flags (FlagFinal, FlagTimed)
//	8      8    sequence number, from 0
//	16     8    send time, CLOCK_MONOTONIC nanoseconds (Now)
//	24     4    CRC-32C of bytes 0-23 and 28-end
//	28     4    total message size
//	32     -    payload: a byte pattern that depends on producer and sequence
package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// MinSize is the smallest message: the header with no payload.
const MinSize = 32

// Flags.
const (
	// FlagFinal marks a producer's last message; its sequence number is
	// the count of messages sent before it.
	FlagFinal uint32 = 1 << 0
	// FlagTimed marks a message whose send time was read from the clock
	// for it (at full speed a producer reads the clock for one message in
	// 64, and latency is measured on those).
	FlagTimed uint32 = 1 << 1
)

// ErrCorrupt is returned by Decode for a message whose checksum or size
// field is wrong.
var ErrCorrupt = errors.New("stream: corrupt message")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded header of a message.
type Header struct {
	Producer uint32
	Flags    uint32
	Seq      uint64
	SentNs   int64
	Size     uint32
}

// Encoder writes the messages of one producer.
type Encoder struct {
	id      uint32
	pattern []byte
}

// patternPeriod is how far the payload pattern shifts with the sequence
// number: a payload left over from another message is caught by the
// checksum, which covers the sequence number.
const patternPeriod = 251

// NewEncoder returns an Encoder for producer id and messages of at most
// maxSize bytes.
func NewEncoder(id uint32, maxSize int) *Encoder {
	p := make([]byte, max(maxSize, MinSize)+patternPeriod)
	for i := range p {
		p[i] = byte(uint32(i)*7 + id*131 + 1)
	}
	return &Encoder{id: id, pattern: p}
}

// Encode fills buf, whose length is the message size (at least MinSize),
// with message seq.
func (e *Encoder) Encode(buf []byte, seq uint64, sentNs int64, flags uint32) {
	le := binary.LittleEndian
	le.PutUint32(buf[0:], e.id)
	le.PutUint32(buf[4:], flags)
	le.PutUint64(buf[8:], seq)
	le.PutUint64(buf[16:], uint64(sentNs))
	le.PutUint32(buf[28:], uint32(len(buf)))
	shift := seq % patternPeriod
	copy(buf[MinSize:], e.pattern[shift:])
	le.PutUint32(buf[24:], checksum(buf))
}

func checksum(msg []byte) uint32 {
	c := crc32.Update(0, castagnoli, msg[:24])
	return crc32.Update(c, castagnoli, msg[28:])
}

// Decode checks msg and returns its header. A short message, a size field
// that disagrees with the length, or a bad checksum gives ErrCorrupt.
func Decode(msg []byte) (Header, error) {
	if len(msg) < MinSize {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrCorrupt, len(msg), MinSize)
	}
	le := binary.LittleEndian
	h := Header{
		Producer: le.Uint32(msg[0:]),
		Flags:    le.Uint32(msg[4:]),
		Seq:      le.Uint64(msg[8:]),
		SentNs:   int64(le.Uint64(msg[16:])),
		Size:     le.Uint32(msg[28:]),
	}
	if int(h.Size) != len(msg) {
		return h, fmt.Errorf("%w: size field %d, message of %d bytes", ErrCorrupt, h.Size, len(msg))
	}
	if got, want := le.Uint32(msg[24:]), checksum(msg); got != want {
		return h, fmt.Errorf("%w: checksum %#x, computed %#x", ErrCorrupt, got, want)
	}
	return h, nil
}

// Pace waits until Now reaches target: sleeping while far from it, spinning
// at the end, so that a fixed rate stays accurate.
func Pace(target int64) {
	for {
		d := target - Now()
		if d <= 0 {
			return
		}
		if d > 200_000 {
			time.Sleep(time.Duration(d - 100_000))
		}
	}
}
