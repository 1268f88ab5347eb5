package ring

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"unsafe"
)

// headerLayout mirrors the header page as a Go struct, so that the compiler
// computes the offsets the constants claim.
type headerLayout struct {
	Magic      uint64
	Version    uint32
	Flags      uint32
	HeaderSize uint32
	LineSize   uint32
	SlotCount  uint32
	MaxMessage uint32
	Capacity   uint64
	DataOffset uint64
	TotalSize  uint64
	Key        uint64
	UUID       [16]byte
	CreatorPID uint32
	_          uint32
	CreatedNs  uint64
	Init       uint32
	Removed    uint32
	SubCount   uint32
}

// fanoutLayout mirrors the fan-out line.
type fanoutLayout struct {
	Seq       uint64
	Pos0      uint64
	Messages0 uint64
	Bytes0    uint64
	Pos1      uint64
	Messages1 uint64
	Bytes1    uint64
	Evictions uint64
	EvictNs   uint64
	Attaches  uint64
	Moves     uint64
	Lines     uint32
}

// subscriberLayout mirrors a subscriber line: the consumer line's fields,
// then its own.
type subscriberLayout struct {
	consumerLayout
	Position  uint64
	Lost      uint64
	LostBytes uint64
	Laps      uint64
}

// slotLayout mirrors a producer slot.
type slotLayout struct {
	State     uint32
	PID       uint32
	Gen       uint64
	ClaimPos  uint64
	ClaimLen  uint64
	Messages  uint64
	Bytes     uint64
	FullWaits uint64
	Parks     uint64
	Wakes     uint64
	Fenced    uint32
}

// consumerLayout mirrors the consumer's control line.
type consumerLayout struct {
	State     uint32
	PID       uint32
	Messages  uint64
	Bytes     uint64
	Parks     uint64
	Wakes     uint64
	Recovered uint64
	Reaped    uint64
	Gen       uint64
	Corrupt   uint64
	Batch     uint64
}

type field struct {
	off, size uintptr
}

// layout is every field FORMAT.md documents, by its name there.
func layout() map[string]field {
	var h headerLayout
	var s slotLayout
	var c consumerLayout
	var f fanoutLayout
	var u subscriberLayout
	return map[string]field{
		"subscriber_count":    {unsafe.Offsetof(h.SubCount), 4},
		"frontier_seq":        {unsafe.Offsetof(f.Seq), 8},
		"frontier_pos_0":      {unsafe.Offsetof(f.Pos0), 8},
		"frontier_messages_0": {unsafe.Offsetof(f.Messages0), 8},
		"frontier_bytes_0":    {unsafe.Offsetof(f.Bytes0), 8},
		"frontier_pos_1":      {unsafe.Offsetof(f.Pos1), 8},
		"frontier_messages_1": {unsafe.Offsetof(f.Messages1), 8},
		"frontier_bytes_1":    {unsafe.Offsetof(f.Bytes1), 8},
		"evictions":           {unsafe.Offsetof(f.Evictions), 8},
		"evict_after_ns":      {unsafe.Offsetof(f.EvictNs), 8},
		"subscriber_attaches": {unsafe.Offsetof(f.Attaches), 8},
		"frontier_moves":      {unsafe.Offsetof(f.Moves), 8},
		"lines_used":          {unsafe.Offsetof(f.Lines), 4},
		"sub_state":           {unsafe.Offsetof(u.State), 4},
		"sub_pid":             {unsafe.Offsetof(u.PID), 4},
		"sub_messages":        {unsafe.Offsetof(u.Messages), 8},
		"sub_bytes":           {unsafe.Offsetof(u.Bytes), 8},
		"sub_parks":           {unsafe.Offsetof(u.Parks), 8},
		"sub_wakes":           {unsafe.Offsetof(u.Wakes), 8},
		"sub_recovered":       {unsafe.Offsetof(u.Recovered), 8},
		"sub_reaped":          {unsafe.Offsetof(u.Reaped), 8},
		"sub_attaches":        {unsafe.Offsetof(u.Gen), 8},
		"sub_corrupt":         {unsafe.Offsetof(u.Corrupt), 8},
		"sub_batch":           {unsafe.Offsetof(u.Batch), 8},
		"sub_position":        {unsafe.Offsetof(u.Position), 8},
		"sub_lost":            {unsafe.Offsetof(u.Lost), 8},
		"sub_lost_bytes":      {unsafe.Offsetof(u.LostBytes), 8},
		"sub_laps":            {unsafe.Offsetof(u.Laps), 8},
		"magic":               {unsafe.Offsetof(h.Magic), 8},
		"version":             {unsafe.Offsetof(h.Version), 4},
		"flags":               {unsafe.Offsetof(h.Flags), 4},
		"header_size":         {unsafe.Offsetof(h.HeaderSize), 4},
		"line_size":           {unsafe.Offsetof(h.LineSize), 4},
		"slot_count":          {unsafe.Offsetof(h.SlotCount), 4},
		"max_message":         {unsafe.Offsetof(h.MaxMessage), 4},
		"capacity":            {unsafe.Offsetof(h.Capacity), 8},
		"data_offset":         {unsafe.Offsetof(h.DataOffset), 8},
		"total_size":          {unsafe.Offsetof(h.TotalSize), 8},
		"key":                 {unsafe.Offsetof(h.Key), 8},
		"uuid":                {unsafe.Offsetof(h.UUID), 16},
		"creator_pid":         {unsafe.Offsetof(h.CreatorPID), 4},
		"created_ns":          {unsafe.Offsetof(h.CreatedNs), 8},
		"init":                {unsafe.Offsetof(h.Init), 4},
		"removed":             {unsafe.Offsetof(h.Removed), 4},
		"tail":                {offTail, 8},
		"head":                {offHead, 8},
		"data_bell":           {offDataBell, 4},
		"data_waiters":        {offDataWaiters, 4},
		"data_armed":          {offDataArmed, 4},
		"space_bell":          {offSpaceBell, 4},
		"space_waiters":       {offSpaceWaiters, 4},
		"space_armed":         {offSpaceArmed, 4},
		"consumer_state":      {offConsumer + unsafe.Offsetof(c.State), 4},
		"consumer_pid":        {offConsumer + unsafe.Offsetof(c.PID), 4},
		"consumer_messages":   {offConsumer + unsafe.Offsetof(c.Messages), 8},
		"consumer_bytes":      {offConsumer + unsafe.Offsetof(c.Bytes), 8},
		"consumer_parks":      {offConsumer + unsafe.Offsetof(c.Parks), 8},
		"consumer_wakes":      {offConsumer + unsafe.Offsetof(c.Wakes), 8},
		"consumer_recovered":  {offConsumer + unsafe.Offsetof(c.Recovered), 8},
		"consumer_reaped":     {offConsumer + unsafe.Offsetof(c.Reaped), 8},
		"consumer_attaches":   {offConsumer + unsafe.Offsetof(c.Gen), 8},
		"consumer_corrupt":    {offConsumer + unsafe.Offsetof(c.Corrupt), 8},
		"consumer_batch":      {offConsumer + unsafe.Offsetof(c.Batch), 8},
		"attaches":            {offProducers + prodsAttaches, 8},
		"attached":            {offProducers + prodsAttached, 4},
		"fenced":              {offProducers + prodsFenced, 4},
		"slot_state":          {unsafe.Offsetof(s.State), 4},
		"slot_pid":            {unsafe.Offsetof(s.PID), 4},
		"slot_generation":     {unsafe.Offsetof(s.Gen), 8},
		"slot_claim_pos":      {unsafe.Offsetof(s.ClaimPos), 8},
		"slot_claim_len":      {unsafe.Offsetof(s.ClaimLen), 8},
		"slot_messages":       {unsafe.Offsetof(s.Messages), 8},
		"slot_bytes":          {unsafe.Offsetof(s.Bytes), 8},
		"slot_full_waits":     {unsafe.Offsetof(s.FullWaits), 8},
		"slot_parks":          {unsafe.Offsetof(s.Parks), 8},
		"slot_wakes":          {unsafe.Offsetof(s.Wakes), 8},
		"slot_fenced":         {unsafe.Offsetof(s.Fenced), 4},
		"length":              {recLength, 4},
		"kind":                {recKind, 4},
		"stamp":               {recStamp, 8},
	}
}

// TestLayoutConstants pins the constants the code uses to the mirrored
// structs (and so to the compiler's idea of the layout).
func TestLayoutConstants(t *testing.T) {
	var h headerLayout
	var s slotLayout
	var c consumerLayout
	var f fanoutLayout
	var u subscriberLayout
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"magic", offMagic, unsafe.Offsetof(h.Magic)},
		{"version", offVersion, unsafe.Offsetof(h.Version)},
		{"flags", offFlags, unsafe.Offsetof(h.Flags)},
		{"header size", offHeaderSize, unsafe.Offsetof(h.HeaderSize)},
		{"line size", offLineSize, unsafe.Offsetof(h.LineSize)},
		{"slot count", offSlotCount, unsafe.Offsetof(h.SlotCount)},
		{"max message", offMaxMessage, unsafe.Offsetof(h.MaxMessage)},
		{"capacity", offCapacity, unsafe.Offsetof(h.Capacity)},
		{"data offset", offDataOffset, unsafe.Offsetof(h.DataOffset)},
		{"total size", offTotalSize, unsafe.Offsetof(h.TotalSize)},
		{"key", offKey, unsafe.Offsetof(h.Key)},
		{"uuid", offUUID, unsafe.Offsetof(h.UUID)},
		{"creator pid", offCreatorPID, unsafe.Offsetof(h.CreatorPID)},
		{"created", offCreatedNs, unsafe.Offsetof(h.CreatedNs)},
		{"init", offInit, unsafe.Offsetof(h.Init)},
		{"removed", offRemoved, unsafe.Offsetof(h.Removed)},
		{"subscriber count", offSubCount, unsafe.Offsetof(h.SubCount)},
		{"frontier seq", fanSeq, unsafe.Offsetof(f.Seq)},
		{"frontier copy 0", fanCopy, unsafe.Offsetof(f.Pos0)},
		{"frontier copy 1", fanCopy + fanCopySize, unsafe.Offsetof(f.Pos1)},
		{"frontier copy 1 messages", fanCopy + fanCopySize + 8, unsafe.Offsetof(f.Messages1)},
		{"frontier copy 1 bytes", fanCopy + fanCopySize + 16, unsafe.Offsetof(f.Bytes1)},
		{"evictions", fanEvictions, unsafe.Offsetof(f.Evictions)},
		{"evict after", fanEvictNs, unsafe.Offsetof(f.EvictNs)},
		{"subscriber attaches", fanAttaches, unsafe.Offsetof(f.Attaches)},
		{"frontier moves", fanRaises, unsafe.Offsetof(f.Moves)},
		{"lines used", fanLines, unsafe.Offsetof(f.Lines)},
		{"sub position", subPos, unsafe.Offsetof(u.Position)},
		{"sub lost", subLost, unsafe.Offsetof(u.Lost)},
		{"sub lost bytes", subLostBytes, unsafe.Offsetof(u.LostBytes)},
		{"sub laps", subLaps, unsafe.Offsetof(u.Laps)},
		{"slot state", slotState, unsafe.Offsetof(s.State)},
		{"slot pid", slotPID, unsafe.Offsetof(s.PID)},
		{"slot generation", slotGen, unsafe.Offsetof(s.Gen)},
		{"slot claim pos", slotClaimPos, unsafe.Offsetof(s.ClaimPos)},
		{"slot claim len", slotClaimLen, unsafe.Offsetof(s.ClaimLen)},
		{"slot messages", slotMessages, unsafe.Offsetof(s.Messages)},
		{"slot bytes", slotBytes, unsafe.Offsetof(s.Bytes)},
		{"slot full waits", slotFullWaits, unsafe.Offsetof(s.FullWaits)},
		{"slot parks", slotParks, unsafe.Offsetof(s.Parks)},
		{"slot wakes", slotWakes, unsafe.Offsetof(s.Wakes)},
		{"slot fenced", slotFenced, unsafe.Offsetof(s.Fenced)},
		{"consumer state", consState, unsafe.Offsetof(c.State)},
		{"consumer pid", consPID, unsafe.Offsetof(c.PID)},
		{"consumer messages", consMessages, unsafe.Offsetof(c.Messages)},
		{"consumer bytes", consBytes, unsafe.Offsetof(c.Bytes)},
		{"consumer parks", consParks, unsafe.Offsetof(c.Parks)},
		{"consumer wakes", consWakes, unsafe.Offsetof(c.Wakes)},
		{"consumer recovered", consRecovered, unsafe.Offsetof(c.Recovered)},
		{"consumer reaped", consReaped, unsafe.Offsetof(c.Reaped)},
		{"consumer attaches", consGen, unsafe.Offsetof(c.Gen)},
		{"consumer corrupt", consCorrupt, unsafe.Offsetof(c.Corrupt)},
		{"consumer batch", consBatch, unsafe.Offsetof(c.Batch)},
		// Fixed numbers that FORMAT.md states in prose.
		{"first control line", offTail, 4096},
		{"head line", offHead, 4096 + 128},
		{"first slot", offSlots, 5120},
		{"data offset, 64 slots", uintptr(dataOffsetFor(64, 0)), 16384},
		{"data offset, 1 slot", uintptr(dataOffsetFor(1, 0)), 8192},
		{"data offset, 24 slots", uintptr(dataOffsetFor(24, 0)), 8192},
		{"data offset, 25 slots", uintptr(dataOffsetFor(25, 0)), 12288},
		{"data offset, 64 slots, 64 subscribers", uintptr(dataOffsetFor(64, 64)), 24576},
		{"fan-out line, 64 slots", uintptr(fanoutOffset(64)), 13312},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: offset %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	if unsafe.Sizeof(f) > LineSize || unsafe.Sizeof(u) > LineSize {
		t.Errorf("a fan-out line outgrows its space: %d, subscriber line %d", unsafe.Sizeof(f), unsafe.Sizeof(u))
	}
	if unsafe.Sizeof(h) > HeaderSize || unsafe.Sizeof(s) > LineSize || unsafe.Sizeof(c) > LineSize {
		t.Errorf("a mirrored struct outgrows its space: header %d, slot %d, consumer line %d", unsafe.Sizeof(h), unsafe.Sizeof(s), unsafe.Sizeof(c))
	}
	if offProducers+LineSize > offSlots || offConsumer+LineSize > offProducers {
		t.Error("control lines overlap")
	}
	if Magic != 0x01474e49524d4853 || InitComplete != 0x59444552 {
		t.Error("magic numbers changed: FORMAT.md states them")
	}
}

// TestFormatDocument checks every table row of FORMAT.md that names a field
// against the code, and that every field the code knows is documented.
func TestFormatDocument(t *testing.T) {
	doc, err := os.ReadFile("../FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (\\d+) \\| (\\d+) \\| `([a-z_0-9]+)` \\|")
	want := layout()
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		off, _ := strconv.Atoi(m[1])
		size, _ := strconv.Atoi(m[2])
		f, ok := want[m[3]]
		if !ok {
			t.Errorf("FORMAT.md documents %q, which the code does not have", m[3])
			continue
		}
		if uintptr(off) != f.off || uintptr(size) != f.size {
			t.Errorf("FORMAT.md: %s at %d, %d bytes; the code has %d, %d bytes", m[3], off, size, f.off, f.size)
		}
		seen[m[3]] = true
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("FORMAT.md does not document %s", name)
		}
	}
}
