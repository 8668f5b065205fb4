package replica

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

func TestSiblingCacheBoundAndGenerations(t *testing.T) {
	c := newSiblingCache(4) // two generations of 2
	v := func(seq uint64) []causal.Version { return []causal.Version{{Seq: seq}} }
	for i := range 100 {
		c.put(fmt.Sprint("k", i), v(uint64(i)))
		if c.len() > 4 {
			t.Fatalf("after %d puts the cache holds %d keys, over its bound of 4", i+1, c.len())
		}
	}
	c = newSiblingCache(4)
	c.put("a", v(1))
	c.put("b", v(2))
	c.put("c", v(3)) // a and b move to the previous generation
	if s, ok := c.get("a"); !ok || s[0].Seq != 1 {
		t.Fatalf("get(a) = %v, %v; want the entry from the previous generation", s, ok)
	}
	c.put("d", v(4)) // current {c, a} is full: it becomes previous, b goes
	if _, ok := c.get("b"); ok {
		t.Error("b was not touched for a generation and is still cached")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s was dropped though it was used within a generation", k)
		}
	}
	c.put("a", v(10))
	c.forget("a")
	if _, ok := c.get("a"); ok {
		t.Error("a is cached after forget")
	}
	c.put("c", v(30))
	if s, _ := c.get("c"); s[0].Seq != 30 {
		t.Errorf("get(c) = %v after put of seq 30: a stale generation answered", s)
	}
}

// cacheMismatch returns a description of the first cached key whose cached
// sibling set differs from what the store holds, or "".
func cacheMismatch(n *Node) (string, error) {
	c := n.siblings
	for _, gen := range []map[string][]causal.Version{c.cur, c.prev} {
		for key, cached := range gen {
			if cur, ok := c.cur[key]; ok {
				cached = cur // what get answers: the current generation first
			}
			stored, err := n.store.Siblings(key, false)
			if err != nil {
				return "", err
			}
			if !sameHeaders(cached, stored) {
				return fmt.Sprintf("key %q: cached %v, stored %v", key, cached, stored), nil
			}
		}
	}
	return "", nil
}

func sameHeaders(a, b []causal.Version) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Kind != b[i].Kind || a[i].Timestamp != b[i].Timestamp || a[i].Seq != b[i].Seq ||
			!a[i].Vector.Equal(b[i].Vector) || a[i].Value != nil {
			return false
		}
	}
	return true
}

// TestSiblingCacheMatchesStore drives a node through random local writes,
// replicated writes (concurrent with the local ones or covering them),
// multi-key writes and tombstone collection, with a cache small enough to
// evict, and checks after every step that every cached sibling set is what
// the store holds.
func TestSiblingCacheMatchesStore(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		n := openMemNode(t, vfs.NewMem())
		n.siblings = newSiblingCache(rapid.IntRange(2, 8).Draw(rt, "cacheKeys"))
		keys := []string{"a", "b", "c", "d", "e", "f"}
		key := rapid.SampledFrom(keys)
		var (
			remoteSeq  uint64
			remoteWall uint64
			token      string
		)
		for step := range rapid.IntRange(1, 60).Draw(rt, "steps") {
			switch action := rapid.IntRange(0, 4).Draw(rt, "action"); action {
			case 0, 1: // a local put or delete, as a session or from scratch
				if !rapid.Bool().Draw(rt, "session") {
					token = ""
				}
				var res WriteResult
				var err error
				if action == 0 {
					res, err = n.Put(ctx, key.Draw(rt, "key"), []byte("v"), token, "")
				} else {
					res, err = n.Delete(ctx, key.Draw(rt, "key"), token, "")
				}
				if err != nil {
					rt.Fatal(err)
				}
				token = res.Token
			case 2: // a local write of several keys
				k1, k2 := key.Draw(rt, "key1"), key.Draw(rt, "key2")
				ops := []causal.Op{{Key: k1, Kind: causal.KindValue, Value: []byte("m")}}
				if k2 != k1 {
					ops = append(ops, causal.Op{Key: k2, Kind: causal.KindTombstone})
				}
				if _, err := n.WriteMany(ctx, ops, "", ""); err != nil {
					rt.Fatal(err)
				}
			case 3: // writes replicated from eu-west that saw some of ours,
				// one or several in a batch (several may touch one key)
				n.mu.Lock()
				local := n.causal.Applied().Get("us-east")
				last := n.clock.Last().WallMs
				n.mu.Unlock()
				var batch []*causal.Write
				for range rapid.IntRange(1, 3).Draw(rt, "batch") {
					saw := rapid.Uint64Range(0, local).Draw(rt, "saw")
					remoteSeq++
					vec := clocks.Vector{"eu-west": remoteSeq}
					if saw > 0 {
						vec["us-east"] = saw
					}
					// After everything it saw (the clock condition), and
					// after eu-west's previous write.
					remoteWall = max(remoteWall+1, last+1)
					w := &causal.Write{Timestamp: clocks.Timestamp{WallMs: remoteWall, Region: "eu-west"}, Seq: remoteSeq, Vector: vec,
						Ops: []causal.Op{{Key: key.Draw(rt, "key"), Kind: causal.KindValue, Value: []byte("r")}}}
					if rapid.Bool().Draw(rt, "remoteDelete") {
						w.Ops[0] = causal.Op{Key: w.Ops[0].Key, Kind: causal.KindTombstone}
					}
					batch = append(batch, w)
				}
				if err := n.applyRemote(batch); err != nil {
					rt.Fatal(err)
				}
			case 4: // every tombstone is stable and safe: collect them
				if _, err := n.collectTombstones(clocks.Vector{"us-east": math.MaxUint64, "eu-west": math.MaxUint64}, math.MaxUint64); err != nil {
					rt.Fatal(err)
				}
			}
			if msg, err := cacheMismatch(n); err != nil {
				rt.Fatal(err)
			} else if msg != "" {
				rt.Fatalf("after step %d: %s", step, msg)
			}
		}
	})
}

// TestCacheMismatchCatchesStaleEntry shows the check above can fail: a
// cache that kept a key's siblings across tombstone collection (the one
// deletion outside a write) is reported.
func TestCacheMismatchCatchesStaleEntry(t *testing.T) {
	ctx := context.Background()
	n := openMemNode(t, vfs.NewMem())
	if _, err := n.Delete(ctx, "gone", "", ""); err != nil {
		t.Fatal(err)
	}
	stale, ok := n.siblings.get("gone")
	if !ok {
		t.Fatal("a key just written is not cached")
	}
	got, err := n.collectTombstones(clocks.Vector{"us-east": math.MaxUint64}, math.MaxUint64)
	if err != nil || got != 1 {
		t.Fatalf("collected %d (%v), want the lone tombstone", got, err)
	}
	if msg, err := cacheMismatch(n); err != nil || msg != "" {
		t.Fatalf("after collection: %q, %v; want a consistent cache", msg, err)
	}
	n.siblings.put("gone", stale) // as if collection had not forgotten the key
	if msg, err := cacheMismatch(n); err != nil || msg == "" {
		t.Fatalf("a stale entry went unreported (%v)", err)
	}
}
