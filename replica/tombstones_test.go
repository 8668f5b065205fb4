package replica

import (
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

func TestCollectTombstones(t *testing.T) {
	ctx := context.Background()
	n := openMemNode(t, vfs.NewMem())
	put := func(key string) {
		if _, err := n.Put(ctx, key, []byte("v"), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	del := func(key string) WriteResult {
		r, err := n.Delete(ctx, key, "", "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	versions := func(key string) []causal.Version {
		vs, err := n.store.Siblings(key, false)
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}

	put("gone")
	d := del("gone") // us-east:2, a lone tombstone
	put("sibling")
	ds := del("sibling") // us-east:4
	// A concurrent value from eu-west that saw nothing: a sibling the
	// tombstone must keep beating (or losing to) as before.
	remote := &causal.Write{Timestamp: clocks.Timestamp{WallMs: ds.Version.Timestamp.WallMs - 1, Region: "eu-west"}, Seq: 1,
		Vector: clocks.Vector{"eu-west": 1}, Ops: []causal.Op{{Key: "sibling", Kind: causal.KindValue, Value: []byte("x")}}}
	if err := n.applyRemote([]*causal.Write{remote}); err != nil {
		t.Fatal(err)
	}
	if len(versions("sibling")) != 2 {
		t.Fatalf("sibling has %d versions, want the tombstone and the concurrent value", len(versions("sibling")))
	}
	safe := d.Version.Timestamp.WallMs + 1_000_000

	// Not yet in every region: nothing goes.
	if got, err := n.collectTombstones(clocks.Vector{"us-east": 1}, safe); err != nil || got != 0 {
		t.Fatalf("collected %d (%v) before the tombstones were stable", got, err)
	}
	// Stable, but a write with an earlier timestamp could still arrive.
	if got, _ := n.collectTombstones(clocks.Vector{"us-east": 10}, d.Version.Timestamp.WallMs); got != 0 {
		t.Fatalf("collected %d tombstones above the safe time", got)
	}
	// Stable and safe: the lone tombstone goes, the one with a sibling stays.
	if got, err := n.collectTombstones(clocks.Vector{"us-east": 10, "eu-west": 1}, safe); err != nil || got != 1 {
		t.Fatalf("collected %d (%v), want 1", got, err)
	}
	if vs := versions("gone"); len(vs) != 0 {
		t.Fatalf("the lone stable tombstone is still stored: %v", vs)
	}
	if vs := versions("sibling"); len(vs) != 2 || vs[0].Kind != causal.KindTombstone {
		t.Fatalf("the tombstone with a sibling was collected: %v", vs)
	}
	// A tombstone superseded later leaves only its index entry, which goes.
	put("sibling")
	if got, _ := n.collectTombstones(clocks.Vector{"us-east": 10, "eu-west": 1}, safe); got != 0 {
		t.Fatalf("collected %d, want 0 (the tombstone was superseded, not collected)", got)
	}
	left, err := n.store.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer left.Close()
	for ok := left.SeekGE([]byte{spaceTombstone}); ok && left.Key()[0] == spaceTombstone; ok = left.Next() {
		t.Errorf("tombstone index entry left behind: %q", left.Key())
	}
}
