package replica

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

func scanKeys(res []ReadResult) []string {
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = r.Key
	}
	return out
}

// remoteWrite is write seq of origin with vector vec, as replication
// delivers it.
func remoteWrite(origin string, seq, wallMs uint64, vec clocks.Vector, ops ...causal.Op) *causal.Write {
	vec = vec.Clone()
	vec[origin] = seq
	return &causal.Write{Timestamp: clocks.Timestamp{WallMs: wallMs, Region: origin}, Seq: seq, Vector: vec, Ops: ops}
}

func TestScanSelectsLiveKeysInOrder(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	ctx := context.Background()
	tok := ""
	for _, k := range []string{"user/b", "user/a", "user/a\x00x", "user/c", "userz", "use", "other"} {
		res, err := n.Put(ctx, k, []byte("v-"+k), tok, "")
		if err != nil {
			t.Fatal(err)
		}
		tok = res.Token
	}
	res, err := n.Delete(ctx, "user/c", tok, "")
	if err != nil {
		t.Fatal(err)
	}
	tok = res.Token

	cases := []struct {
		name string
		r    KeyRange
		want []string
	}{
		{"prefix", KeyRange{Prefix: "user/"}, []string{"user/a", "user/a\x00x", "user/b"}},
		{"prefix ending in a NUL byte", KeyRange{Prefix: "user/a\x00"}, []string{"user/a\x00x"}},
		{"range", KeyRange{Start: "use", End: "user/b"}, []string{"use", "user/a", "user/a\x00x"}},
		{"open range", KeyRange{Start: "user/b"}, []string{"user/b", "userz"}},
		{"everything", KeyRange{}, []string{"other", "use", "user/a", "user/a\x00x", "user/b", "userz"}},
		{"empty", KeyRange{Prefix: "nothing/"}, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := n.Scan(ctx, c.r, tok, ScanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(scanKeys(got.Keys), c.want) {
				t.Fatalf("keys %q, want %q", scanKeys(got.Keys), c.want)
			}
			for _, k := range got.Keys {
				if string(k.Version.Value) != "v-"+k.Key || !k.Found {
					t.Fatalf("key %q: value %q found %v", k.Key, k.Version.Value, k.Found)
				}
			}
			if got.NextCursor != "" {
				t.Fatalf("a complete scan returned cursor %q", got.NextCursor)
			}
		})
	}

	t.Run("keys only", func(t *testing.T) {
		got, err := n.Scan(ctx, KeyRange{Prefix: "user/"}, tok, ScanOptions{KeysOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range got.Keys {
			if k.Version.Value != nil {
				t.Fatalf("keys-only scan returned value %q for %q", k.Version.Value, k.Key)
			}
		}
	})
}

// The token a scan returns covers the snapshot it read, so a session's
// next read elsewhere waits for all of it.
func TestScanTokenCoversTheSnapshot(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	ctx := context.Background()
	if err := n.applyRemote([]*causal.Write{remoteWrite("eu-west", 1, 1, nil, causal.Op{Key: "elsewhere", Kind: causal.KindValue, Value: []byte("x")})}); err != nil {
		t.Fatal(err)
	}
	got, err := n.Scan(ctx, KeyRange{Prefix: "a/"}, "", ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clocks.DecodeToken(got.Token, n.cluster)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Vector.Get("eu-west") != 1 {
		t.Fatalf("scan token %v does not cover the snapshot's eu-west write", tok.Vector)
	}
}

func TestScanPagesComeFromOneSnapshot(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	n := openMemNode(t, vfs.NewMem(), func(c *Config) { c.Now = clock.Now })
	ctx := context.Background()
	for i := range 10 {
		if _, err := n.Put(ctx, fmt.Sprintf("k/%02d", i), []byte("old"), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	page, err := n.Scan(ctx, KeyRange{Prefix: "k/"}, "", ScanOptions{Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Keys) != 4 || page.NextCursor == "" {
		t.Fatalf("first page: %d keys, cursor %q; want 4 and a cursor", len(page.Keys), page.NextCursor)
	}
	// Changes after the first page are not in the later pages.
	if _, err := n.Put(ctx, "k/05", []byte("new"), "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Delete(ctx, "k/06", "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Put(ctx, "k/055", []byte("new"), "", ""); err != nil {
		t.Fatal(err)
	}
	all := scanKeys(page.Keys)
	for page.NextCursor != "" {
		cursor := page.NextCursor
		if page, err = n.Scan(ctx, KeyRange{Prefix: "k/"}, "", ScanOptions{Limit: 4, Cursor: cursor}); err != nil {
			t.Fatal(err)
		}
		for _, k := range page.Keys {
			if string(k.Version.Value) != "old" {
				t.Fatalf("page shows %q=%q, written after the scan's snapshot", k.Key, k.Version.Value)
			}
		}
		all = append(all, scanKeys(page.Keys)...)
		// A cursor is good for one page.
		if _, err := n.Scan(ctx, KeyRange{Prefix: "k/"}, "", ScanOptions{Limit: 4, Cursor: cursor}); api.Code(err) != connect.CodeFailedPrecondition {
			t.Fatalf("reusing a cursor: %v, want failed_precondition", err)
		}
	}
	want := []string{"k/00", "k/01", "k/02", "k/03", "k/04", "k/05", "k/06", "k/07", "k/08", "k/09"}
	if !slices.Equal(all, want) {
		t.Fatalf("pages gave %q, want %q", all, want)
	}
	if n.scans.sweep(clock.Now()) != 0 || len(n.scans.open) != 0 {
		t.Fatalf("a finished scan left %d snapshots open", len(n.scans.open))
	}

	t.Run("expired cursor", func(t *testing.T) {
		page, err := n.Scan(ctx, KeyRange{Prefix: "k/"}, "", ScanOptions{Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(ScanRetention + time.Second)
		if released := n.scans.sweep(clock.Now()); released != 1 {
			t.Fatalf("sweep released %d snapshots, want 1", released)
		}
		_, err = n.Scan(ctx, KeyRange{Prefix: "k/"}, "", ScanOptions{Limit: 4, Cursor: page.NextCursor})
		if api.Code(err) != connect.CodeFailedPrecondition {
			t.Fatalf("expired cursor: %v, want failed_precondition", err)
		}
	})
	t.Run("cursor of another scan", func(t *testing.T) {
		page, err := n.Scan(ctx, KeyRange{Prefix: "k/"}, "", ScanOptions{Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.Scan(ctx, KeyRange{Prefix: "k/0"}, "", ScanOptions{Limit: 4, Cursor: page.NextCursor})
		if api.Code(err) != connect.CodeInvalidArgument {
			t.Fatalf("cursor with another prefix: %v, want invalid_argument", err)
		}
	})
}

// TestScanReleasesTheLeastRecentlyPagedSnapshot: a client that reads only
// the first page of many scans never makes a later scan fail. Past
// MaxOpenScans, the snapshot paged longest ago is released (its cursor
// fails as an expired one does); the others still page.
func TestScanReleasesTheLeastRecentlyPagedSnapshot(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	n := openMemNode(t, vfs.NewMem(), func(c *Config) { c.Now = clock.Now })
	ctx := context.Background()
	for i := range 3 {
		if _, err := n.Put(ctx, fmt.Sprintf("k/%d", i), []byte("v"), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	var cursors []string
	for range MaxOpenScans + 3 {
		page, err := n.Scan(ctx, KeyRange{Prefix: "k/"}, "", ScanOptions{Limit: 1})
		if err != nil {
			t.Fatalf("scan %d: %v (a first page must not fail for the scans left open before it)", len(cursors), err)
		}
		cursors = append(cursors, page.NextCursor)
		clock.Advance(time.Millisecond)
	}
	if len(n.scans.open) != MaxOpenScans {
		t.Fatalf("%d snapshots retained, want MaxOpenScans = %d", len(n.scans.open), MaxOpenScans)
	}
	for i := range 3 {
		if _, err := n.Scan(ctx, KeyRange{Prefix: "k/"}, "", ScanOptions{Limit: 1, Cursor: cursors[i]}); api.Code(err) != connect.CodeFailedPrecondition {
			t.Errorf("cursor of released scan %d: %v, want failed_precondition", i, err)
		}
	}
	for _, i := range []int{3, len(cursors) - 1} {
		page, err := n.Scan(ctx, KeyRange{Prefix: "k/"}, "", ScanOptions{Limit: 1, Cursor: cursors[i]})
		if err != nil || len(page.Keys) != 1 || page.Keys[0].Key != "k/1" {
			t.Errorf("second page of retained scan %d: %v, %v; want k/1", i, page.Keys, err)
		}
	}
}

func TestScanReportsSiblings(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	ctx := context.Background()
	if _, err := n.Put(ctx, "k", []byte("local"), "", ""); err != nil {
		t.Fatal(err)
	}
	// A concurrent write from eu-west (its vector does not cover ours).
	if err := n.applyRemote([]*causal.Write{remoteWrite("eu-west", 1, 1, nil, causal.Op{Key: "k", Kind: causal.KindValue, Value: []byte("remote")})}); err != nil {
		t.Fatal(err)
	}
	for _, siblings := range []bool{false, true} {
		got, err := n.Scan(ctx, KeyRange{}, "", ScanOptions{Siblings: siblings})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Keys) != 1 || !got.Keys[0].HasSiblings {
			t.Fatalf("siblings=%v: %+v, want one key flagged with siblings", siblings, got.Keys)
		}
		if want := map[bool]int{false: 0, true: 2}[siblings]; len(got.Keys[0].Siblings) != want {
			t.Fatalf("siblings=%v: %d siblings listed, want %d", siblings, len(got.Keys[0].Siblings), want)
		}
	}
}

func TestScanRefusesBadInput(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	ctx := context.Background()
	cases := []struct {
		name string
		r    KeyRange
		o    ScanOptions
	}{
		{"prefix and range", KeyRange{Prefix: "a", Start: "b"}, ScanOptions{}},
		{"start after end", KeyRange{Start: "b", End: "a"}, ScanOptions{}},
		{"start equals end", KeyRange{Start: "b", End: "b"}, ScanOptions{}},
		{"limit too large", KeyRange{}, ScanOptions{Limit: MaxScanLimit + 1}},
		{"negative limit", KeyRange{}, ScanOptions{Limit: -1}},
		{"damaged cursor", KeyRange{}, ScanOptions{Cursor: "not a cursor"}},
		{"invalid UTF-8", KeyRange{Prefix: "\xff"}, ScanOptions{}},
	}
	for _, c := range cases {
		if _, err := n.Scan(ctx, c.r, "", c.o); api.Code(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want invalid_argument", c.name, err)
		}
	}
	if _, err := n.Scan(ctx, KeyRange{}, "garbage", ScanOptions{}); api.Code(err) != connect.CodeInvalidArgument {
		t.Errorf("bad token: %v, want invalid_argument", err)
	}
}

// A scan waits for its token's causal past, then answers unavailable.
func TestScanWaitsForTheTokensPast(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	tok := clocks.Token{Cluster: n.cluster, Vector: clocks.Vector{"eu-west": 3}}
	_, err := n.Scan(context.Background(), KeyRange{}, tok.Encode(), ScanOptions{})
	if api.Code(err) != connect.CodeUnavailable {
		t.Fatalf("scan with a token from the future: %v, want unavailable", err)
	}
}
