package replica

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/causewaydb/causeway/api"
	"github.com/causewaydb/causeway/causal"
)

// TestFencedWritesRefuseStaleTokens: a region refuses a fenced write whose
// token is older than one it has seen, writes nothing for it, consumes no
// sequence number, and remembers the newest token across a restart.
func TestFencedWritesRefuseStaleTokens(t *testing.T) {
	fs := vfs.NewMem()
	n := openMemNode(t, fs)
	ctx := context.Background()
	put := func(key string, fence *Fence) (WriteResult, error) {
		return n.Write(ctx, []causal.Op{{Key: key, Kind: causal.KindValue, Value: []byte(key)}}, "", "", WriteOptions{Fence: fence})
	}
	if _, err := put("a", &Fence{Lock: "jobs/1", Token: 5}); err != nil {
		t.Fatalf("first fenced write: %v", err)
	}
	if _, err := put("b", &Fence{Lock: "jobs/1", Token: 5}); err != nil {
		t.Fatalf("same token again: %v", err)
	}
	_, err := put("stale", &Fence{Lock: "jobs/1", Token: 4})
	if !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "token 5") {
		t.Fatalf("stale token: %v, want failed_precondition naming token 5", err)
	}
	if _, err := put("other-lock", &Fence{Lock: "jobs/2", Token: 1}); err != nil {
		t.Fatalf("another lock's fence is independent: %v", err)
	}
	for _, bad := range []*Fence{{Lock: "", Token: 1}, {Lock: "jobs/1", Token: 0}, {Lock: strings.Repeat("x", MaxLockBytes+1), Token: 1}} {
		if _, err := put("bad", bad); !errors.Is(err, api.ErrInvalidArgument) {
			t.Fatalf("fence %+v: %v, want invalid_argument", bad, err)
		}
	}
	res, err := put("c", &Fence{Lock: "jobs/1", Token: 7})
	if err != nil {
		t.Fatal(err)
	}
	// The refused writes took no sequence number: a, b, other-lock, c.
	if res.Version.Seq != 4 {
		t.Fatalf("seq after refused writes = %d, want 4 (refusals must not leave gaps)", res.Version.Seq)
	}
	for _, key := range []string{"stale", "bad"} {
		if got, _, err := n.Get(ctx, key, "", false); err != nil || got.Found {
			t.Fatalf("refused write %q is visible: %+v %v", key, got, err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = openMemNode(t, fs)
	if _, err := put("after-restart", &Fence{Lock: "jobs/1", Token: 6}); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Fatalf("after a restart token 6 < 7: %v, want failed_precondition", err)
	}
}
