package replica

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"

	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/api/causeway/v1/causewayv1connect"
)

// speaking makes a node speak the replication protocol versions lo to hi:
// a node of another release, as far as replication can tell.
func speaking(lo, hi uint32) func(*Config) {
	return func(c *Config) { c.protocols = versionRange{min: lo, max: hi} }
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		mine, theirs versionRange
		want         uint32
		ok           bool
	}{
		{versionRange{1, 1}, versionRange{1, 1}, 1, true},
		{versionRange{1, 2}, versionRange{1, 1}, 1, true}, // N+1 beside N
		{versionRange{1, 1}, versionRange{1, 2}, 1, true},
		{versionRange{1, 2}, versionRange{2, 3}, 2, true},
		{versionRange{2, 3}, versionRange{1, 2}, 2, true},
		{versionRange{1, 1}, versionRange{2, 2}, 0, false}, // N beside N+2 that dropped 1
		{versionRange{2, 2}, versionRange{1, 1}, 0, false},
		{versionRange{1, 3}, versionRange{3, 2}, 0, false}, // a nonsense range
	} {
		got, ok := negotiate(tc.mine, tc.theirs)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("negotiate(%v, %v) = %d, %v; want %d, %v", tc.mine, tc.theirs, got, ok, tc.want, tc.ok)
		}
	}
	if r := peerRange(0, 0); r != (versionRange{1, 1}) {
		t.Errorf("a peer that sends no versions speaks %v; want version 1 (a node from before versions were exchanged)", r)
	}
}

// TestAdjacentReleasesReplicateBothWays runs a node of the next release
// (protocol versions 1 to 2) beside one of this release (1): they agree on
// 1 and replicate both ways. A node of the release after (2 only) and the
// node of this release share no version: each refuses the other, counts it
// and says which region and versions in Status, and serves on; the two
// newer nodes agree on 2.
func TestAdjacentReleasesReplicateBothWays(t *testing.T) {
	cluster := uuid.New()
	next := serveRegion(t, "us-east", cluster, nil, speaking(1, 2))
	this := serveRegion(t, "eu-west", cluster, map[string]string{"us-east": next.addr})

	ctx := context.Background()
	put := func(r *liveRegion, key string) string {
		t.Helper()
		res, err := r.kv.Put(ctx, connect.NewRequest(&v1.PutRequest{Key: key, Value: []byte(key)}))
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		return res.Msg.CausalToken
	}
	get := func(r *liveRegion, key, token string) {
		t.Helper()
		getCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		res, err := r.kv.Get(getCtx, connect.NewRequest(&v1.GetRequest{Key: key, CausalToken: token}))
		if err != nil || string(res.Msg.Value) != key {
			t.Fatalf("get %s in %s: %v %v", key, r.node.Region(), res, err)
		}
	}
	for i := range 5 {
		get(this, fmt.Sprint("from-next-", i), put(next, fmt.Sprint("from-next-", i)))
		get(next, fmt.Sprint("from-this-", i), put(this, fmt.Sprint("from-this-", i)))
	}
	for _, tc := range []struct {
		r    *liveRegion
		peer string
	}{{next, "eu-west"}, {this, "us-east"}} {
		waitFor(t, tc.r.node.Region()+" to report the stream from "+tc.peer, 20*time.Second, func() bool {
			for _, p := range tc.r.node.repl.status() {
				if p.Region == tc.peer {
					return p.Protocol == 1 && p.Refused == ""
				}
			}
			return false
		})
	}

	after := serveRegion(t, "ap-south", cluster, map[string]string{"eu-west": this.addr, "us-east": next.addr}, speaking(2, 2))
	refusedBy := func(r *liveRegion, peer string) string {
		for _, p := range r.node.repl.status() {
			if p.Region == peer {
				return p.Refused
			}
		}
		return ""
	}
	waitFor(t, "both sides of ap-south <-> eu-west to refuse the other", 30*time.Second, func() bool {
		return refusedBy(this, "ap-south") != "" && refusedBy(after, "eu-west") != ""
	})
	for _, msg := range []string{refusedBy(this, "ap-south"), refusedBy(after, "eu-west")} {
		for _, want := range []string{"ap-south", "eu-west", "version 1", "version 2", "upgrade the older region"} {
			if !strings.Contains(msg, want) {
				t.Errorf("refusal %q does not name %q", msg, want)
			}
		}
	}
	for _, r := range []*liveRegion{this, after} {
		if n := counterValue(t, r.node.metrics.versionRefusals); n < 1 {
			t.Errorf("%s counted %v version refusals; want at least 1", r.node.Region(), n)
		}
	}
	if n := counterValue(t, next.node.metrics.versionRefusals); n != 0 {
		t.Errorf("us-east (versions 1 to 2) refused %v streams; it shares a version with every region", n)
	}
	// The two newer releases speak version 2 to each other, and us-east's
	// writes reach ap-south (reads there with us-east's tokens would wait
	// for eu-west's writes, which ap-south cannot receive: replication is
	// not transitive).
	put(next, "from-next-late")
	head := next.node.Status().Vector.Get("us-east")
	waitFor(t, "ap-south to apply every write of us-east at version 2", 30*time.Second, func() bool {
		for _, p := range after.node.repl.status() {
			if p.Region == "us-east" {
				return p.Protocol == 2 && after.node.Status().Vector.Get("us-east") == head
			}
		}
		return false
	})
	// eu-west serves on, and still replicates with us-east.
	get(next, "from-this-late", put(this, "from-this-late"))
}

// TestReplicationRefusesAnUnknownFutureVersion: a caller that speaks only
// versions this node does not gets failed_precondition naming both ranges,
// with this node's range as a detail, on both stream kinds; a caller that
// sends no versions (a release from before they were exchanged) speaks 1.
func TestReplicationRefusesAnUnknownFutureVersion(t *testing.T) {
	cluster := uuid.New()
	a := serveRegion(t, "us-east", cluster, nil)
	if _, err := a.kv.Put(context.Background(), connect.NewRequest(&v1.PutRequest{Key: "k", Value: []byte("v")})); err != nil {
		t.Fatal(err)
	}
	client := causewayv1connect.NewReplicationServiceClient(newH2CClient(new(net.Dialer).DialContext), "http://"+a.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	replicate := func(p *v1.ProtocolVersions) (*v1.ReplicateResponse, error) {
		stream := client.Replicate(ctx)
		defer stream.CloseResponse()
		if err := stream.Send(&v1.ReplicateRequest{Msg: &v1.ReplicateRequest_Start{Start: &v1.ReplicateStart{
			ClusterId: cluster.String(), Region: "eu-west", FromSeq: 1, Protocol: p}}}); err != nil {
			t.Fatal(err)
		}
		return stream.Receive()
	}
	checkRefusal := func(what string, err error) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("%s: %v; want failed_precondition", what, err)
		}
		for _, want := range []string{"region eu-west speaks replication protocol versions 7 to 9", "region us-east (this node) speaks version 1"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q does not say %q", what, err, want)
			}
		}
		var ce *connect.Error
		errors.As(err, &ce)
		found := false
		for _, d := range ce.Details() {
			if m, derr := d.Value(); derr == nil {
				if pv, ok := m.(*v1.ProtocolVersions); ok {
					found = pv.Min == 1 && pv.Max == 1
				}
			}
		}
		if !found {
			t.Errorf("%s: the refusal lacks the node's ProtocolVersions {1, 1}: %v", what, ce.Details())
		}
	}

	_, err := replicate(&v1.ProtocolVersions{Min: 7, Max: 9})
	checkRefusal("Replicate", err)
	snap, err := client.Snapshot(ctx, connect.NewRequest(&v1.SnapshotRequest{ClusterId: cluster.String(), Region: "eu-west",
		Protocol: &v1.ProtocolVersions{Min: 7, Max: 9}}))
	if err == nil {
		for snap.Receive() {
		}
		err = snap.Err()
		snap.Close()
	}
	checkRefusal("Snapshot", err)
	if n := counterValue(t, a.node.metrics.versionRefusals); n != 2 {
		t.Errorf("us-east counted %v version refusals; want 2", n)
	}

	msg, err := replicate(nil)
	if err != nil || len(msg.Writes) != 1 || msg.ProtocolVersion != 1 {
		t.Fatalf("a caller from before versions were exchanged: %v, %v; want its write at protocol version 1", msg, err)
	}
}

// TestStoreFormatVersion: a new store is stamped with this build's format;
// a store of a newer format is refused, naming both versions; an older
// format this build still reads is migrated at open; one older than that is
// refused; a store from before format markers existed is format 1.
func TestStoreFormatVersion(t *testing.T) {
	open := func(dir string, f storeFormat) (*Store, error) {
		return OpenStore(dir, StoreOptions{Logger: discardLogger(), format: f})
	}
	marker := func(t *testing.T, dir string) uint64 {
		t.Helper()
		s, err := open(dir, storeFormat{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		v, found, err := readFormat(s.db)
		if err != nil || !found {
			t.Fatalf("format marker: %v, found %v", err, found)
		}
		return v
	}

	t.Run("new store", func(t *testing.T) {
		dir := t.TempDir()
		if v := marker(t, dir); v != StoreFormatVersion {
			t.Fatalf("a new store has format %d; want %d", v, StoreFormatVersion)
		}
	})

	t.Run("store from before markers", func(t *testing.T) {
		dir := t.TempDir()
		db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Set(metaRegion, []byte("us-east"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if v := marker(t, dir); v != legacyStoreFormat {
			t.Fatalf("a store without a marker opened as format %d; want %d", v, legacyStoreFormat)
		}
	})

	t.Run("newer format refused", func(t *testing.T) {
		dir := t.TempDir()
		s, err := open(dir, storeFormat{min: 1, current: StoreFormatVersion + 1})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err = open(dir, storeFormat{})
		want := fmt.Sprintf("the store in %s has format version %d, and this causeway reads store formats 1 to %d: it was written by a newer causeway",
			dir, StoreFormatVersion+1, StoreFormatVersion)
		if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), want) {
			t.Fatalf("opening a newer store: %v; want ErrUnsupportedVersion saying %q", err, want)
		}
		// Refused without a change: the next release still opens it.
		if _, err := open(dir, storeFormat{min: 1, current: StoreFormatVersion + 1}); err != nil {
			t.Fatalf("the newer release cannot open its store after an older one refused it: %v", err)
		}
	})

	t.Run("older format migrated", func(t *testing.T) {
		dir := t.TempDir()
		s, err := open(dir, storeFormat{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		steps := 0
		next := storeFormat{min: 1, current: 2, upgrades: map[uint64]func(*pebble.DB) error{
			1: func(db *pebble.DB) error { steps++; return db.Set([]byte("m/upgraded"), nil, pebble.Sync) },
		}}
		for range 2 {
			s, err := open(dir, next)
			if err != nil {
				t.Fatal(err)
			}
			v, _, err := readFormat(s.db)
			s.Close()
			if err != nil || v != 2 {
				t.Fatalf("after the upgrade the marker says %d (%v); want 2", v, err)
			}
		}
		if steps != 1 {
			t.Fatalf("the upgrade from 1 to 2 ran %d times; want once", steps)
		}
	})

	t.Run("older than supported refused", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "store")
		s, err := open(dir, storeFormat{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err = open(dir, storeFormat{min: 2, current: 2})
		if !errors.Is(err, ErrUnsupportedVersion) || !strings.Contains(err.Error(), "upgrade through a release that reads version 1 first") {
			t.Fatalf("opening a store older than supported: %v", err)
		}
	})
}
