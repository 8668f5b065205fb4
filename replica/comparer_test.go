package replica

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// sampleUserKeys share prefixes with one another, hold the escaped byte
// 0x00 and the terminator's bytes: the keys on which a wrong Split would
// mix up two keys' versions.
var sampleUserKeys = []string{"", "a", "a\x00", "a\x00\x01", "a\x00\xff", "a\x01", "a\x02", "ab", "a\xff", "\x00", "\x00\x01", "\xff", "k\x00b"}

// sampleTimestamps are timestamps of every shape a node writes: wall
// clocks of today and of the epoch, logical counters, region names.
var sampleTimestamps = []clocks.Timestamp{
	ts(1_764_700_000_000, 0, "us-east"),
	ts(1_764_700_000_000, 1, "us-east"),
	ts(1_764_700_000_000, 0, "eu-west-1"),
	ts(1_764_700_000_001, 0, "ap"),
	ts(1_000, 7, "z"),
	ts(0, 0, "a"),
}

// TestComparerPassesPebblesChecker runs Pebble's own check of a comparer
// (pebble.CheckComparer) on the keys of every keyspace and the prefixes of
// keys that extend one another.
//
// It runs it with the empty suffix only: the checker also requires that a
// prefix with leading bytes removed, followed by any suffix, is cut at the
// same place (for synthetic prefixes, which Pebble adds only to external
// tables ingested with one, which Causeway never does), and no two-byte
// terminator gives that for the last byte alone (0x01 followed by a
// suffix). The order of versions behind a prefix, what the checker would
// test with suffixes, is checked on random keys by
// TestComparerSplitOnRandomKeys, and on real versions by
// TestSiblingsOnKeysThatSharePrefixes and the store conformance tests.
func TestComparerPassesPebblesChecker(t *testing.T) {
	var prefixes [][]byte
	for _, k := range sampleUserKeys {
		prefixes = append(prefixes, appendKeyPrefix(nil, k))
	}
	for _, p := range prefixes {
		for _, tsv := range sampleTimestamps {
			k := appendDataKey(nil, "", tsv)
			k = append(bytes.Clone(p), k[len(appendKeyPrefix(nil, "")):]...)
			if n := causewayComparer.Split(k); n != len(p) {
				t.Errorf("Split(%x) = %d; want %d, the key's prefix", k, n, len(p))
			}
		}
	}

	// Every other keyspace: keys are whole unless they hold the
	// terminator, and then they are cut right after it.
	dataKey := appendDataKey(nil, "a\x00b", sampleTimestamps[0])
	others := [][]byte{
		logKey(1), logKey(256), logKey(1 << 40), feedKey(1), feedKey(0x0100_0000),
		requestKey(uuid.MustParse("0001a0b0-0001-4000-8000-000000000001")), requestKey(uuid.New()),
		requestExpiryKey(1_764_700_000_000, uuid.New()),
		metaCluster, metaFormat, metaState, metaFeedFloor, append(bytes.Clone(metaPeerPrefix), "eu-west"...),
		tombstoneKey("us-east", 5, dataKey), tombstoneKey("us-east", 256, dataKey),
		fenceKey("lock"), fenceKey("lock\x00\x01with-terminator"),
	}
	for _, k := range others {
		n := causewayComparer.Split(k)
		i := bytes.Index(k, terminator)
		switch {
		case i < 0 && n != len(k):
			t.Errorf("Split(%x) = %d; want the whole key, %d", k, n, len(k))
		case i >= 0 && n != i+2:
			t.Errorf("Split(%x) = %d; want %d, just after its first terminator", k, n, i+2)
		}
		prefixes = append(prefixes, k[:n])
	}
	if err := pebble.CheckComparer(causewayComparer, prefixes, nil); err != nil {
		t.Fatal(err)
	}
}

// TestComparerSplitOnRandomKeys checks what Pebble asks of Split and
// ImmediateSuccessor on every pair of many random keys over the bytes that
// matter (0x00, 0x01, 0x02, 0xFF and a letter): the byte-wise order is the
// order of the prefixes, then of the suffixes, and the successor of a
// prefix is the smallest prefix above every key that has it.
func TestComparerSplitOnRandomKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 0))
	alphabet := []byte{0x00, 0x01, 0x02, 0xFF, 'a'}
	keys := make([][]byte, 600)
	for i := range keys {
		k := make([]byte, rng.IntN(7))
		for j := range k {
			k[j] = alphabet[rng.IntN(len(alphabet))]
		}
		keys[i] = k
	}
	split := causewayComparer.Split
	for _, a := range keys {
		pa, sa := a[:split(a)], a[split(a):]
		if len(sa) > 0 && bytes.Compare(pa, a) >= 0 {
			t.Fatalf("prefix %x of %x does not sort before it", pa, a)
		}
		for _, b := range keys {
			pb, sb := b[:split(b)], b[split(b):]
			want := bytes.Compare(pa, pb)
			if want == 0 {
				want = bytes.Compare(sa, sb)
			}
			if got := causewayComparer.Compare(a, b); got != want {
				t.Fatalf("Compare(%x, %x) = %d; by prefix then suffix it is %d", a, b, got, want)
			}
		}
		if split(pa) != len(pa) {
			t.Fatalf("the prefix %x of %x is not its own prefix", pa, a)
		}
		succ := causewayComparer.ImmediateSuccessor(nil, pa)
		if split(succ) != len(succ) || bytes.Compare(succ, pa) <= 0 {
			t.Fatalf("ImmediateSuccessor(%x) = %x: not a prefix above it", pa, succ)
		}
		for _, b := range keys {
			pb := b[:split(b)]
			if bytes.Equal(pb, pa) && bytes.Compare(b, succ) >= 0 {
				t.Fatalf("ImmediateSuccessor(%x) = %x sorts before %x, which has that prefix", pa, succ, b)
			}
			if len(pb) == len(b) && bytes.Compare(pa, b) < 0 && bytes.Compare(b, succ) < 0 {
				t.Fatalf("the prefix %x lies between %x and its ImmediateSuccessor %x", b, pa, succ)
			}
		}
	}
}

// formatOneBuild plays a causeway that knows only store format 1: it
// creates stores with Pebble's default comparer and no filters, as every
// release before format 2 did.
var formatOneBuild = storeFormat{min: 1, current: 1}

// storeFormats opens a store of each format this build reads, in memory:
// format 1 made by a build of format 1 and opened again by this one, and
// format 2 made by this one.
var storeFormats = []struct {
	name   string
	format uint64
	open   func(t testing.TB) *Store
}{
	{"format1", 1, func(t testing.TB) *Store {
		fs := vfs.NewMem()
		s, err := OpenStore("store", StoreOptions{FS: fs, Logger: discardLogger(), format: formatOneBuild})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		return openMemStore(t, fs)
	}},
	{"format2", 2, func(t testing.TB) *Store { return openMemStore(t, vfs.NewMem()) }},
}

func openMemStore(t testing.TB, fs vfs.FS) *Store {
	t.Helper()
	s, err := OpenStore("store", StoreOptions{FS: fs, Logger: discardLogger(), noAutoCompactions: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestSiblingsOnKeysThatSharePrefixes writes versions of keys that extend
// one another (a, a\x00, ab, ...) into every level of the LSM, and finds
// each key's versions exactly, and none for keys never written, in both
// formats: in format 2 through the filters of every table.
func TestSiblingsOnKeysThatSharePrefixes(t *testing.T) {
	for _, f := range storeFormats {
		t.Run(f.name, func(t *testing.T) {
			s := f.open(t)
			if s.seekPrefix != (f.format >= prefixFilterStoreFormat) {
				t.Fatalf("a format %d store seeks by prefix: %v", f.format, s.seekPrefix)
			}
			want := map[string][]string{}
			regions := []string{"us-east", "eu-west-1", "ap", "z"}
			for round, region := range regions {
				b := s.newWriteBatch()
				for i, k := range sampleUserKeys {
					if (i+round)%3 == 0 {
						continue // not every key in every table
					}
					v := version(region, 1_764_700_000_000+uint64(round), uint64(round+1), fmt.Sprintf("%q@%d", k, round))
					b.putVersion(k, v)
					want[k] = append(want[k], string(v.Value))
				}
				if err := b.commit(); err != nil {
					t.Fatal(err)
				}
				// A table per round: the first rounds end up below the
				// later ones.
				if err := s.db.Flush(); err != nil {
					t.Fatal(err)
				}
				if round == 1 {
					if err := s.db.Compact(t.Context(), []byte{spaceData}, []byte{spaceData + 1}, true); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Every table of a format 2 store has a filter; no table of a
			// format 1 store has one (it works as before format 2).
			levels, err := s.db.SSTables(pebble.WithProperties())
			if err != nil {
				t.Fatal(err)
			}
			tables := 0
			for _, level := range levels {
				for _, table := range level {
					tables++
					if got, want := table.Properties.FilterPolicyName, map[bool]string{true: "rocksdb.BuiltinBloomFilter"}[s.seekPrefix]; got != want {
						t.Errorf("table %v has filter %q; want %q", table.FileNum, got, want)
					}
				}
			}
			if tables < 3 {
				t.Fatalf("the store has %d tables; the test wants keys spread over several", tables)
			}
			view := s.view()
			defer view.Close()
			for _, read := range []func(string, bool) ([]causal.Version, error){s.Siblings, view.Siblings} {
				siblings := func(k string) ([]string, error) {
					vs, err := read(k, true)
					var out []string
					for _, v := range vs {
						out = append(out, string(v.Value))
					}
					return out, err
				}
				for _, k := range sampleUserKeys {
					got, err := siblings(k)
					if err != nil {
						t.Fatal(err)
					}
					w := slices.Clone(want[k])
					slices.Reverse(w) // newest first: the rounds' timestamps grow
					if !slices.Equal(got, w) {
						t.Errorf("Siblings(%q) = %q; want %q", k, got, w)
					}
				}
				for _, k := range []string{"a\x00\x00", "aa", "b", "a\x00\x01\x00", "k", "k\x00", "\x01"} {
					if got, err := siblings(k); len(got) != 0 || err != nil {
						t.Errorf("Siblings(%q) of a key never written = %q, %v", k, got, err)
					}
				}
			}
		})
	}
}

// TestStoreKeepsItsComparer: a store is opened with the comparer it was
// created with, whatever the build creates now, and the format marker
// follows it.
func TestStoreKeepsItsComparer(t *testing.T) {
	open := func(t *testing.T, fs vfs.FS, f storeFormat) (*Store, error) {
		t.Helper()
		return OpenStore("store", StoreOptions{FS: fs, Logger: discardLogger(), format: f})
	}
	mustOpen := func(t *testing.T, fs vfs.FS, f storeFormat) *Store {
		t.Helper()
		s, err := open(t, fs, f)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	put := func(t *testing.T, s *Store, key string, wall uint64) {
		t.Helper()
		b := s.newWriteBatch()
		b.putVersion(key, version("us-east", wall, wall, key))
		if err := b.commit(); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	has := func(t *testing.T, s *Store, keys ...string) {
		t.Helper()
		for _, k := range keys {
			vs, err := s.Siblings(k, true)
			if err != nil || len(vs) != 1 || string(vs[0].Value) != k {
				t.Fatalf("Siblings(%q) = %v, %v; want its one version", k, vs, err)
			}
		}
	}
	marker := func(t *testing.T, s *Store) uint64 {
		t.Helper()
		v, found, err := readFormat(s.db)
		if err != nil || !found {
			t.Fatalf("format marker: %v, found %v", err, found)
		}
		return v
	}

	t.Run("format 1 store opens, reads and writes as before", func(t *testing.T) {
		fs := vfs.NewMem()
		s := mustOpen(t, fs, formatOneBuild)
		put(t, s, "old", 1)
		s.Close()

		s = mustOpen(t, fs, storeFormat{})
		if s.seekPrefix || marker(t, s) != 1 {
			t.Fatalf("a format 1 store opened with prefix seeks %v, marker %d; want neither changed", s.seekPrefix, marker(t, s))
		}
		has(t, s, "old")
		put(t, s, "new", 2)
		has(t, s, "old", "new")
		s.Close()

		// Still a store of Pebble's default comparer: the build before
		// format 2 opens it (a rollback after the upgrade is possible).
		db, err := pebble.Open("store", &pebble.Options{FS: fs, FormatMajorVersion: pebbleFormat, Logger: quietPebble{}})
		if err != nil {
			t.Fatalf("the format 1 store no longer opens with Pebble's default comparer: %v", err)
		}
		db.Close()
	})

	t.Run("format 2 store refused by a build of format 1", func(t *testing.T) {
		fs := vfs.NewMem()
		s := mustOpen(t, fs, storeFormat{})
		if !s.seekPrefix || marker(t, s) != 2 {
			t.Fatalf("a new store seeks by prefix %v, marker %d; want format 2", s.seekPrefix, marker(t, s))
		}
		put(t, s, "k", 1)
		s.Close()

		// As this code plays a build of format 1: the format error.
		_, err := open(t, fs, formatOneBuild)
		want := "the store in store has format version 2, and this causeway reads store formats 1 to 1: it was written by a newer causeway"
		if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), want) {
			t.Fatalf("a format 1 build opening a format 2 store: %v; want ErrUnsupportedVersion saying %q", err, want)
		}
		// As a released build of format 1 opens it, with Pebble's
		// default comparer: Pebble refuses it, naming the comparer.
		_, err = pebble.Open("store", &pebble.Options{FS: fs, FormatMajorVersion: pebbleFormat, Logger: quietPebble{}})
		if err == nil || !strings.Contains(err.Error(), comparerNameV2) {
			t.Fatalf("Pebble's default comparer opening a format 2 store: %v; want a refusal naming %q", err, comparerNameV2)
		}
		// Refused without a change.
		s = mustOpen(t, fs, storeFormat{})
		has(t, s, "k")
		s.Close()
	})

	t.Run("checkpoints keep the comparer", func(t *testing.T) {
		for _, f := range []storeFormat{formatOneBuild, {}} {
			fs := vfs.NewMem()
			s := mustOpen(t, fs, f)
			put(t, s, "k", 1)
			if err := s.Checkpoint("checkpoint"); err != nil {
				t.Fatal(err)
			}
			want := s.seekPrefix
			s.Close()
			c, err := OpenStore("checkpoint", StoreOptions{FS: fs, Logger: discardLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if c.seekPrefix != want {
				t.Errorf("a checkpoint of a store that seeks by prefix (%v) seeks by prefix: %v", want, c.seekPrefix)
			}
			has(t, c, "k")
			c.Close()
		}
	})

	t.Run("store without an options file is probed", func(t *testing.T) {
		for _, f := range []storeFormat{formatOneBuild, {}} {
			fs := vfs.NewMem()
			s := mustOpen(t, fs, f)
			put(t, s, "k", 1)
			want := s.seekPrefix
			s.Close()
			names, err := fs.List("store")
			if err != nil {
				t.Fatal(err)
			}
			removed := 0
			for _, name := range names {
				if strings.HasPrefix(name, "OPTIONS-") {
					if err := fs.Remove(fs.PathJoin("store", name)); err != nil {
						t.Fatal(err)
					}
					removed++
				}
			}
			if removed == 0 {
				t.Fatalf("no OPTIONS file in %q", names)
			}
			s = mustOpen(t, fs, storeFormat{})
			if s.seekPrefix != want {
				t.Errorf("probed store seeks by prefix %v; want %v", s.seekPrefix, want)
			}
			has(t, s, "k")
			s.Close()
		}
	})

	t.Run("unknown comparer refused", func(t *testing.T) {
		fs := vfs.NewMem()
		next := *causewayComparer
		next.Name = "causeway.store-format-3"
		db, err := pebble.Open("store", &pebble.Options{FS: fs, Comparer: &next, FormatMajorVersion: pebbleFormat, Logger: quietPebble{}})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = open(t, fs, storeFormat{})
		if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), `"causeway.store-format-3"`) ||
			!strings.Contains(err.Error(), "written by a newer causeway") {
			t.Fatalf("opening a store of an unknown comparer: %v; want ErrUnsupportedVersion naming it", err)
		}
	})

	t.Run("marker that does not go with the comparer refused", func(t *testing.T) {
		for _, tc := range []struct {
			f      storeFormat
			marker uint64
		}{{formatOneBuild, 2}, {storeFormat{}, 1}} {
			fs := vfs.NewMem()
			s := mustOpen(t, fs, tc.f)
			if err := writeFormat(s.db, tc.marker); err != nil {
				t.Fatal(err)
			}
			s.Close()
			_, err := open(t, fs, storeFormat{})
			if !errors.Is(err, ErrCorruptRecord) || !strings.Contains(err.Error(), fmt.Sprintf("marked store format %d, which does not go with its Pebble comparer", tc.marker)) {
				t.Errorf("a marker of format %d on a store of the other comparer: %v; want ErrCorruptRecord", tc.marker, err)
			}
		}
	})
}

// quietPebble discards Pebble's log lines in tests that open Pebble
// directly.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
