package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// history applies a mixed sequence that leaves claims, registers, leases,
// locks, tokens and outcomes in the state.
func history(h *harness) {
	h.apply(claimCmd("users", "alice", "c1"))
	h.apply(putCmd("k", "v1"))
	lease := h.apply(grantCmd(10_000)).LeaseID
	h.apply(lockCmd("L", lease, "a"))
	short := h.apply(grantCmd(1000)).LeaseID
	h.apply(lockCmd("M", short, "b"))
	h.advance(1000) // the short lease expires, M stays with its newest token
	h.apply(casVersionCmd("k", "v2", 2))
}

// continuation is applied after a restore and compared.
var continuation = []Command{
	lockCmd("M", 3, "a"),
	claimCmd("users", "alice", "c2"),
	getCmd("k"),
	{Op: OpTick, NowMs: startMs + 20_000},
	lockCmd("L", 3, "a"),
	grantCmd(1000),
}

func TestSnapshotRestoreReplacesOlderState(t *testing.T) {
	src := newHarness(t)
	history(src)
	image := snapshotBytes(t, src.m)

	dst := newHarness(t)
	dst.apply(claimCmd("users", "bob", "other")) // state that must disappear
	dst.apply(putCmd("gone", "x"))
	if err := restoreBytes(dst.m, image); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := dst.m.LastApplied(); got != src.index {
		t.Fatalf("LastApplied after Restore = %d, want %d", got, src.index)
	}
	if !bytes.Equal(snapshotBytes(t, dst.m), image) {
		t.Fatal("restored state differs from the snapshot")
	}
	if dst.m.LatestToken("M") != src.m.LatestToken("M") || dst.m.clockMs() != src.m.clockMs() {
		t.Fatal("restored tokens or clock differ")
	}
	checkOutcomeCount(t, dst.m)

	// The same continuation gives the same results.
	dst.index, dst.nowMs, dst.reqs = src.index, src.nowMs, src.reqs
	for _, c := range continuation {
		c = src.fill(c)
		a, b := src.apply(c), dst.apply(c)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s after restore: %+v, original %+v", c.Op, b, a)
		}
	}
	if !bytes.Equal(snapshotBytes(t, dst.m), snapshotBytes(t, src.m)) {
		t.Fatal("states diverged after the continuation")
	}
}

// TestRestoreKeepsNewerState: raft restores its latest snapshot at start,
// but the Pebble state survived and is past it; it must be kept.
func TestRestoreKeepsNewerState(t *testing.T) {
	h := newHarness(t)
	history(h)
	older := snapshotBytes(t, h.m)
	for _, tc := range []struct {
		name    string
		advance func()
	}{
		{"snapshot at the same index", func() {}},
		{"snapshot behind", func() { h.apply(putCmd("k", "newer")); h.apply(claimCmd("x", "y", "z")) }},
	} {
		tc.advance()
		before := snapshotBytes(t, h.m)
		applied := h.m.LastApplied()
		if err := restoreBytes(h.m, older); err != nil {
			t.Fatalf("%s: Restore: %v", tc.name, err)
		}
		if h.m.LastApplied() != applied || !bytes.Equal(snapshotBytes(t, h.m), before) {
			t.Fatalf("%s: Restore of an older snapshot changed the state", tc.name)
		}
		if res := h.apply(putCmd("k", "after")); res.Code != CodeOK || res.Index != applied+1 {
			t.Fatalf("%s: the next entry after Restore gave %+v", tc.name, res)
		}
	}
}

// stream builds a snapshot stream from records, with a correct trailer
// unless the caller damages it afterwards.
func stream(index uint64, records []kv, count uint64) []byte {
	var e encoder
	e.raw([]byte(snapshotMagic))
	e.u8(snapshotFormatV1)
	e.u64(index)
	for _, r := range records {
		e.u8(snapshotTagRecord)
		e.bytes(r.key)
		e.bytes(r.value)
	}
	e.u8(snapshotTagEnd)
	e.u64(count)
	return binary.BigEndian.AppendUint32(e.buf, crc32.Checksum(e.buf, castagnoli))
}

func TestRestoreRefusesCorruptSnapshots(t *testing.T) {
	src := newHarness(t)
	history(src)
	image := snapshotBytes(t, src.m)
	index := src.index

	flip := func(i int) []byte {
		b := bytes.Clone(image)
		b[i] ^= 0x01
		return b
	}
	// Records with a valid checksum but impossible contents.
	applied := kv{keyApplied, u64Bytes(index)}
	format := kv{keyFormat, u64Bytes(storageFormat)}
	claim := kv{claimKey("n", "a"), append(u64Bytes(1), "o"...)}
	for _, tc := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "header"},
		{"not a snapshot", []byte("hello, this is not a snapshot at all"), "not a linear state snapshot"},
		{"unknown version", func() []byte { b := bytes.Clone(image); b[4] = 9; return b }(), "unknown snapshot format version 9"},
		{"flipped header index", flip(8), "disagrees with its header"},
		{"flipped record byte", flip(len(image) / 2), ""},
		{"flipped checksum", flip(len(image) - 1), "checksum"},
		{"truncated in a record", image[:len(image)/2], ""},
		{"truncated before the trailer", image[:len(image)-4], "trailer"},
		{"truncated in the trailer", image[:len(image)-2], "trailer"},
		{"trailing bytes", append(bytes.Clone(image), 0), "bytes follow its trailer"},
		{"wrong record count", stream(index, []kv{claim, applied, format}, 4), "holds 3 records but says 4"},
		{"unknown tag", func() []byte {
			b := stream(index, []kv{applied}, 1)
			b[13] = 7
			return b
		}(), "unknown tag 7"},
		{"unknown key", stream(index, []kv{{[]byte("zzz"), nil}, applied}, 2), "this machine never writes"},
		{"keys out of order", stream(index, []kv{format, claim, applied}, 3), "out of key order"},
		{"applied record disagrees with header", stream(index, []kv{claim, {keyApplied, u64Bytes(index - 1)}}, 2), "disagrees with its header"},
		{"no applied record", stream(index, []kv{claim, format}, 2), "no last applied record"},
		{"other storage format", stream(index, []kv{claim, applied, {keyFormat, u64Bytes(2)}}, 3), "storage format other than 1"},
		{"oversized value length", stream(index, []kv{claim, {keyClock, make([]byte, maxSnapshotValueBytes+1)}}, 2), "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Into a machine behind the snapshot (which would replace its
			// state) and into one ahead of it (which would keep its own):
			// both refuse and stay as they were.
			behind := newHarness(t)
			behind.apply(putCmd("mine", "x"))
			ahead := newHarness(t)
			history(ahead)
			ahead.apply(putCmd("more", "y"))
			for _, m := range []*Machine{behind.m, ahead.m} {
				before := snapshotBytes(t, m)
				applied := m.LastApplied()
				err := restoreBytes(m, tc.data)
				if !errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("Restore = %v, want ErrCorruptSnapshot mentioning %q", err, tc.msg)
				}
				if m.LastApplied() != applied || !bytes.Equal(snapshotBytes(t, m), before) {
					t.Fatal("a refused snapshot changed the state")
				}
			}
		})
	}
	// The helper builds streams Restore accepts, so the cases above fail
	// for the reason they name.
	good := stream(index, []kv{claim, applied, format}, 3)
	if err := restoreBytes(openMem(t), good); err != nil {
		t.Fatalf("Restore of a well-formed stream: %v", err)
	}
}

// TestSnapshotIsIsolatedFromLaterApplies: Persist writes the state as of
// Snapshot, though Apply continues meanwhile.
func TestSnapshotIsIsolatedFromLaterApplies(t *testing.T) {
	h := newHarness(t)
	history(h)
	want := snapshotBytes(t, h.m)
	s, err := h.m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	h.apply(putCmd("k", "later"))
	h.apply(claimCmd("later", "x", "o"))
	var sink memSink
	if err := s.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sink.Bytes(), want) {
		t.Fatal("the snapshot saw writes applied after it was taken")
	}
	s.Release() // twice is harmless
}

type failingSink struct{ memSink }

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestPersistCancelsOnError(t *testing.T) {
	h := newHarness(t)
	history(h)
	s, err := h.m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	var sink failingSink
	if err := s.Persist(&sink); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Persist = %v, want the sink's error", err)
	}
	if !sink.cancelled || sink.closed {
		t.Fatalf("sink cancelled=%v closed=%v, want cancelled only", sink.cancelled, sink.closed)
	}
}

func TestCloseReleasesForgottenSnapshots(t *testing.T) {
	m, err := Open("state", vfs.NewMem(), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close with an unreleased snapshot: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
