package replica

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// storeImplementations are the implementations of the storage contract
// (storage.go) that every conformance case runs against: Store on Pebble
// (on an in-memory filesystem) and the in-memory double.
var storeImplementations = []struct {
	name string
	open func(t *testing.T) storage
}{
	{"pebble", func(t *testing.T) storage {
		t.Helper()
		s, err := OpenStore("store", StoreOptions{FS: vfs.NewMem(), Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"inmem", func(t *testing.T) storage { return newInmemStore() }},
}

func mustCommit(t *testing.T, s storage, stage func(b storageBatch)) {
	t.Helper()
	b := s.batch()
	stage(b)
	if err := b.commit(); err != nil {
		t.Fatal(err)
	}
}

func version(region string, wall, seq uint64, value string) *causal.Version {
	return &causal.Version{Kind: causal.KindValue, Timestamp: ts(wall, 0, region), Seq: seq,
		Vector: clocks.Vector{region: seq}, Value: []byte(value)}
}

func logWrite(seq uint64) *causal.Write {
	return &causal.Write{Timestamp: ts(1000+seq, 0, "us-east"), Seq: seq, Vector: clocks.Vector{"us-east": seq},
		Ops: []causal.Op{{Key: fmt.Sprintf("k%d", seq), Kind: causal.KindValue, Value: bytes.Repeat([]byte{'v'}, 100)}}}
}

// TestStoreConformance runs every case of the storage contract against
// each implementation.
func TestStoreConformance(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, s storage)
	}{
		{"versions come back newest first", func(t *testing.T, s storage) {
			mustCommit(t, s, func(b storageBatch) {
				b.putVersion("a", version("eu", 100, 1, "a@100"))
				b.putVersion("a", version("eu", 300, 3, "a@300"))
				b.putVersion("a", version("us", 300, 1, "a@300us"))
				b.putVersion("a", version("eu", 200, 2, "a@200"))
				b.putVersion("ab", version("eu", 900, 4, "ab"))
				b.putVersion("a\x00", version("eu", 950, 5, "nul"))
			})
			vs, err := s.Siblings("a", true)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				got = append(got, string(v.Value))
			}
			if want := []string{"a@300us", "a@300", "a@200", "a@100"}; !reflect.DeepEqual(got, want) {
				t.Fatalf("siblings of a = %v, want %v", got, want)
			}
			headers, err := s.Siblings("a", false)
			if err != nil || len(headers) != 4 || headers[0].Value != nil || headers[0].Timestamp != ts(300, 0, "us") {
				t.Fatalf("headers of a = %v, %v; want 4 without values, newest first", headers, err)
			}
			if vs, err := s.Siblings("b", true); len(vs) != 0 || err != nil {
				t.Fatalf("absent key: %v, %v", vs, err)
			}
		}},
		{"a put of the same timestamp replaces; a delete removes one version", func(t *testing.T, s storage) {
			mustCommit(t, s, func(b storageBatch) {
				b.putVersion("k", version("eu", 100, 1, "old"))
				b.putVersion("k", version("us", 200, 1, "other"))
			})
			mustCommit(t, s, func(b storageBatch) { b.putVersion("k", version("eu", 100, 1, "new")) })
			vs, _ := s.Siblings("k", true)
			if len(vs) != 2 || string(vs[1].Value) != "new" {
				t.Fatalf("after replacing: %v", vs)
			}
			mustCommit(t, s, func(b storageBatch) { b.deleteVersion("k", ts(200, 0, "us")) })
			vs, _ = s.Siblings("k", true)
			if len(vs) != 1 || string(vs[0].Value) != "new" {
				t.Fatalf("after deleting us's version: %v", vs)
			}
		}},
		{"an abandoned batch leaves no trace", func(t *testing.T, s storage) {
			b := s.batch()
			b.putVersion("k", version("eu", 1, 1, "v"))
			b.putLog(logWrite(1))
			b.abandon()
			if vs, _ := s.Siblings("k", true); len(vs) != 0 {
				t.Fatalf("abandoned version visible: %v", vs)
			}
			if _, found, _ := s.firstLogSeq(); found {
				t.Fatal("abandoned log entry visible")
			}
		}},
		{"the replication log: ranges, byte limit, truncation, holes", func(t *testing.T, s storage) {
			if _, found, err := s.firstLogSeq(); found || err != nil {
				t.Fatalf("empty log: found %v, %v", found, err)
			}
			mustCommit(t, s, func(b storageBatch) {
				for seq := uint64(1); seq <= 5; seq++ {
					b.putLog(logWrite(seq))
				}
			})
			frames, err := s.logRange(2, 4, 1<<20)
			if err != nil || len(frames) != 3 {
				t.Fatalf("logRange(2, 4) = %d frames, %v", len(frames), err)
			}
			if w, err := decodeWrite(frames[0]); err != nil || w.Seq != 2 {
				t.Fatalf("first frame: %v, %v; want write 2", w, err)
			}
			if frames, _ := s.logRange(1, 5, 1); len(frames) != 1 {
				t.Fatalf("a 1-byte limit gave %d frames, want one (at least one is sent)", len(frames))
			}
			if frames, err := s.logRange(4, 3, 1<<20); frames != nil || err != nil {
				t.Fatalf("empty range: %v, %v", frames, err)
			}
			if err := s.truncateLog(3); err != nil {
				t.Fatal(err)
			}
			if seq, found, err := s.firstLogSeq(); seq != 4 || !found || err != nil {
				t.Fatalf("after truncating to 3: first %d %v %v, want 4", seq, found, err)
			}
			if _, err := s.logRange(1, 5, 1<<20); !errors.Is(err, ErrCorruptRecord) {
				t.Fatalf("a range from below the truncation: %v, want ErrCorruptRecord", err)
			}
		}},
		{"request outcomes and their expiry", func(t *testing.T, s storage) {
			ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
			mustCommit(t, s, func(b storageBatch) {
				for i, id := range ids {
					b.putOutcome(id, &requestOutcome{Digest: [32]byte{byte(i)}, Timestamp: ts(uint64(10*(i+1)), 0, "eu"), Seq: uint64(i + 1), Vector: clocks.Vector{"eu": uint64(i + 1)}})
				}
			})
			o, found, err := s.outcome(ids[1])
			if err != nil || !found || o.Seq != 2 || o.Digest[0] != 1 || o.Vector.Get("eu") != 2 {
				t.Fatalf("outcome = %+v %v %v", o, found, err)
			}
			if _, found, err := s.outcome(uuid.New()); found || err != nil {
				t.Fatalf("unknown request: found %v, %v", found, err)
			}
			if n, err := s.expireRequests(25, 1); n != 1 || err != nil {
				t.Fatalf("expire with limit 1: %d, %v", n, err)
			}
			if n, err := s.expireRequests(25, 10); n != 1 || err != nil {
				t.Fatalf("expire before 25ms: %d, %v; want the second one", n, err)
			}
			for i, id := range ids {
				_, found, _ := s.outcome(id)
				if want := i == 2; found != want {
					t.Errorf("request %d found %v, want %v", i, found, want)
				}
			}
		}},
		{"metadata, peers, node state", func(t *testing.T, s storage) {
			if _, found, err := s.meta(metaCluster); found || err != nil {
				t.Fatalf("unwritten meta: %v, %v", found, err)
			}
			if err := s.setMeta(metaCluster, []byte("c1"), metaNode, []byte("n1")); err != nil {
				t.Fatal(err)
			}
			if v, found, _ := s.meta(metaNode); !found || string(v) != "n1" {
				t.Fatalf("meta node = %q %v", v, found)
			}
			for _, p := range [][2]string{{"eu", "a:1"}, {"ap", "b:2"}, {"eu", "a:3"}} {
				if err := s.rememberPeer(p[0], p[1]); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.forgetPeer("ap"); err != nil {
				t.Fatal(err)
			}
			if peers, err := s.peers(); err != nil || !reflect.DeepEqual(peers, map[string]string{"eu": "a:3"}) {
				t.Fatalf("peers = %v, %v", peers, err)
			}
			st := &nodeState{Vector: clocks.Vector{"eu": 4}, Clock: ts(7, 1, "eu")}
			mustCommit(t, s, func(b storageBatch) { b.putState(st); b.deleteMeta(metaCluster) })
			if raw, found, _ := s.meta(metaState); !found || !bytes.Equal(raw, encodeState(nil, st)) {
				t.Fatalf("state record = %x", raw)
			}
			if _, found, _ := s.meta(metaCluster); found {
				t.Fatal("deleted meta still there")
			}
		}},
		{"fences", func(t *testing.T, s storage) {
			if tok, err := s.fenceSeen("lock/a"); tok != 0 || err != nil {
				t.Fatalf("unseen fence: %d, %v", tok, err)
			}
			mustCommit(t, s, func(b storageBatch) { b.putFence("lock/a", 7); b.putFence("lock/b", 9) })
			if tok, err := s.fenceSeen("lock/a"); tok != 7 || err != nil {
				t.Fatalf("fence = %d, %v; want 7", tok, err)
			}
		}},
		{"tombstones: candidates the stable vector covers, then collected", func(t *testing.T, s storage) {
			tomb := func(region string, wall, seq uint64) *causal.Version {
				v := version(region, wall, seq, "")
				v.Kind, v.Value = causal.KindTombstone, nil
				return v
			}
			mustCommit(t, s, func(b storageBatch) {
				for i, v := range []*causal.Version{tomb("eu", 10, 1), tomb("eu", 20, 2), tomb("us", 30, 1)} {
					key := fmt.Sprintf("k%d", i)
					b.putVersion(key, v)
					b.indexTombstone(key, v)
				}
			})
			stable := clocks.Vector{"eu": 1, "us": 1}
			cands, err := s.tombstoneCandidates(stable, 10)
			if err != nil || len(cands) != 2 {
				t.Fatalf("candidates under %v: %d, %v; want eu's 1 and us's 1", stable, len(cands), err)
			}
			if limited, _ := s.tombstoneCandidates(stable, 1); len(limited) != 1 {
				t.Fatalf("limit 1 gave %d", len(limited))
			}
			var keys [][]byte
			for _, c := range cands {
				keys = append(keys, c.index, c.dataKey)
			}
			if err := s.deleteUnsynced(keys); err != nil {
				t.Fatal(err)
			}
			for key, want := range map[string]int{"k0": 0, "k1": 1, "k2": 0} {
				if vs, _ := s.Siblings(key, false); len(vs) != want {
					t.Errorf("%s has %d versions after collection, want %d", key, len(vs), want)
				}
			}
			if left, _ := s.tombstoneCandidates(clocks.Vector{"eu": 9, "us": 9}, 10); len(left) != 1 {
				t.Errorf("index holds %d tombstones after collection, want 1", len(left))
			}
		}},
		{"a view sees the store as it was", func(t *testing.T, s storage) {
			mustCommit(t, s, func(b storageBatch) {
				b.putVersion("b", version("eu", 1, 1, "b"))
				b.putVersion("a", version("eu", 2, 2, "a"))
			})
			view := s.snapshot()
			defer view.Close()
			mustCommit(t, s, func(b storageBatch) { b.putVersion("c", version("eu", 3, 3, "c")) })
			if vs, _ := view.Siblings("c", true); len(vs) != 0 {
				t.Fatalf("the view sees a later write: %v", vs)
			}
			var keys []string
			fromFn, err := view.scan(spaceData, func(k, v []byte) error {
				key, _ := decodeDataKey(k)
				if _, err := decodeVersion(v); err != nil {
					return err
				}
				keys = append(keys, key)
				return nil
			})
			if fromFn || err != nil || !reflect.DeepEqual(keys, []string{"a", "b"}) {
				t.Fatalf("scan = %v, %v %v; want a, b in key order", keys, fromFn, err)
			}
			stop := errors.New("stop")
			if fromFn, err := view.scan(spaceData, func(k, v []byte) error { return stop }); !fromFn || !errors.Is(err, stop) {
				t.Fatalf("scan with a failing fn: %v %v; want fn's error, reported as fn's", fromFn, err)
			}
		}},
	}
	for _, impl := range storeImplementations {
		for _, c := range cases {
			t.Run(impl.name+"/"+c.name, func(t *testing.T) { c.run(t, impl.open(t)) })
		}
	}
}

// TestStoreDoubleAgrees applies one seeded random sequence of batches,
// truncations, expiries and collections to Pebble and to the double, and
// requires every keyspace to hold the same records afterwards: what the
// cases above do not name, the double still does as Pebble does.
func TestStoreDoubleAgrees(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			impls := []storage{storeImplementations[0].open(t), storeImplementations[1].open(t)}
			regions := []string{"eu", "us", "ap"}
			var logSeq uint64
			for step := 0; step < 200; step++ {
				op := rng.IntN(10)
				// Draw every random number once, for both implementations.
				region := regions[rng.IntN(len(regions))]
				key := fmt.Sprintf("k%d", rng.IntN(8))
				wall := uint64(rng.IntN(50))
				seq := uint64(rng.IntN(20) + 1)
				id := uuid.UUID{byte(rng.IntN(256)), byte(rng.IntN(256))}
				for _, s := range impls {
					switch {
					case op < 4:
						v := version(region, wall, seq, fmt.Sprint(step))
						mustCommit(t, s, func(b storageBatch) {
							if op == 0 {
								v.Kind, v.Value = causal.KindTombstone, nil
								b.indexTombstone(key, v)
							}
							b.putVersion(key, v)
							b.putOutcome(id, &requestOutcome{Timestamp: v.Timestamp, Seq: seq, Vector: v.Vector})
						})
					case op == 4:
						mustCommit(t, s, func(b storageBatch) { b.deleteVersion(key, ts(wall, 0, region)) })
					case op == 5:
						mustCommit(t, s, func(b storageBatch) { b.putLog(logWrite(logSeq + 1)) })
					case op == 6:
						if err := s.truncateLog(logSeq / 2); err != nil {
							t.Fatal(err)
						}
					case op == 7:
						if _, err := s.expireRequests(wall, int(seq)); err != nil {
							t.Fatal(err)
						}
					case op == 8:
						cands, err := s.tombstoneCandidates(clocks.Vector{region: seq}, 3)
						if err != nil {
							t.Fatal(err)
						}
						var keys [][]byte
						for _, c := range cands {
							keys = append(keys, c.index, c.dataKey)
						}
						if err := s.deleteUnsynced(keys); err != nil {
							t.Fatal(err)
						}
					default:
						if err := s.rememberPeer(region, key); err != nil {
							t.Fatal(err)
						}
						mustCommit(t, s, func(b storageBatch) { b.putFence(key, seq) })
					}
				}
				if op == 5 {
					logSeq++
				}
			}
			for _, space := range []byte{spaceData, spaceLog, spaceRequest, spaceRequestExp, spaceMeta, spaceTombstone, spaceFence} {
				if a, b := dump(t, impls[0], space), dump(t, impls[1], space); !reflect.DeepEqual(a, b) {
					t.Fatalf("keyspace %q differs after seed %d:\npebble %q\ninmem  %q", space, seed, a, b)
				}
			}
		})
	}
}

// dump is every record of one keyspace, as "key=value" in hex.
func dump(t *testing.T, s storage, space byte) []string {
	t.Helper()
	view := s.snapshot()
	defer view.Close()
	var out []string
	if _, err := view.scan(space, func(k, v []byte) error {
		out = append(out, fmt.Sprintf("%x=%x", k, v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
