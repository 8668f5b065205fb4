package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

func memStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore("store", StoreOptions{FS: vfs.NewMem(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func commit(t *testing.T, s *Store, key string, r *causal.Version) {
	t.Helper()
	wb := s.newWriteBatch()
	wb.putVersion(key, r)
	if err := s.commitNoWait(wb); err != nil {
		t.Fatal(err)
	}
	if err := wb.wait(); err != nil {
		t.Fatal(err)
	}
}

func ts(wall uint64, logical uint32, region string) clocks.Timestamp {
	return clocks.Timestamp{WallMs: wall, Logical: logical, Region: region}
}

func TestStoreNewestVersionFirst(t *testing.T) {
	s := memStore(t)
	// Written out of timestamp order, and with neighbours whose names share
	// prefixes or contain NUL, so only the key encoding keeps them apart.
	writes := []struct {
		key string
		ts  clocks.Timestamp
		val string
	}{
		{"a", ts(100, 0, "eu"), "a@100"},
		{"a", ts(300, 0, "eu"), "a@300"},
		{"a", ts(200, 5, "eu"), "a@200"},
		{"a", ts(300, 0, "us"), "a@300us"}, // same time, later region wins the tie-break
		{"a", ts(300, 0, "e"), "a@300e"},
		{"ab", ts(900, 0, "eu"), "ab@900"},
		{"a\x00", ts(950, 0, "eu"), "nul@950"},
		{"", ts(999, 0, "eu"), "empty"}, // never accepted by the node; the store still keeps it apart
	}
	for i, w := range writes {
		commit(t, s, w.key, &causal.Version{Kind: causal.KindValue, Timestamp: w.ts, Seq: uint64(i + 1),
			Vector: clocks.Vector{w.ts.Region: uint64(i + 1)}, Value: []byte(w.val)})
	}
	for key, want := range map[string]string{"a": "a@300us", "ab": "ab@900", "a\x00": "nul@950", "": "empty"} {
		vs, err := s.Siblings(key, true)
		if err != nil || len(vs) == 0 {
			t.Fatalf("Siblings(%q): %v, %v", key, vs, err)
		}
		rec := vs[0]
		if string(rec.Value) != want {
			t.Errorf("newest version of %q = %q, want %q", key, rec.Value, want)
		}
	}
	if vs, err := s.Siblings("b", true); len(vs) != 0 || err != nil {
		t.Errorf("Siblings(b) = %v, %v; want absent", vs, err)
	}

	versions, err := s.Siblings("a", true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range versions {
		got = append(got, string(v.Value))
	}
	want := []string{"a@300us", "a@300", "a@300e", "a@200", "a@100"} // us > eu > e at equal time
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("versions of a, newest first = %v, want %v", got, want)
	}
	for i := 1; i < len(versions); i++ {
		if !versions[i].Timestamp.Less(versions[i-1].Timestamp) {
			t.Errorf("versions out of order at %d: %v then %v", i, versions[i-1].Timestamp, versions[i].Timestamp)
		}
	}
}

func TestStoreTombstone(t *testing.T) {
	s := memStore(t)
	commit(t, s, "k", &causal.Version{Kind: causal.KindValue, Timestamp: ts(1, 0, "eu"), Seq: 1, Vector: clocks.Vector{"eu": 1}, Value: []byte("v")})
	commit(t, s, "k", &causal.Version{Kind: causal.KindTombstone, Timestamp: ts(2, 0, "eu"), Seq: 2, Vector: clocks.Vector{"eu": 2}})
	vs, err := s.Siblings("k", true)
	if err != nil || len(vs) == 0 || vs[0].Kind != causal.KindTombstone || vs[0].Seq != 2 {
		t.Fatalf("after delete: %+v, %v; want the tombstone first", vs, err)
	}
}

func TestRecordRoundTripAndCorruption(t *testing.T) {
	r := causal.Version{Kind: causal.KindValue, Timestamp: ts(1732349923123, 7, "us-east"), Seq: 42,
		Vector: clocks.Vector{"us-east": 42, "eu-west": 9}, Value: []byte("hello")}
	enc := encodeVersion(nil, &r)
	got, err := decodeVersion(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != r.Kind || got.Timestamp != r.Timestamp || got.Seq != r.Seq ||
		got.Vector.Compare(r.Vector) != clocks.Equal || !bytes.Equal(got.Value, r.Value) {
		t.Fatalf("round trip = %+v, want %+v", got, r)
	}
	for i := range enc {
		bad := bytes.Clone(enc)
		bad[i] ^= 0x40
		if _, err := decodeVersion(bad); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("flipping byte %d: err = %v, want ErrCorruptRecord", i, err)
		}
	}
	for n := 0; n < len(enc); n++ {
		if _, err := decodeVersion(enc[:n]); !errors.Is(err, ErrCorruptRecord) {
			t.Errorf("truncated to %d bytes: err = %v, want ErrCorruptRecord", n, err)
		}
	}
}

func TestStoreRefusesCorruptRecord(t *testing.T) {
	s := memStore(t)
	commit(t, s, "k", &causal.Version{Kind: causal.KindValue, Timestamp: ts(5, 0, "eu"), Seq: 1, Vector: clocks.Vector{"eu": 1}, Value: []byte("v")})
	// Damage the stored bytes behind the store's back.
	dk := appendDataKey(nil, "k", ts(5, 0, "eu"))
	raw, closer, err := s.db.Get(dk)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(raw)
	closer.Close()
	bad[len(bad)/2] ^= 1
	if err := s.db.Set(dk, bad, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Siblings("k", true); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("reading a damaged record: err = %v, want ErrCorruptRecord", err)
	}
}

func TestExpireRequests(t *testing.T) {
	s := memStore(t)
	old, fresh := uuid.New(), uuid.New()
	for _, c := range []struct {
		id   uuid.UUID
		wall uint64
	}{{old, 1000}, {fresh, 5000}} {
		wb := s.newWriteBatch()
		wb.putOutcome(c.id, &requestOutcome{Timestamp: ts(c.wall, 0, "eu"), Seq: 1, Vector: clocks.Vector{"eu": 1}})
		if err := s.commitNoWait(wb); err != nil {
			t.Fatal(err)
		}
		if err := wb.wait(); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.expireRequests(3000, 100)
	if err != nil || n != 1 {
		t.Fatalf("expireRequests = %d, %v; want 1 deleted", n, err)
	}
	if _, found, _ := s.outcome(old); found {
		t.Error("expired request id is still remembered")
	}
	if _, found, _ := s.outcome(fresh); !found {
		t.Error("fresh request id was expired")
	}
}

// A recycled write batch starts empty, keeps small scratch buffers, gives
// back large ones, and refuses a second release.
func TestWriteBatchRecycling(t *testing.T) {
	s := memStore(t)
	big := &causal.Version{Kind: causal.KindValue, Timestamp: ts(1, 0, "r"), Seq: 1,
		Vector: clocks.Vector{"r": 1}, Value: bytes.Repeat([]byte{'x'}, maxPooledScratch+1)}
	wb := s.newWriteBatch()
	wb.putVersion("big", big)
	wb.stage("big", []causal.Version{{Timestamp: big.Timestamp}})
	wb.abandon()
	if cap(wb.buf) != 0 || len(wb.staged) != 0 || wb.b != nil {
		t.Fatalf("released batch keeps buf cap %d, %d staged keys, pebble batch %v; want none",
			cap(wb.buf), len(wb.staged), wb.b)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("second release of a write batch did not panic")
			}
		}()
		wb.release()
	}()

	// A batch from the pool carries nothing of an abandoned one into the store.
	wb = s.newWriteBatch()
	wb.putVersion("big", big)
	wb.abandon()
	commit(t, s, "small", &causal.Version{Kind: causal.KindValue, Timestamp: ts(2, 0, "r"), Seq: 2,
		Vector: clocks.Vector{"r": 2}, Value: []byte("v")})
	got, err := s.Siblings("big", false)
	if err != nil || len(got) != 0 {
		t.Fatalf("abandoned write is visible: %v, %v", got, err)
	}
}

// TestTablesHoldOneKeyspace: no table of the store, flushed or compacted,
// holds keys of two keyspaces (tablePerKeyspace), so the append-only log
// and feed are not rewritten with the data versions.
func TestTablesHoldOneKeyspace(t *testing.T) {
	n, err := Open(Config{Region: "r1", DataDir: t.TempDir(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	db := n.store.db
	check := func(stage string) {
		t.Helper()
		levels, err := db.SSTables()
		if err != nil {
			t.Fatal(err)
		}
		tables := 0
		for level, ts := range levels {
			for _, table := range ts {
				tables++
				lo, hi := table.Smallest.UserKey, table.Largest.UserKey
				if lo[0] != hi[0] {
					t.Errorf("%s: table %v in L%d holds keys from %q to %q, two keyspaces", stage, table.FileNum, level, lo, hi)
				}
			}
		}
		if tables < 4 {
			t.Fatalf("%s: %d tables; the writes should have left at least one per keyspace (data, log, feed, state)", stage, tables)
		}
	}
	for round := range 3 {
		for i := range 200 {
			if _, err := n.Put(ctx, fmt.Sprintf("key-%d-%d", i, round), []byte("value"), "", ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	check("after flushes")
	if err := db.Compact(ctx, []byte{0}, []byte{0xFF, 0xFF}, true); err != nil {
		t.Fatal(err)
	}
	check("after a full compaction")
}
