package replica

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/uuid"

	"github.com/causewaydb/causeway/api"
	v1 "github.com/causewaydb/causeway/api/causeway/v1"
	"github.com/causewaydb/causeway/causal"
	"github.com/causewaydb/causeway/clocks"
)

// fakeLinear is an in-memory LinearTier: claims in a map, fencing tokens
// set by the test. It does what the node asks of the tier and no more, so
// replica's tests need no Raft.
type fakeLinear struct {
	mu       sync.Mutex
	tokens   map[string]uint64 // lock -> newest token applied
	tokenErr error
	claims   map[string]string // namespace/name -> owner
	calls    []string          // request ids of Claim calls, in order
	closed   bool
}

func newFakeLinear() *fakeLinear {
	return &fakeLinear{tokens: map[string]uint64{}, claims: map[string]string{}}
}

func (f *fakeLinear) Claim(_ context.Context, namespace, name, owner, requestID string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, requestID)
	key := namespace + "/" + name
	if held, ok := f.claims[key]; ok && held != owner {
		return 0, api.Errorf(api.ErrAlreadyExists, "%s is held by %s", key, held)
	}
	f.claims[key] = owner
	return 1, nil
}

func (f *fakeLinear) LatestToken(lock string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens[lock], f.tokenErr
}

func (f *fakeLinear) Status() *v1.LinearStatus { return &v1.LinearStatus{Available: true} }

func (f *fakeLinear) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func withLinear(l LinearTier) func(*Config) {
	return func(c *Config) {
		c.Linear = func(env Env) (LinearTier, error) {
			if env.Region != c.Region || env.Identity == nil {
				return nil, errors.New("the tier needs the node's region and identity")
			}
			return l, nil
		}
	}
}

// fakeMembership is an in-memory Membership whose members the test sets.
type fakeMembership struct {
	mu      sync.Mutex
	members []Member
	stable  clocks.Vector
	joined  bool
	removed []string
}

func (f *fakeMembership) Members() []Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Member(nil), f.members...)
}

func (f *fakeMembership) StableVector() clocks.Vector {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stable.Clone()
}

func (f *fakeMembership) Joined() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joined
}

func (f *fakeMembership) Remove(region string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, region)
	for i := range f.members {
		if f.members[i].Region == region {
			f.members[i].Removed = true
		}
	}
	return nil
}

func (f *fakeMembership) Close() error { return nil }

// startFakeMembership starts m on n as a Server would, and returns the
// events the node gave it.
func startFakeMembership(t *testing.T, n *Node, m *fakeMembership) MemberEvents {
	t.Helper()
	var events MemberEvents
	n.cfg.Membership = func(env Env, e MemberEvents) (Membership, error) {
		if env.Advertise != "127.0.0.1:1" || env.NodeID != n.nodeID {
			t.Errorf("membership started with %+v, want the node's id and address", env)
		}
		events = e
		return m, nil
	}
	n.repl.start("127.0.0.1:1")
	if n.repl.membershipNow() == nil {
		t.Fatal("membership did not start")
	}
	return events
}

// TestFenceConsultsLinearTier: a fenced write is checked against the
// newest token the tier has applied as well as those the region stored, and
// a tier that cannot answer fails the write rather than skipping the check.
func TestFenceConsultsLinearTier(t *testing.T) {
	ctx := context.Background()
	l := newFakeLinear()
	n := openMemNode(t, vfs.NewMem(), withLinear(l))
	put := func(key string, token uint64) error {
		_, err := n.Write(ctx, []causal.Op{{Key: key, Kind: causal.KindValue, Value: []byte(key)}}, "", "",
			WriteOptions{Fence: &Fence{Lock: "jobs/1", Token: token}})
		return err
	}
	l.tokens["jobs/1"] = 9
	if err := put("stale", 8); !errors.Is(err, api.ErrFailedPrecondition) || !strings.Contains(err.Error(), "token 9") {
		t.Fatalf("token 8 after the tier issued 9: %v, want failed_precondition naming token 9", err)
	}
	if err := put("current", 9); err != nil {
		t.Fatalf("token 9: %v", err)
	}
	l.tokenErr = errors.New("state machine unreadable")
	if err := put("unknown", 10); err == nil || !strings.Contains(err.Error(), "linearizable tier state") {
		t.Fatalf("tier error: %v, want the write refused", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if !l.closed {
		t.Fatal("closing the node did not close its linearizable tier")
	}
}

// TestUniqueClaimsGoThroughLinearTier: a Put with unique constraints claims
// each through the tier before writing, with request ids derived from the
// write's (a retry sends the same claims), and a claim held for another key
// fails the write with nothing written.
func TestUniqueClaimsGoThroughLinearTier(t *testing.T) {
	ctx := context.Background()
	l := newFakeLinear()
	n := openMemNode(t, vfs.NewMem(), withLinear(l))
	put := func(key, reqID string) error {
		_, err := n.Write(ctx, []causal.Op{{Key: key, Kind: causal.KindValue, Value: []byte("v")}}, "", reqID,
			WriteOptions{Unique: []Unique{{Namespace: "users", Name: "alice"}}})
		return err
	}
	id := uuid.NewString()
	if err := put("user/1", id); err != nil {
		t.Fatal(err)
	}
	if err := put("user/1", id); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if len(l.calls) != 2 || l.calls[0] != l.calls[1] || l.calls[0] == id {
		t.Fatalf("claim request ids %v: want one id derived from the write's, the same on retry", l.calls)
	}
	if err := put("user/2", uuid.NewString()); !errors.Is(err, api.ErrAlreadyExists) {
		t.Fatalf("name held by user/1: %v, want already_exists", err)
	}
	if got, _, err := n.Get(ctx, "user/2", "", false); err != nil || got.Found {
		t.Fatalf("refused write is visible: %+v %v", got, err)
	}

	without := openMemNode(t, vfs.NewMem())
	if _, err := without.Write(ctx, []causal.Op{{Key: "k", Kind: causal.KindValue, Value: []byte("v")}}, "", "",
		WriteOptions{Unique: []Unique{{Namespace: "users", Name: "bob"}}}); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Fatalf("unique constraint without the tier: %v, want failed_precondition", err)
	}
}

// TestMembershipDrivesPeersAndStableVector: membership's news makes live
// members of other regions replication peers and removed ones not, and its
// stable vector counts only once every peer has reported.
func TestMembershipDrivesPeersAndStableVector(t *testing.T) {
	n := openMemNode(t, vfs.NewMem())
	m := &fakeMembership{stable: clocks.Vector{"us-east": 3, "eu-west": 2}}
	events := startFakeMembership(t, n, m)

	if v := events.AppliedVector(); len(v) != 0 {
		t.Fatalf("applied vector of an empty node = %v", v)
	}
	eu := Member{Region: "eu-west", NodeID: "eu-west-1", GossipAddr: "127.0.0.1:2", ReplicationAddr: "127.0.0.1:3", State: "alive", Alive: true}
	m.members = []Member{{Region: "us-east", Applied: clocks.Vector{}}, eu}
	events.MemberChanged(eu)
	if !n.repl.knownRegion("eu-west") {
		t.Fatal("a live member of another region is not replicated with")
	}
	if _, ok := n.repl.stableVector(); ok {
		t.Fatal("stable vector used before eu-west reported what it applied")
	}
	m.members[1].Applied = clocks.Vector{"eu-west": 2}
	if v, ok := n.repl.stableVector(); !ok || !v.Equal(m.stable) {
		t.Fatalf("stable vector = %v %v, want %v", v, ok, m.stable)
	}

	// eu-west is alive: removing it needs force.
	if err := n.RemoveRegion("eu-west", false); api.Code(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "alive") {
		t.Fatalf("removing a live region without force: %v, want failed_precondition", err)
	}
	if len(m.removed) != 0 {
		t.Fatalf("a refused removal told membership to remove %v", m.removed)
	}
	if err := n.RemoveRegion("eu-west", true); err != nil {
		t.Fatal(err)
	}
	if len(m.removed) != 1 || m.removed[0] != "eu-west" {
		t.Fatalf("membership told to remove %v, want [eu-west]", m.removed)
	}
	events.MemberChanged(Member{Region: "eu-west", Removed: true})
	if n.repl.knownRegion("eu-west") {
		t.Fatal("a removed region is still followed")
	}

	// Had us-east been removed instead, it refuses its clients: what it
	// accepted would reach no other region.
	if state, _ := n.CausalState(); state != stateServing {
		t.Fatalf("state %s before this region's removal, want serving", state)
	}
	m.members[0].Removed = true
	if state, why := n.CausalState(); state != stateRemoved || !strings.Contains(why, "removed from the cluster") {
		t.Fatalf("state %s (%s) once this region was removed, want removed", state, why)
	}
}
