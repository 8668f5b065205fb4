package logstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/linear/internal/logstore"
)

// store is what Raft needs from a log store and stable store in one.
type store interface {
	raft.LogStore
	raft.StableStore
}

// implementations are the stores the conformance table runs against: raft's
// InmemStore is the reference behaviour.
var implementations = []struct {
	name string
	open func(t *testing.T) store
}{
	{"InmemStore", func(*testing.T) store { return raft.NewInmemStore() }},
	{"logstore", func(t *testing.T) store { return openMem(t, vfs.NewMem()) }},
}

func openMem(t *testing.T, fs vfs.FS) *logstore.Store {
	t.Helper()
	s, err := logstore.Open("raft", fs, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// The keys Raft v1.8 keeps in its stable store (unexported in raft).
var (
	keyCurrentTerm  = []byte("CurrentTerm")
	keyLastVoteTerm = []byte("LastVoteTerm")
	keyLastVoteCand = []byte("LastVoteCand")
)

// TestConformance runs one table against raft's InmemStore and against the
// Pebble store, so that every expectation below is one the reference store
// meets too.
func TestConformance(t *testing.T) {
	appendedAt := time.Date(2031, 4, 5, 6, 7, 8, 123456789, time.FixedZone("UTC+5", 5*3600))
	cases := []struct {
		name string
		run  func(t *testing.T, s store)
	}{
		{"empty store", func(t *testing.T, s store) {
			wantBounds(t, s, 0, 0)
			for _, i := range []uint64{0, 1, math.MaxUint64} {
				wantNotFound(t, s, i)
			}
		}},
		{"every field round trips", func(t *testing.T, s store) {
			logs := []*raft.Log{
				{Index: 1, Term: 3, Type: raft.LogConfiguration, Data: []byte("config"), Extensions: []byte{0, 1, 2, 0xff}, AppendedAt: appendedAt},
				{Index: 2, Term: 3, Type: raft.LogNoop},
				{Index: 3, Term: math.MaxUint64, Type: raft.LogCommand, Data: bytes.Repeat([]byte{0xab}, 70000), AppendedAt: time.Unix(0, 1)},
				{Index: 4, Term: 4, Type: raft.LogType(200), Extensions: []byte("ext"), AppendedAt: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
				{Index: 5, Term: 4, Type: raft.LogBarrier, Data: []byte{0}, AppendedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
			}
			mustStoreLog(t, s, logs[0])
			mustStoreLogs(t, s, logs[1:]...)
			for _, want := range logs {
				wantLog(t, s, want)
			}
			wantBounds(t, s, 1, 5)
		}},
		{"appends move the last index", func(t *testing.T, s store) {
			mustStoreLogs(t, s, entries(1, 10, 1)...)
			wantBounds(t, s, 1, 10)
			mustStoreLog(t, s, entry(11, 2))
			wantBounds(t, s, 1, 11)
			mustStoreLogs(t, s, entries(12, 13, 2)...)
			wantBounds(t, s, 1, 13)
		}},
		{"log starting after a snapshot", func(t *testing.T, s store) {
			mustStoreLogs(t, s, entries(101, 105, 7)...)
			wantBounds(t, s, 101, 105)
			wantNotFound(t, s, 100)
			wantLog(t, s, entry(101, 7))
		}},
		{"compaction deletes a prefix", func(t *testing.T, s store) {
			mustStoreLogs(t, s, entries(1, 10, 1)...)
			mustDeleteRange(t, s, 1, 4)
			wantBounds(t, s, 5, 10)
			for i := uint64(1); i <= 4; i++ {
				wantNotFound(t, s, i)
			}
			for i := uint64(5); i <= 10; i++ {
				wantLog(t, s, entry(i, 1))
			}
			mustDeleteRange(t, s, 5, 9)
			wantBounds(t, s, 10, 10)
		}},
		{"conflict truncation deletes a suffix", func(t *testing.T, s store) {
			mustStoreLogs(t, s, entries(1, 10, 1)...)
			mustDeleteRange(t, s, 7, 10)
			wantBounds(t, s, 1, 6)
			for i := uint64(7); i <= 10; i++ {
				wantNotFound(t, s, i)
			}
			wantLog(t, s, entry(6, 1))
			// The new leader's entries replace the cut ones.
			mustStoreLogs(t, s, entries(7, 8, 2)...)
			wantBounds(t, s, 1, 8)
			wantLog(t, s, entry(7, 2))
			wantLog(t, s, entry(8, 2))
			wantNotFound(t, s, 9)
		}},
		{"deleting everything empties the log", func(t *testing.T, s store) {
			mustStoreLogs(t, s, entries(1, 10, 1)...)
			mustDeleteRange(t, s, 1, 10)
			wantBounds(t, s, 0, 0)
			wantNotFound(t, s, 1)
			wantNotFound(t, s, 10)
			// After restoring a snapshot the log starts again further on.
			mustStoreLogs(t, s, entries(21, 22, 3)...)
			wantBounds(t, s, 21, 22)
		}},
		{"deleting the middle keeps the bounds", func(t *testing.T, s store) {
			mustStoreLogs(t, s, entries(1, 10, 1)...)
			mustDeleteRange(t, s, 4, 6)
			wantBounds(t, s, 1, 10)
			wantLog(t, s, entry(3, 1))
			wantNotFound(t, s, 4)
			wantNotFound(t, s, 6)
			wantLog(t, s, entry(7, 1))
		}},
		{"an empty or inverted range deletes nothing", func(t *testing.T, s store) {
			mustStoreLogs(t, s, entries(1, 5, 1)...)
			mustDeleteRange(t, s, 4, 3)
			wantBounds(t, s, 1, 5)
			wantLog(t, s, entry(3, 1))
			wantLog(t, s, entry(4, 1))
		}},
		{"storing an index again overwrites it", func(t *testing.T, s store) {
			mustStoreLogs(t, s, entries(1, 5, 1)...)
			replacement := &raft.Log{Index: 5, Term: 2, Type: raft.LogCommand, Data: []byte("new")}
			mustStoreLog(t, s, replacement)
			wantLog(t, s, replacement)
			wantBounds(t, s, 1, 5)
			mustStoreLogs(t, s, entry(3, 9), entry(4, 9))
			wantLog(t, s, entry(3, 9))
			wantLog(t, s, entry(4, 9))
			wantBounds(t, s, 1, 5)
		}},
		{"stable bytes", func(t *testing.T, s store) {
			wantGetMissing(t, s, keyLastVoteCand)
			mustSet(t, s, keyLastVoteCand, []byte("node-a"))
			wantGet(t, s, keyLastVoteCand, []byte("node-a"))
			mustSet(t, s, keyLastVoteCand, []byte("node-b"))
			wantGet(t, s, keyLastVoteCand, []byte("node-b"))
			wantGetMissing(t, s, []byte("other"))
			// An empty value is a value; a nil one reads as missing.
			mustSet(t, s, keyLastVoteCand, []byte{})
			wantGet(t, s, keyLastVoteCand, []byte{})
			mustSet(t, s, keyLastVoteCand, nil)
			wantGetMissing(t, s, keyLastVoteCand)
			// Binary keys and values.
			mustSet(t, s, []byte{0, 0xff}, []byte{0xff, 0})
			wantGet(t, s, []byte{0, 0xff}, []byte{0xff, 0})
		}},
		{"stable integers", func(t *testing.T, s store) {
			wantUint64(t, s, keyCurrentTerm, 0)
			for _, v := range []uint64{1, 7, math.MaxUint64, 0, 3} {
				mustSetUint64(t, s, keyCurrentTerm, v)
				wantUint64(t, s, keyCurrentTerm, v)
			}
			wantUint64(t, s, keyLastVoteTerm, 0)
		}},
		{"bytes and integers are separate key spaces", func(t *testing.T, s store) {
			mustSet(t, s, []byte("k"), []byte("12345678"))
			wantUint64(t, s, []byte("k"), 0)
			mustSetUint64(t, s, []byte("n"), 7)
			wantGetMissing(t, s, []byte("n"))
		}},
		{"raft sees a fresh store as having no state", func(t *testing.T, s store) {
			snaps := raft.NewInmemSnapshotStore()
			if has, err := raft.HasExistingState(s, s, snaps); err != nil || has {
				t.Fatalf("HasExistingState on a fresh store = %v, %v; want false, nil", has, err)
			}
			mustSetUint64(t, s, keyCurrentTerm, 1)
			if has, err := raft.HasExistingState(s, s, snaps); err != nil || !has {
				t.Fatalf("HasExistingState after setting the term = %v, %v; want true, nil", has, err)
			}
		}},
	}
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, impl.open(t)) })
			}
		})
	}
}

// entry is a command entry whose payload names its index and term, so that
// reading the wrong entry, or an old one, shows.
func entry(index, term uint64) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogCommand,
		Data:       fmt.Appendf(nil, "cmd %d@%d", index, term),
		AppendedAt: time.Date(2030, 1, 1, 0, 0, int(index), int(term), time.UTC),
	}
}

func entries(from, to, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, entry(i, term))
	}
	return out
}

// sameLog reports whether two entries hold the same fields: bytes compared
// by content (empty and nil alike) and AppendedAt as an instant.
func sameLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func describe(l *raft.Log) string {
	return fmt.Sprintf("{Index:%d Term:%d Type:%v Data:%.32q(%d bytes) Extensions:%q AppendedAt:%v}",
		l.Index, l.Term, l.Type, l.Data, len(l.Data), l.Extensions, l.AppendedAt)
}

func wantLog(t *testing.T, s raft.LogStore, want *raft.Log) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(want.Index, &got); err != nil {
		t.Fatalf("GetLog(%d): %v", want.Index, err)
	}
	if !sameLog(&got, want) {
		t.Fatalf("GetLog(%d) =\n  %s\nwant\n  %s", want.Index, describe(&got), describe(want))
	}
}

func wantNotFound(t *testing.T, s raft.LogStore, index uint64) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(index, &got); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(%d) = %v (%s); want raft.ErrLogNotFound", index, err, describe(&got))
	}
}

func wantBounds(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	gotFirst, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	gotLast, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if gotFirst != first || gotLast != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", gotFirst, gotLast, first, last)
	}
}

func wantGet(t *testing.T, s raft.StableStore, key, want []byte) {
	t.Helper()
	got, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		t.Fatalf("Get(%q) = %#v; want %#v", key, got, want)
	}
}

// wantGetMissing checks what Raft v1.8 relies on for a missing key: a nil
// value and an error whose message is exactly "not found".
func wantGetMissing(t *testing.T, s raft.StableStore, key []byte) {
	t.Helper()
	got, err := s.Get(key)
	if err == nil || err.Error() != "not found" || got != nil {
		t.Fatalf(`Get(%q) = %#v, %v; want nil, "not found"`, key, got, err)
	}
}

func wantUint64(t *testing.T, s raft.StableStore, key []byte, want uint64) {
	t.Helper()
	got, err := s.GetUint64(key)
	if err != nil || got != want {
		t.Fatalf("GetUint64(%q) = %d, %v; want %d, nil", key, got, err, want)
	}
}

func mustStoreLog(t *testing.T, s raft.LogStore, l *raft.Log) {
	t.Helper()
	if err := s.StoreLog(l); err != nil {
		t.Fatalf("StoreLog(%d): %v", l.Index, err)
	}
}

func mustStoreLogs(t *testing.T, s raft.LogStore, logs ...*raft.Log) {
	t.Helper()
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs: %v", err)
	}
}

func mustDeleteRange(t *testing.T, s raft.LogStore, from, to uint64) {
	t.Helper()
	if err := s.DeleteRange(from, to); err != nil {
		t.Fatalf("DeleteRange(%d, %d): %v", from, to, err)
	}
}

func mustSet(t *testing.T, s raft.StableStore, key, val []byte) {
	t.Helper()
	if err := s.Set(key, val); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func mustSetUint64(t *testing.T, s raft.StableStore, key []byte, val uint64) {
	t.Helper()
	if err := s.SetUint64(key, val); err != nil {
		t.Fatalf("SetUint64(%q): %v", key, err)
	}
}
