package logstore_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/causewaydb/causeway/linear/internal/logstore"
)

// rawLogKey is the documented key of the log entry at index.
func rawLogKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{0x01}, index)
}

// rawUpdate opens the store's directory with plain Pebble, as a damaged disk
// or a careless operator would present it, and lets fn change it. The store
// must be closed.
func rawUpdate(t *testing.T, fs vfs.FS, fn func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open("raft", &pebble.Options{FS: fs, FormatMajorVersion: pebble.FormatNewest, Logger: silentPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	fn(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

type silentPebble struct{}

func (silentPebble) Infof(string, ...any)  {}
func (silentPebble) Errorf(string, ...any) {}
func (silentPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

func rawGet(t *testing.T, db *pebble.DB, key []byte) []byte {
	t.Helper()
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatalf("raw get %x: %v", key, err)
	}
	defer closer.Close()
	return slices.Clone(v)
}

func rawSet(t *testing.T, db *pebble.DB, key, value []byte) {
	t.Helper()
	if err := db.Set(key, value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// openUnmanaged opens a store the test closes itself.
func openUnmanaged(t *testing.T, fs vfs.FS) *logstore.Store {
	t.Helper()
	s, err := logstore.Open("raft", fs, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustClose(t *testing.T, s *logstore.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// framed is the documented format-1 value of a record: the version, the
// CRC-32C of key and body, and the body, given in hex (spaces ignored).
func framed(t *testing.T, key []byte, bodyHex string) []byte {
	t.Helper()
	body, err := hex.DecodeString(strings.ReplaceAll(bodyHex, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	sum := crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, body)
	return append(binary.BigEndian.AppendUint32([]byte{1}, sum), body...)
}

// TestRecordFormat pins the on-disk layout documented in doc.go: a change
// to it must come with a new format version, or stores written by an older
// Causeway would be misread.
func TestRecordFormat(t *testing.T) {
	fs := vfs.NewMem()
	s := openUnmanaged(t, fs)
	mustStoreLog(t, s, &raft.Log{Index: 1, Term: 2, Type: raft.LogBarrier, Data: []byte("hi"), Extensions: []byte("x"), AppendedAt: time.Unix(3, 4)})
	mustSetUint64(t, s, keyCurrentTerm, 5)
	mustSet(t, s, keyLastVoteCand, []byte("n1"))
	mustClose(t, s)

	framed := func(key []byte, bodyHex string) []byte { return framed(t, key, bodyHex) }
	cases := []struct {
		name string
		key  []byte
		want []byte
	}{
		{"log entry", rawLogKey(1), framed(rawLogKey(1),
			"0000000000000001 0000000000000002 04 0000000000000003 00000004 02 6869 01 78")},
		{"stable integer", append([]byte{0x03}, keyCurrentTerm...), framed(append([]byte{0x03}, keyCurrentTerm...),
			"0000000000000005")},
		{"stable bytes", append([]byte{0x02}, keyLastVoteCand...), framed(append([]byte{0x02}, keyLastVoteCand...),
			"6e31")},
	}
	rawUpdate(t, fs, func(db *pebble.DB) {
		for _, tc := range cases {
			if got := rawGet(t, db, tc.key); !bytes.Equal(got, tc.want) {
				t.Errorf("%s: stored\n  %x\nwant\n  %x", tc.name, got, tc.want)
			}
		}
	})
}

// TestReopen shows that logs, stable values and the cached bounds come back
// after Close and Open, and that the bounds found by Open's seeks agree with
// the ones kept up to date while writing, also across gaps, which the
// conformance table leaves out because InmemStore only tracks contiguous logs.
func TestReopen(t *testing.T) {
	cases := []struct {
		name        string
		ops         func(t *testing.T, s *logstore.Store)
		first, last uint64
		present     []uint64
		absent      []uint64
	}{
		{"appends and compaction", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(1, 20, 1)...)
			mustDeleteRange(t, s, 1, 5)
		}, 6, 20, []uint64{6, 13, 20}, []uint64{1, 5, 21}},
		{"truncation then new term", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(1, 10, 1)...)
			mustDeleteRange(t, s, 8, 10)
			mustStoreLogs(t, s, entries(8, 9, 2)...)
		}, 1, 9, []uint64{1, 8, 9}, []uint64{10}},
		{"compaction over a gap", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(1, 3, 1)...)
			mustStoreLogs(t, s, entries(10, 12, 2)...)
			mustDeleteRange(t, s, 1, 4)
		}, 10, 12, []uint64{10, 12}, []uint64{3, 4, 9}},
		{"truncation over a gap", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(1, 3, 1)...)
			mustStoreLogs(t, s, entries(10, 12, 2)...)
			mustDeleteRange(t, s, 8, 12)
		}, 1, 3, []uint64{1, 3}, []uint64{10}},
		{"delete beyond the log", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(5, 10, 1)...)
			mustDeleteRange(t, s, 20, 30)
			mustDeleteRange(t, s, 1, 2)
		}, 5, 10, []uint64{5, 10}, nil},
		{"delete to the largest index", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(1, 10, 1)...)
			mustDeleteRange(t, s, 4, 1<<64-1)
		}, 1, 3, []uint64{3}, []uint64{4}},
		{"an entry below the first", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(10, 12, 1)...)
			mustStoreLog(t, s, entry(4, 1))
		}, 4, 12, []uint64{4, 10}, []uint64{5}},
		{"everything deleted", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(1, 10, 1)...)
			mustDeleteRange(t, s, 0, 100)
		}, 0, 0, nil, []uint64{1, 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			s := openUnmanaged(t, fs)
			tc.ops(t, s)
			mustSetUint64(t, s, keyCurrentTerm, 7)
			mustSet(t, s, keyLastVoteCand, []byte("n2"))
			wantBounds(t, s, tc.first, tc.last)
			mustClose(t, s)

			s = openMem(t, fs)
			wantBounds(t, s, tc.first, tc.last)
			for _, i := range tc.present {
				var l raft.Log
				if err := s.GetLog(i, &l); err != nil {
					t.Fatalf("GetLog(%d) after reopen: %v", i, err)
				}
				if l.Index != i || !bytes.HasPrefix(l.Data, []byte("cmd ")) {
					t.Fatalf("GetLog(%d) after reopen = %s", i, describe(&l))
				}
			}
			for _, i := range tc.absent {
				wantNotFound(t, s, i)
			}
			wantUint64(t, s, keyCurrentTerm, 7)
			wantGet(t, s, keyLastVoteCand, []byte("n2"))
		})
	}
}

// TestConcurrentAppendAndCompaction appends from one goroutine while
// another compacts the prefix, as Raft's main loop and its snapshot loop do,
// and checks that the cached bounds end up where Open's seeks find them.
func TestConcurrentAppendAndCompaction(t *testing.T) {
	fs := vfs.NewMem()
	s := openUnmanaged(t, fs)
	const batches, batchLen = 40, 5
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for b := range uint64(batches) {
			if err := s.StoreLogs(entries(b*batchLen+1, (b+1)*batchLen, 1)); err != nil {
				errs <- err
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range batches {
			first, err := s.FirstIndex()
			if err != nil {
				errs <- err
				return
			}
			if first == 0 {
				continue
			}
			if err := s.DeleteRange(first, first+2); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if last != batches*batchLen {
		t.Fatalf("LastIndex = %d, want %d", last, batches*batchLen)
	}
	mustClose(t, s)
	wantBounds(t, openMem(t, fs), first, last)
}

// TestAcknowledgedWritesSurviveACrash takes a crash image of the filesystem
// (only what was fsynced) right after each acknowledged call and opens the
// store on it: the call's effect must be there.
func TestAcknowledgedWritesSurviveACrash(t *testing.T) {
	cases := []struct {
		name  string
		write func(t *testing.T, s *logstore.Store)
		check func(t *testing.T, s *logstore.Store)
	}{
		{"StoreLog", func(t *testing.T, s *logstore.Store) {
			mustStoreLog(t, s, entry(1, 1))
		}, func(t *testing.T, s *logstore.Store) {
			wantBounds(t, s, 1, 1)
			wantLog(t, s, entry(1, 1))
		}},
		{"StoreLogs", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(1, 50, 1)...)
		}, func(t *testing.T, s *logstore.Store) {
			wantBounds(t, s, 1, 50)
			wantLog(t, s, entry(50, 1))
		}},
		{"DeleteRange", func(t *testing.T, s *logstore.Store) {
			mustStoreLogs(t, s, entries(1, 10, 1)...)
			mustDeleteRange(t, s, 6, 10)
		}, func(t *testing.T, s *logstore.Store) {
			wantBounds(t, s, 1, 5)
			wantNotFound(t, s, 6)
		}},
		{"SetUint64", func(t *testing.T, s *logstore.Store) {
			mustSetUint64(t, s, keyCurrentTerm, 9)
		}, func(t *testing.T, s *logstore.Store) {
			wantUint64(t, s, keyCurrentTerm, 9)
		}},
		{"Set", func(t *testing.T, s *logstore.Store) {
			mustSet(t, s, keyLastVoteCand, []byte("n3"))
		}, func(t *testing.T, s *logstore.Store) {
			wantGet(t, s, keyLastVoteCand, []byte("n3"))
		}},
		{"Set nil", func(t *testing.T, s *logstore.Store) {
			mustSet(t, s, keyLastVoteCand, []byte("n3"))
			mustSet(t, s, keyLastVoteCand, nil)
		}, func(t *testing.T, s *logstore.Store) {
			wantGetMissing(t, s, keyLastVoteCand)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			s := openMem(t, fs)
			tc.write(t, s)
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
			tc.check(t, openMem(t, crashed))
		})
	}
}

// TestDamagedRecordsAreRefused damages stored records behind the store's
// back and checks that each read reports ErrCorruptRecord instead of
// returning a wrong entry or value.
func TestDamagedRecordsAreRefused(t *testing.T) {
	t.Run("every byte of a log record", func(t *testing.T) {
		// Entries of equal length; entry i gets byte i-1 of its record
		// flipped, so one reopen checks every position.
		sameLength := func(from, to uint64) []*raft.Log {
			var out []*raft.Log
			for i := from; i <= to; i++ {
				out = append(out, &raft.Log{Index: i, Term: 1, Data: fmt.Appendf(nil, "%08d", i), Extensions: []byte("e"), AppendedAt: time.Unix(int64(i), 0)})
			}
			return out
		}
		fs := vfs.NewMem()
		s := openUnmanaged(t, fs)
		mustStoreLogs(t, s, sameLength(1, 1)...)
		mustClose(t, s)
		var recordLen int
		rawUpdate(t, fs, func(db *pebble.DB) { recordLen = len(rawGet(t, db, rawLogKey(1))) })

		s = openUnmanaged(t, fs)
		mustStoreLogs(t, s, sameLength(1, uint64(recordLen))...)
		mustClose(t, s)
		rawUpdate(t, fs, func(db *pebble.DB) {
			for i := 1; i <= recordLen; i++ {
				v := rawGet(t, db, rawLogKey(uint64(i)))
				if len(v) != recordLen {
					t.Fatalf("record %d is %d bytes, want %d", i, len(v), recordLen)
				}
				v[i-1] ^= 0x10
				rawSet(t, db, rawLogKey(uint64(i)), v)
			}
		})
		s = openMem(t, fs)
		for i := 1; i <= recordLen; i++ {
			wantCorrupt(t, s, uint64(i))
		}
	})

	cases := []struct {
		name    string
		damage  func(t *testing.T, db *pebble.DB)
		read    func(s *logstore.Store) error
		message string // a part of the error a person would search for
	}{
		{"unknown format version", func(t *testing.T, db *pebble.DB) {
			v := rawGet(t, db, rawLogKey(2))
			v[0] = 2
			rawSet(t, db, rawLogKey(2), v)
		}, getLog(2), "format version 2"},
		{"truncated log record", func(t *testing.T, db *pebble.DB) {
			v := rawGet(t, db, rawLogKey(2))
			rawSet(t, db, rawLogKey(2), v[:len(v)-1])
		}, getLog(2), "checksum"},
		{"log record shorter than its header", func(t *testing.T, db *pebble.DB) {
			rawSet(t, db, rawLogKey(2), []byte{1, 0})
		}, getLog(2), "header"},
		{"log record with a byte appended", func(t *testing.T, db *pebble.DB) {
			rawSet(t, db, rawLogKey(2), append(rawGet(t, db, rawLogKey(2)), 0))
		}, getLog(2), "checksum"},
		{"log record copied under another index", func(t *testing.T, db *pebble.DB) {
			rawSet(t, db, rawLogKey(3), rawGet(t, db, rawLogKey(2)))
		}, getLog(3), "checksum"},
		{"log record holding another index under a valid checksum", func(t *testing.T, db *pebble.DB) {
			rawSet(t, db, rawLogKey(3), framed(t, rawLogKey(3),
				"0000000000000002 0000000000000001 00 0000000000000000 00000000 00 00"))
		}, getLog(3), "holds index 2"},
		{"log record with an impossible AppendedAt", func(t *testing.T, db *pebble.DB) {
			rawSet(t, db, rawLogKey(3), framed(t, rawLogKey(3),
				"0000000000000003 0000000000000001 00 0000000000000000 3b9aca00 00 00"))
		}, getLog(3), "nanoseconds"},
		{"log record whose data length overruns it", func(t *testing.T, db *pebble.DB) {
			rawSet(t, db, rawLogKey(3), framed(t, rawLogKey(3),
				"0000000000000003 0000000000000001 00 0000000000000000 00000000 05 6869 00"))
		}, getLog(3), "exceeds"},
		{"log record with bytes after its fields", func(t *testing.T, db *pebble.DB) {
			rawSet(t, db, rawLogKey(3), framed(t, rawLogKey(3),
				"0000000000000003 0000000000000001 00 0000000000000000 00000000 00 00 ff"))
		}, getLog(3), "unexpected bytes"},
		{"stable integer of the wrong width", func(t *testing.T, db *pebble.DB) {
			key := append([]byte{0x03}, keyCurrentTerm...)
			rawSet(t, db, key, framed(t, key, "01"))
		}, func(s *logstore.Store) error { _, err := s.GetUint64(keyCurrentTerm); return err }, "want 8"},
		{"stable integer", func(t *testing.T, db *pebble.DB) {
			key := append([]byte{0x03}, keyCurrentTerm...)
			v := rawGet(t, db, key)
			v[len(v)-1] ^= 1
			rawSet(t, db, key, v)
		}, func(s *logstore.Store) error { _, err := s.GetUint64(keyCurrentTerm); return err }, "CurrentTerm"},
		{"stable bytes", func(t *testing.T, db *pebble.DB) {
			key := append([]byte{0x02}, keyLastVoteCand...)
			v := rawGet(t, db, key)
			v[len(v)-1] ^= 1
			rawSet(t, db, key, v)
		}, func(s *logstore.Store) error { _, err := s.Get(keyLastVoteCand); return err }, "LastVoteCand"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			s := openUnmanaged(t, fs)
			mustStoreLogs(t, s, entries(1, 3, 1)...)
			mustSetUint64(t, s, keyCurrentTerm, 4)
			mustSet(t, s, keyLastVoteCand, []byte("n1"))
			mustClose(t, s)
			rawUpdate(t, fs, func(db *pebble.DB) { tc.damage(t, db) })
			s = openMem(t, fs)
			err := tc.read(s)
			if !errors.Is(err, logstore.ErrCorruptRecord) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("read after damage: %v; want ErrCorruptRecord mentioning %q", err, tc.message)
			}
			// The undamaged neighbour is still readable.
			wantLog(t, s, entry(1, 1))
		})
	}

	t.Run("malformed log key", func(t *testing.T) {
		fs := vfs.NewMem()
		s := openUnmanaged(t, fs)
		mustStoreLogs(t, s, entries(1, 3, 1)...)
		mustClose(t, s)
		rawUpdate(t, fs, func(db *pebble.DB) { rawSet(t, db, []byte{0x01, 0xff}, []byte{1}) })
		s, err := logstore.Open("raft", fs, quietLogger())
		if err == nil {
			s.Close()
			t.Fatal("Open accepted a log key that is not an index")
		}
		if !errors.Is(err, logstore.ErrCorruptRecord) {
			t.Fatalf("Open: %v; want ErrCorruptRecord", err)
		}
	})
}

func getLog(index uint64) func(s *logstore.Store) error {
	return func(s *logstore.Store) error {
		var l raft.Log
		return s.GetLog(index, &l)
	}
}

func wantCorrupt(t *testing.T, s *logstore.Store, index uint64) {
	t.Helper()
	l := raft.Log{Term: 99}
	err := s.GetLog(index, &l)
	if !errors.Is(err, logstore.ErrCorruptRecord) {
		t.Fatalf("GetLog(%d) of a damaged record = %v, %s; want ErrCorruptRecord", index, err, describe(&l))
	}
	if l.Term != 99 || l.Index != 0 || l.Data != nil {
		t.Fatalf("GetLog(%d) of a damaged record changed its output to %s", index, describe(&l))
	}
}

// TestReadEntriesAreIndependent checks that growing a read entry's Data
// cannot overwrite its Extensions, which are decoded from the same buffer.
func TestReadEntriesAreIndependent(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	mustStoreLog(t, s, &raft.Log{Index: 1, Term: 1, Data: []byte("data"), Extensions: []byte("ext")})
	var l raft.Log
	if err := s.GetLog(1, &l); err != nil {
		t.Fatal(err)
	}
	l.Data = append(l.Data, "XXX"...)
	if string(l.Extensions) != "ext" {
		t.Fatalf("appending to Data changed Extensions to %q", l.Extensions)
	}
}

func TestIndexZeroIsRefused(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	mustStoreLog(t, s, entry(1, 1))
	if err := s.StoreLogs([]*raft.Log{entry(2, 1), {Index: 0, Term: 1}}); err == nil {
		t.Fatal("StoreLogs accepted index 0")
	}
	// Nothing of the refused batch was written.
	wantBounds(t, s, 1, 1)
	wantNotFound(t, s, 2)
}

// TestRaftRecoversFromTheStore runs a single-node Raft cluster on the store
// in a real directory, stops it, and starts it again on the reopened store:
// the log, the term and the applied commands come back.
func TestRaftRecoversFromTheStore(t *testing.T) {
	dir := t.TempDir()
	raftLog := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("raft's log:\n%s", raftLog.String())
		}
	})
	config := func() *raft.Config {
		c := raft.DefaultConfig()
		c.LocalID = "n1"
		c.HeartbeatTimeout = 50 * time.Millisecond
		c.ElectionTimeout = 50 * time.Millisecond
		c.LeaderLeaseTimeout = 50 * time.Millisecond
		c.CommitTimeout = 5 * time.Millisecond
		c.LogOutput = raftLog
		return c
	}
	snaps, err := raft.NewFileSnapshotStore(filepath.Join(dir, "snapshots"), 2, raftLog)
	if err != nil {
		t.Fatal(err)
	}
	openStore := func() *logstore.Store {
		s, err := logstore.Open(filepath.Join(dir, "raft"), vfs.Default, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	commands := []string{"claim a", "claim b", "cas c"}

	// First life: bootstrap, elect, apply.
	st := openStore()
	addr, trans := raft.NewInmemTransport("n1")
	bootstrap := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "n1", Address: addr}}}
	if err := raft.BootstrapCluster(config(), st, st, snaps, trans, bootstrap); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	fsm1 := &recordingFSM{}
	r, err := raft.NewRaft(config(), fsm1, st, st, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft: %v", err)
	}
	waitLeader(t, r)
	var lastIndex uint64
	for i, c := range commands {
		f := r.Apply([]byte(c), 5*time.Second)
		if err := f.Error(); err != nil {
			t.Fatalf("apply %q: %v", c, err)
		}
		if got := f.Response(); got != i+1 {
			t.Fatalf("apply %q: FSM answered %v, want %d", c, got, i+1)
		}
		lastIndex = f.Index()
	}
	term1, err := st.GetUint64(keyCurrentTerm)
	if err != nil || term1 == 0 {
		t.Fatalf("current term while leader = %d, %v", term1, err)
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	trans.Close()
	mustClose(t, st)

	// What Raft wrote is on disk.
	st = openStore()
	t.Cleanup(func() { mustClose(t, st) })
	wantBounds(t, st, 1, lastIndex)
	wantUint64(t, st, keyCurrentTerm, term1)
	wantUint64(t, st, keyLastVoteTerm, term1)
	wantGet(t, st, keyLastVoteCand, []byte(addr))
	var first raft.Log
	if err := st.GetLog(1, &first); err != nil || first.Type != raft.LogConfiguration || first.Term != 1 {
		t.Fatalf("GetLog(1) = %s, %v; want the bootstrap configuration in term 1", describe(&first), err)
	}
	for i, c := range commands {
		var l raft.Log
		index := lastIndex - uint64(len(commands)-1-i)
		if err := st.GetLog(index, &l); err != nil || l.Type != raft.LogCommand || string(l.Data) != c || l.Term != term1 {
			t.Fatalf("GetLog(%d) = %s, %v; want command %q in term %d", index, describe(&l), err, c, term1)
		}
	}
	if err := raft.BootstrapCluster(config(), st, st, snaps, trans, bootstrap); !errors.Is(err, raft.ErrCantBootstrap) {
		t.Fatalf("bootstrap of a store with state: %v; want raft.ErrCantBootstrap", err)
	}

	// Second life: the node elects itself in a later term and replays the
	// log into a fresh state machine.
	_, trans = raft.NewInmemTransport(addr)
	fsm2 := &recordingFSM{}
	r, err = raft.NewRaft(config(), fsm2, st, st, snaps, trans)
	if err != nil {
		t.Fatalf("NewRaft on the reopened store: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown().Error(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		trans.Close()
	})
	if got := r.LastIndex(); got != lastIndex {
		t.Fatalf("restarted raft's last index = %d, want %d", got, lastIndex)
	}
	waitLeader(t, r)
	if err := r.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatalf("barrier: %v", err)
	}
	if got := fsm2.commands(); !slices.Equal(got, commands) {
		t.Fatalf("replayed commands = %q, want %q", got, commands)
	}
	term2, err := st.GetUint64(keyCurrentTerm)
	if err != nil || term2 <= term1 {
		t.Fatalf("term after restart = %d, %v; want more than %d", term2, err, term1)
	}
	f := r.Apply([]byte("lock d"), 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("apply after restart: %v", err)
	}
	if f.Index() <= lastIndex || f.Response() != len(commands)+1 {
		t.Fatalf("apply after restart: index %d, response %v; want index above %d, response %d",
			f.Index(), f.Response(), lastIndex, len(commands)+1)
	}
}

// waitLeader waits until r reports that it leads, or fails after a deadline
// far beyond the configured 50ms election timeout.
func waitLeader(t *testing.T, r *raft.Raft) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case leader := <-r.LeaderCh():
			if leader {
				return
			}
		case <-deadline.C:
			t.Fatalf("no leadership within 10s; state %v", r.State())
		}
	}
}

// recordingFSM is a state machine that remembers the commands applied to
// it, in order.
type recordingFSM struct {
	mu      sync.Mutex
	applied []string
}

func (f *recordingFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, string(l.Data))
	return len(f.applied)
}

func (f *recordingFSM) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.applied)
}

func (f *recordingFSM) Snapshot() (raft.FSMSnapshot, error) {
	return recordingSnapshot(f.commands()), nil
}

func (f *recordingFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var applied []string
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		applied = append(applied, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = applied
	return nil
}

type recordingSnapshot []string

func (s recordingSnapshot) Persist(sink raft.SnapshotSink) error {
	for _, c := range s {
		if _, err := io.WriteString(sink, c+"\n"); err != nil {
			return errors.Join(err, sink.Cancel())
		}
	}
	return sink.Close()
}

func (recordingSnapshot) Release() {}

// syncBuffer collects raft's log lines from its goroutines, to print them
// if the test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
